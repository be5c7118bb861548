"""Unit tests of peer/records.py: log records and snapshots as bytes (no files)."""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peer.domain import Txn, make_zxid
from peer.errors import CorruptLogError, CorruptSnapshotError
from peer.native import loaded
from peer.records import (
    HEADER_SIZE,
    decode_snapshot,
    encode_snapshot,
    encode_txn,
    encode_txns,
    scan_log,
    snapshot_threshold,
)

TXNS = [
    Txn(zxid=make_zxid(1, 1), key="a", value="1"),
    Txn(zxid=make_zxid(1, 2), key="b", value="héllo ☃"),
    Txn(zxid=make_zxid(2, 1), key="a", value=""),
    Txn(zxid=make_zxid(2, 7), key="", value="x" * 300),
]


def test_round_trip_of_several_records() -> None:
    data = encode_txns(TXNS)
    scan = scan_log(data, source="log.1")
    assert scan.txns == tuple(TXNS)
    assert not scan.torn
    assert scan.valid_end == scan.size == len(data)
    assert scan.record_ends[-1] == len(data)
    assert [scan.record_start(i) for i in range(len(TXNS))] == [
        0,
        *scan.record_ends[:-1],
    ]


def test_empty_log_is_valid_and_empty() -> None:
    scan = scan_log(b"", source="x")
    assert scan.txns == () and scan.valid_end == 0 and not scan.torn


@settings(max_examples=50)
@given(
    st.lists(
        st.tuples(st.integers(1, 1000), st.text(max_size=20), st.text(max_size=40)),
        max_size=8,
    )
)
def test_round_trip_property(items: list[tuple[int, str, str]]) -> None:
    zxid = 0
    txns = []
    for step, key, value in items:
        zxid += step
        txns.append(Txn(zxid=zxid, key=key, value=value))
    assert scan_log(encode_txns(txns), source="p").txns == tuple(txns)


def test_every_cut_length_of_the_last_record_is_a_torn_tail() -> None:
    whole = encode_txns(TXNS)
    last_start = len(encode_txns(TXNS[:-1]))
    for cut in range(last_start + 1, len(whole)):
        scan = scan_log(whole[:cut], source="log.1")
        assert scan.torn, cut
        assert scan.txns == tuple(TXNS[:-1]), cut
        assert scan.valid_end == last_start
        assert scan.torn_bytes == cut - last_start
        assert "cut short" in scan.torn_why


def test_checksum_mismatch_on_the_last_record_is_torn() -> None:
    data = bytearray(encode_txns(TXNS))
    data[-1] ^= 0xFF
    scan = scan_log(bytes(data), source="log.1")
    assert scan.torn and scan.txns == tuple(TXNS[:-1])
    assert "checksum" in scan.torn_why


def test_zero_filled_tail_is_torn() -> None:
    good = encode_txns(TXNS[:2])
    scan = scan_log(good + bytes(40), source="log.1")
    assert scan.torn and scan.txns == tuple(TXNS[:2]) and scan.valid_end == len(good)


@pytest.mark.parametrize("victim", [0, 1, 2])
def test_flipped_payload_byte_before_the_tail_names_the_offset(victim: int) -> None:
    data = bytearray(encode_txns(TXNS))
    start = len(encode_txns(TXNS[:victim]))
    data[start + HEADER_SIZE + 3] ^= 0x01
    with pytest.raises(CorruptLogError) as info:
        scan_log(bytes(data), source="/d/log.0000000100000001")
    assert info.value.offset == start
    assert info.value.path == "/d/log.0000000100000001"
    message = str(info.value)
    assert "/d/log.0000000100000001" in message and f"offset {start}" in message
    assert "checksum" in message


def test_damaged_length_field_in_the_middle_is_corruption() -> None:
    data = bytearray(encode_txns(TXNS))
    start = len(encode_txns(TXNS[:1]))
    data[start] ^= 0x40  # length field: header checksum no longer matches
    with pytest.raises(CorruptLogError) as info:
        scan_log(bytes(data), source="log.x")
    assert info.value.offset == start and "header" in info.value.why


