"""On-disk record formats of the peer: transaction-log records and snapshots, bytes in/out.

This module owns the byte layout and its validation rules, and nothing else: it opens no
files, reads no clock and draws no randomness it was not handed (`snapshot_threshold`
takes its `random.Random`). `peer/storage.py` is the adapter that moves these bytes to and
from the data dir.

Theory of operation
-------------------
A log file is a plain concatenation of records; a crash can stop a write anywhere, so the
reader must tell a *torn tail* (the last write was cut short: drop it, carry on) from
*corruption* (damaged bytes with good data after them: refuse to start).

Log record, all integers big-endian::

    header  (12 bytes)  length u32 | payload_crc u32 | header_crc u32
    payload (length)    version u8 (=1) | zxid u64 | key_len u32 | key | value_len u32 | value

`payload_crc` is CRC-32 of the payload, `header_crc` CRC-32 of the first 8 header bytes.
The header has its own checksum so that a damaged length field is recognised as damage
instead of being trusted, which would make the reader skip or swallow good records. Keys
and values are UTF-8 (with `surrogatepass`, so any Python `str` round-trips).

Classification, at each record boundary:
- fewer than 12 bytes left: torn (header cut short);
- header checksum or length out of range: torn if nothing but zero bytes follows the
  header (a cut write, or a file extended with zeros), else corruption;
- length reaching past the end of the data: torn (payload cut short);
- payload checksum mismatch: torn if the record ends the data (or only zeros follow),
  else corruption;
- checksums good but the payload does not decode, or its zxid does not strictly increase:
  corruption even at the tail (the bytes are exactly what was written, so truncating them
  would silently drop a record that was acknowledged).

Snapshot file::

    magic "QCSNAP" | version u16 (=1) | zxid u64 | count u32 |
    count x (key_len u32 | key | value_len u32 | value), keys strictly ascending |
    crc u32 (CRC-32 of every byte before it)

A snapshot is written whole (tmp + rename by the adapter), so any damage is an error; the
adapter falls back to an older snapshot.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from peer.domain import Txn
from peer.errors import CorruptLogError, CorruptSnapshotError

LOG_RECORD_VERSION = 1
_HEADER = struct.Struct(">III")  # length, payload_crc, header_crc
HEADER_SIZE = _HEADER.size
_LEN_CRC = struct.Struct(">II")
_PAYLOAD_FIXED = struct.Struct(">BQ")  # version, zxid
_U32 = struct.Struct(">I")
MIN_PAYLOAD_SIZE = _PAYLOAD_FIXED.size + 2 * _U32.size
# Far above any real txn; a bigger length can only be damage.
MAX_PAYLOAD_SIZE = 16 * 1024 * 1024
MAX_ZXID = (1 << 64) - 1

SNAPSHOT_MAGIC = b"QCSNAP"
SNAPSHOT_VERSION = 1
_SNAP_HEAD = struct.Struct(">6sHQI")  # magic, version, zxid, count
_CRC = struct.Struct(">I")

_TEXT_ERRORS = "surrogatepass"


@dataclass(frozen=True, slots=True, kw_only=True)
class LogScan:
    """What `scan_log` found in one log file's bytes.

    `record_ends[i]` is the offset just past record i (so record i starts at
    `record_ends[i-1]`, or 0). Bytes from `valid_end` to `size` are the torn tail."""

    txns: tuple[Txn, ...]
    record_ends: tuple[int, ...]
    valid_end: int
    size: int
    torn: bool
    torn_why: str = ""

    @property
    def torn_bytes(self) -> int:
        return self.size - self.valid_end

    def record_start(self, index: int) -> int:
        return 0 if index == 0 else self.record_ends[index - 1]


def _encode_text(text: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"txn {what} must be a str, got {type(text).__name__}")
    return text.encode("utf-8", _TEXT_ERRORS)


def _check_zxid(zxid: int, what: str) -> None:
    if not isinstance(zxid, int) or isinstance(zxid, bool) or not 0 <= zxid <= MAX_ZXID:
        raise ValueError(f"{what} zxid must be an integer in [0, 2**64), got {zxid!r}")


def encode_txn(txn: Txn) -> bytes:
    """One complete log record (header + payload) for `txn`."""
    _check_zxid(txn.zxid, "txn")
    key = _encode_text(txn.key, "key")
    value = _encode_text(txn.value, "value")
    payload = b"".join(
        (
            _PAYLOAD_FIXED.pack(LOG_RECORD_VERSION, txn.zxid),
            _U32.pack(len(key)),
            key,
            _U32.pack(len(value)),
            value,
        )
    )
    if len(payload) > MAX_PAYLOAD_SIZE:
        raise ValueError(f"txn {txn.zxid:#x} is {len(payload)} bytes, over {MAX_PAYLOAD_SIZE}")
    len_crc = _LEN_CRC.pack(len(payload), zlib.crc32(payload))
    return len_crc + _CRC.pack(zlib.crc32(len_crc)) + payload


def encode_txns(txns: Iterable[Txn]) -> bytes:
    return b"".join(encode_txn(txn) for txn in txns)


def _decode_payload(payload: bytes) -> Txn:
    """Decode one checksummed payload; ValueError says what does not parse."""
    version, zxid = _PAYLOAD_FIXED.unpack_from(payload, 0)
    if version != LOG_RECORD_VERSION:
        raise ValueError(f"unknown record version {version}")
    pos = _PAYLOAD_FIXED.size
    key, pos = _read_text(payload, pos, "key")
    value, pos = _read_text(payload, pos, "value")
    if pos != len(payload):
        raise ValueError(f"{len(payload) - pos} stray bytes after the value")
    return Txn(zxid=zxid, key=key, value=value)


def _read_text(data: bytes, pos: int, what: str) -> tuple[str, int]:
    if pos + _U32.size > len(data):
        raise ValueError(f"{what} length cut short")
    (size,) = _U32.unpack_from(data, pos)
    pos += _U32.size
    if pos + size > len(data):
        raise ValueError(f"{what} length {size} runs past the end")
    try:
        text = data[pos : pos + size].decode("utf-8", _TEXT_ERRORS)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} is not UTF-8: {exc.reason}") from None
    return text, pos + size


def _only_zeros_from(data: bytes, start: int) -> bool:
    """True when nothing but zero bytes (or nothing at all) lies at `start` and after."""
    return data.count(0, start) == len(data) - start if start < len(data) else True


def scan_log(data: bytes, *, source: str) -> LogScan:
    """Decode every record of one log file. Raises CorruptLogError(source, offset, why)
    for damage before the tail, or for zxids that do not strictly increase."""
    txns: list[Txn] = []
    ends: list[int] = []
    size = len(data)
    pos = 0

    def torn(why: str) -> LogScan:
        return LogScan(
            txns=tuple(txns),
            record_ends=tuple(ends),
            valid_end=pos,
            size=size,
            torn=True,
            torn_why=f"{why} at byte offset {pos}",
        )

    while pos < size:
        if size - pos < HEADER_SIZE:
            return torn(f"record header cut short ({size - pos} of {HEADER_SIZE} bytes)")
        length, payload_crc, header_crc = _HEADER.unpack_from(data, pos)
        bad_header = ""
        if zlib.crc32(data[pos : pos + 8]) != header_crc:
            bad_header = "record header checksum mismatch"
        elif not MIN_PAYLOAD_SIZE <= length <= MAX_PAYLOAD_SIZE:
            bad_header = f"record length {length} outside [{MIN_PAYLOAD_SIZE}, {MAX_PAYLOAD_SIZE}]"
        if bad_header:
            if _only_zeros_from(data, pos + HEADER_SIZE):
                return torn(bad_header)
            raise CorruptLogError(source, pos, f"{bad_header}, with more data after it")
        end = pos + HEADER_SIZE + length
        if end > size:
            return torn(f"record payload cut short ({size - pos - HEADER_SIZE} of {length} bytes)")
        payload = data[pos + HEADER_SIZE : end]
        if zlib.crc32(payload) != payload_crc:
            if _only_zeros_from(data, end):
                return torn("checksum mismatch on the last record")
            raise CorruptLogError(source, pos, "record checksum mismatch, with more data after it")
        try:
            txn = _decode_payload(payload)
        except (ValueError, struct.error) as exc:
            raise CorruptLogError(source, pos, f"undecodable record: {exc}") from None
        if txns and txn.zxid <= txns[-1].zxid:
            raise CorruptLogError(
                source,
                pos,
                f"zxid {txn.zxid:#x} does not increase after {txns[-1].zxid:#x}",
            )
        txns.append(txn)
        pos = end
        ends.append(pos)
    return LogScan(txns=tuple(txns), record_ends=tuple(ends), valid_end=pos, size=size, torn=False)


def encode_snapshot(zxid: int, state: Mapping[str, str]) -> bytes:
    """The whole state at `zxid` as one self-checking blob (keys sorted: same state, same
    bytes)."""
    _check_zxid(zxid, "snapshot")
    parts = [_SNAP_HEAD.pack(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, zxid, len(state))]
    for key in sorted(state):
        for text, what in ((key, "key"), (state[key], "value")):
            raw = _encode_text(text, what)
            parts.append(_U32.pack(len(raw)))
            parts.append(raw)
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def decode_snapshot(data: bytes, *, source: str) -> tuple[int, dict[str, str]]:
    """(zxid, state) from a snapshot blob; CorruptSnapshotError(source, why) on any damage."""
    if len(data) < _SNAP_HEAD.size + _CRC.size:
        raise CorruptSnapshotError(source, f"only {len(data)} bytes, shorter than a header")
    magic, version, zxid, count = _SNAP_HEAD.unpack_from(data, 0)
    if magic != SNAPSHOT_MAGIC:
        raise CorruptSnapshotError(source, f"bad magic {magic!r}, expected {SNAPSHOT_MAGIC!r}")
    body = data[: -_CRC.size]
    (crc,) = _CRC.unpack_from(data, len(body))
    if zlib.crc32(body) != crc:
        raise CorruptSnapshotError(source, "checksum mismatch")
    if version != SNAPSHOT_VERSION:
        raise CorruptSnapshotError(source, f"unsupported version {version}")
    state: dict[str, str] = {}
    pos = _SNAP_HEAD.size
    previous: str | None = None
    try:
        for _ in range(count):
            key, pos = _read_text(body, pos, "key")
            value, pos = _read_text(body, pos, "value")
            if previous is not None and key <= previous:
                raise ValueError(f"key {key!r} not after {previous!r}")
            state[key] = value
            previous = key
    except ValueError as exc:
        raise CorruptSnapshotError(source, f"entry {len(state)} of {count}: {exc}") from None
    if pos != len(body):
        raise CorruptSnapshotError(source, f"{len(body) - pos} stray bytes after {count} entries")
    return zxid, state


def snapshot_threshold(snap_count: int, rng: random.Random) -> int:
    """How many logged txns until the next snapshot: uniform in [snap_count//2, snap_count].

    ZooKeeper rolls a random share of snapCount per peer so the ensemble does not pause
    to snapshot at the same moment."""
    if not isinstance(snap_count, int) or isinstance(snap_count, bool) or snap_count < 2:
        raise ValueError(f"snap_count must be an integer >= 2, got {snap_count!r}")
    return rng.randint(snap_count // 2, snap_count)
