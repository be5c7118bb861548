"""Disk faults the nemesis applies to the data dir of a STOPPED peer.

This module owns three ways of damaging a peer's files the way real crashes and disks do:
a torn last write, a damaged snapshot, and the loss of everything the page cache held
past the last fsync (a power loss; a SIGKILL alone never loses written bytes). It knows
the data dir layout and record format only through `peer.storage` and `peer.records`,
draws randomness only from the `random.Random` it is handed, and must never be used on
a running peer (its storage holds the files open). Each function returns a one-line
description for the harness log; bad requests raise `FaultError` naming the dir/file.
"""

from __future__ import annotations

import bisect
import os
import random
from pathlib import Path

from faults.errors import FaultError
from peer.domain import Txn
from peer.errors import CorruptLogError
from peer.records import LogScan, encode_txn, scan_log
from peer.storage import LOG_PREFIX, list_segments, list_snapshots, parse_name


def _segments(data_dir: Path) -> list[tuple[int, str]]:
    try:
        return list_segments(data_dir)
    except OSError as exc:
        raise FaultError("cannot list data dir", data_dir=str(data_dir), error=str(exc)) from exc


def tear_log_tail(data_dir: Path, rng: random.Random, *, nbytes: int | None = None) -> str:
    """Leave the newest non-empty log segment ending in a torn write.

    With `nbytes` (a plan's `TearLogTail.bytes`): cut exactly that many bytes off the
    end of that segment, clamped to its size, so the crash tore the last `nbytes` of what
    was written (possibly several records, ending mid-record or on a boundary). Without
    it (callers that do not pass the step's count): cut the last record part-way, or
    append a partial record after it, as `rng` picks. The description says how many
    bytes were cut (or appended) and what is left."""
    data_dir = Path(data_dir)
    if nbytes is not None and (
        not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 1
    ):
        raise FaultError("bytes to tear must be a positive integer", bytes=nbytes)
    candidates = [name for _, name in _segments(data_dir) if (data_dir / name).stat().st_size]
    if not candidates:
        raise FaultError("no non-empty log segment to tear", data_dir=str(data_dir))
    name = candidates[-1]
    path = data_dir / name
    data = path.read_bytes()
    try:
        scan = scan_log(data, source=str(path))
    except CorruptLogError as exc:
        raise FaultError("log segment is already corrupt", file=str(path), error=str(exc)) from exc
    if nbytes is not None:
        return _cut_tail(path, scan, nbytes)
    if scan.txns and rng.random() < 0.5:
        start = scan.record_start(len(scan.txns) - 1)
        length = scan.valid_end - start
        keep = rng.randint(1, length - 1)
        with path.open("r+b") as f:
            f.truncate(start + keep)
            os.fsync(f.fileno())
        return (
            f"tore {name}: cut its last record (zxid {scan.txns[-1].zxid:#x}) after "
            f"{keep} of {length} bytes; file {len(data)} -> {start + keep} bytes"
        )
    # Append a prefix of a plausible next record; drop an earlier torn tail first so the
    # new bytes sit on a record boundary (appended after torn bytes they could read as
    # damage in the middle of the log, which is not what a single crash produces).
    last = scan.txns[-1].zxid if scan.txns else 0
    record = encode_txn(Txn(zxid=last + 1, key=f"torn-{rng.randrange(1000)}", value="x" * 8))
    part = record[: rng.randint(1, len(record) - 1)]
    with path.open("r+b") as f:
        f.truncate(scan.valid_end)
        f.seek(scan.valid_end)
        f.write(part)
        f.flush()
        os.fsync(f.fileno())
    return (
        f"tore {name}: appended {len(part)} of {len(record)} bytes of a record at byte "
        f"offset {scan.valid_end}"
    )


def _cut_tail(path: Path, scan: LogScan, nbytes: int) -> str:
    cut = min(nbytes, scan.size)
    new_size = scan.size - cut
    with path.open("r+b") as f:
        f.truncate(new_size)
        os.fsync(f.fileno())
    # What survives whole: the records that end at or before the new size.
    kept = bisect.bisect_right(scan.record_ends, new_size)
    last = f"last whole record zxid {scan.txns[kept - 1].zxid:#x}" if kept else "no whole record"
    partial = new_size - (scan.record_ends[kept - 1] if kept else 0)
    asked = "" if cut == nbytes else f" (asked for {nbytes}, clamped to the file size)"
    return (
        f"tore {path.name}: cut {cut} byte{'' if cut == 1 else 's'} off its end{asked}; "
        f"file {scan.size} -> "
        f"{new_size} bytes, {kept} of {len(scan.txns)} records kept whole ({last}), "
        f"{partial} bytes of a torn record after them"
    )


def corrupt_newest_snapshot(data_dir: Path, rng: random.Random) -> str:
    """Flip one to three bytes at random places inside the newest snapshot file."""
    data_dir = Path(data_dir)
    try:
        snapshots = list_snapshots(data_dir)
    except OSError as exc:
        raise FaultError("cannot list data dir", data_dir=str(data_dir), error=str(exc)) from exc
    if not snapshots:
        raise FaultError("no snapshot to corrupt", data_dir=str(data_dir))
    name = snapshots[-1][1]
    path = data_dir / name
    data = bytearray(path.read_bytes())
    if not data:
        raise FaultError("snapshot file is empty", file=str(path))
    offsets = sorted(rng.sample(range(len(data)), k=min(len(data), rng.randint(1, 3))))
    for offset in offsets:
        data[offset] ^= rng.randint(1, 255)  # never 0: every chosen byte really changes
    with path.open("r+b") as f:
        f.write(data)
        os.fsync(f.fileno())
    return f"corrupted {name}: flipped bytes at offsets {offsets} of {len(data)}"


def drop_unsynced_tail(data_dir: Path, log_file: str, synced_offset: int) -> str:
    """Model a power loss: keep only what the peer reported fsynced, `(log_file,
    synced_offset)` as returned by `Storage.sync()`. The named segment is cut to the
    offset and every newer segment is deleted (it was begun after that sync). `log_file`
    "" (no segment existed at that sync) deletes every segment."""
    data_dir = Path(data_dir)
    if not isinstance(synced_offset, int) or isinstance(synced_offset, bool) or synced_offset < 0:
        raise FaultError("synced offset must be a non-negative integer", offset=synced_offset)
    if log_file == "":
        boundary = -1
    else:
        zxid = parse_name(log_file, LOG_PREFIX)
        if zxid is None or "/" in log_file:
            raise FaultError(
                "not a log segment name (expected log.<hex zxid>)",
                log_file=log_file,
                data_dir=str(data_dir),
            )
        boundary = zxid
    actions: list[str] = []
    for first_zxid, name in _segments(data_dir):
        path = data_dir / name
        if first_zxid > boundary:
            path.unlink()
            actions.append(f"deleted {name}")
        elif name == log_file:
            size = path.stat().st_size
            if size > synced_offset:
                with path.open("r+b") as f:
                    f.truncate(synced_offset)
                    os.fsync(f.fileno())
                actions.append(f"cut {name} {size} -> {synced_offset} bytes")
            else:
                actions.append(f"{name} has no unsynced tail ({size} bytes)")
    dir_fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    if not actions:
        return f"power loss in {data_dir}: no log segments, nothing to drop"
    return f"power loss in {data_dir}: " + "; ".join(actions)