def test_bad_length_with_a_good_header_checksum_is_corruption() -> None:
    length_crc = struct.pack(">II", 3, 0)
    header = length_crc + struct.pack(">I", zlib.crc32(length_crc))
    data = encode_txn(TXNS[0]) + header + encode_txn(TXNS[1])
    with pytest.raises(CorruptLogError) as info:
        scan_log(data, source="log.x")
    assert info.value.offset == len(encode_txn(TXNS[0]))
    assert "length 3" in info.value.why


def test_undecodable_record_with_good_checksums_is_corruption_even_at_the_tail() -> None:
    payload = b"\x09" + bytes(16)  # version 9
    length_crc = struct.pack(">II", len(payload), zlib.crc32(payload))
    record = length_crc + struct.pack(">I", zlib.crc32(length_crc)) + payload
    with pytest.raises(CorruptLogError, match="version 9"):
        scan_log(encode_txn(TXNS[0]) + record, source="log.x")


def test_zxids_must_strictly_increase() -> None:
    data = encode_txns([TXNS[1], TXNS[0]])
    with pytest.raises(CorruptLogError) as info:
        scan_log(data, source="log.x")
    assert info.value.offset == len(encode_txn(TXNS[1]))
    assert "does not increase" in info.value.why


def test_encode_rejects_bad_txns() -> None:
    with pytest.raises(ValueError, match="zxid"):
        encode_txn(Txn(zxid=-1, key="a", value="b"))
    # compiled (peer/native.py), the wrong type is refused before the check can name it
    compiled = "peer.records" in loaded()
    refused = pytest.raises(TypeError, match="str object expected; got int")
    with refused if compiled else pytest.raises(ValueError, match="key must be a str"):
        encode_txn(Txn(zxid=1, key=3, value="b"))  # type: ignore[arg-type]


def test_snapshot_round_trip() -> None:
    state = {"b": "2", "a": "1", "ключ": "значение", "": "empty key"}
    blob = encode_snapshot(make_zxid(3, 9), state)
    zxid, decoded = decode_snapshot(blob, source="snap")
    assert zxid == make_zxid(3, 9) and decoded == state
    assert encode_snapshot(make_zxid(3, 9), dict(reversed(state.items()))) == blob
    assert decode_snapshot(encode_snapshot(0, {}), source="s") == (0, {})


def test_every_single_byte_flip_of_a_snapshot_is_detected() -> None:
    blob = encode_snapshot(7, {"k": "v", "k2": "v2"})
    for offset in range(len(blob)):
        damaged = bytearray(blob)
        damaged[offset] ^= 0x5A
        with pytest.raises(CorruptSnapshotError) as info:
            decode_snapshot(bytes(damaged), source="/d/snapshot.7")
        assert "/d/snapshot.7" in str(info.value)


@pytest.mark.parametrize("cut", [0, 5, 20, -1])
def test_truncated_snapshot_is_detected(cut: int) -> None:
    blob = encode_snapshot(7, {"k": "v"})
    with pytest.raises(CorruptSnapshotError):
        decode_snapshot(blob[:cut], source="s")


def test_snapshot_with_good_checksum_but_bad_structure_is_detected() -> None:
    blob = encode_snapshot(7, {"k": "v"})
    body = blob[:-4] + b"junk"
    with pytest.raises(CorruptSnapshotError, match="stray bytes"):
        decode_snapshot(body + struct.pack(">I", zlib.crc32(body)), source="s")
    other = b"NOTSNP" + blob[6:]
    with pytest.raises(CorruptSnapshotError, match="magic"):
        decode_snapshot(other, source="s")


def test_snapshot_threshold_spans_half_to_all_and_is_seeded() -> None:
    rng = random.Random(4)
    values = [snapshot_threshold(100, rng) for _ in range(2000)]
    assert min(values) == 50 and max(values) == 100
    again = random.Random(4)
    assert [snapshot_threshold(100, again) for _ in range(2000)] == values
    assert snapshot_threshold(2, random.Random(1)) in (1, 2)
    with pytest.raises(ValueError, match="snap_count"):
        snapshot_threshold(1, rng)
