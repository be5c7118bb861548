"""Tests of faults/disk.py: each disk fault, applied to a closed peer data dir, is what the
next `Storage.open` observes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from faults.disk import corrupt_newest_snapshot, drop_unsynced_tail, tear_log_tail
from faults.errors import FaultError
from peer.domain import Txn, make_zxid
from peer.records import HEADER_SIZE, encode_txn
from peer.storage import Storage, list_segments


def txns(first: int, last: int) -> list[Txn]:
    return [
        Txn(zxid=make_zxid(1, c), key=f"k{c % 2}", value=f"v{c}") for c in range(first, last + 1)
    ]


def populated(data_dir: Path) -> None:
    storage, _ = Storage.open(data_dir)
    with storage:
        storage.append(txns(1, 4))
        storage.write_snapshot(make_zxid(1, 2), {"k0": "v2", "k1": "v1"})
        storage.append(txns(5, 6))
        storage.write_snapshot(make_zxid(1, 6), {"k0": "v6", "k1": "v5"})
        storage.append(txns(7, 9))


def test_torn_tail_is_truncated_by_the_next_open(tmp_path: Path) -> None:
    modes = set()
    for seed in range(12):
        data_dir = tmp_path / str(seed)
        populated(data_dir)
        before = {name: (data_dir / name).stat().st_size for _, name in list_segments(data_dir)}
        description = tear_log_tail(data_dir, random.Random(seed))
        assert description.startswith("tore log.")
        storage, rec = Storage.open(data_dir)
        with storage:
            assert rec.torn_bytes > 0
            if "cut its last record" in description:
                modes.add("cut")
                assert rec.txns == tuple(txns(7, 8))  # the torn record is gone
            else:
                modes.add("append")
                assert "appended" in description
                assert rec.txns == tuple(txns(7, 9))
            after = {name: (data_dir / name).stat().st_size for _, name in list_segments(data_dir)}
            assert after.keys() == before.keys()
            storage.append(txns(10, 10))  # writable after the repair
        storage, rec = Storage.open(data_dir)
        with storage:
            assert rec.torn_bytes == 0 and rec.txns[-1] == txns(10, 10)[0]
    assert modes == {"cut", "append"}


def _newest_log(data_dir: Path) -> Path:
    return data_dir / list_segments(data_dir)[-1][1]


@pytest.mark.parametrize("extra", [1, 5, HEADER_SIZE + 2])
def test_tear_cuts_exactly_the_requested_bytes(tmp_path: Path, extra: int) -> None:
    """Cutting a whole record plus `extra` bytes of the one before leaves one record
    whole and a torn remainder that the next open truncates."""
    populated(tmp_path)  # the newest segment holds zxids 7, 8, 9
    path = _newest_log(tmp_path)
    size = path.stat().st_size
    last = len(encode_txn(txns(9, 9)[0]))
    description = tear_log_tail(tmp_path, random.Random(0), nbytes=last + extra)
    assert path.stat().st_size == size - last - extra
    assert f"tore {path.name}: cut {last + extra} bytes off its end;" in description
    assert f"file {size} -> {size - last - extra} bytes" in description
    assert "1 of 3 records kept whole (last whole record zxid " in description
    storage, rec = Storage.open(tmp_path)
    with storage:
        assert rec.txns == tuple(txns(7, 7))
        assert rec.torn_bytes == len(encode_txn(txns(8, 8)[0])) - extra


def test_tear_on_a_record_boundary_loses_whole_records(tmp_path: Path) -> None:
    populated(tmp_path)
    last_two = sum(len(encode_txn(t)) for t in txns(8, 9))
    description = tear_log_tail(tmp_path, random.Random(0), nbytes=last_two)
    assert "0 bytes of a torn record" in description
    storage, rec = Storage.open(tmp_path)
    with storage:
        assert rec.txns == tuple(txns(7, 7)) and rec.torn_bytes == 0


def test_tear_more_than_the_file_is_clamped_to_its_size(tmp_path: Path) -> None:
    populated(tmp_path)
    path = _newest_log(tmp_path)
    size = path.stat().st_size
    description = tear_log_tail(tmp_path, random.Random(0), nbytes=size + 1000)
    assert path.stat().st_size == 0
    assert f"cut {size} bytes off its end (asked for {size + 1000}, clamped" in description
    assert "0 of 3 records kept whole (no whole record)" in description
    storage, rec = Storage.open(tmp_path)
    with storage:  # the snapshot at zxid 6 is all that is left
        assert rec.txns == () and rec.last_zxid == make_zxid(1, 6)


def test_tear_ignores_the_rng_when_given_a_count(tmp_path: Path) -> None:
    sizes = set()
    for seed in range(4):
        data_dir = tmp_path / str(seed)
        populated(data_dir)
        tear_log_tail(data_dir, random.Random(seed), nbytes=7)
        sizes.add(_newest_log(data_dir).stat().st_size)
    assert len(sizes) == 1


@pytest.mark.parametrize("nbytes", [0, -3, True])
def test_tear_refuses_a_bad_count(tmp_path: Path, nbytes: int) -> None:
    populated(tmp_path)
    with pytest.raises(FaultError, match="positive integer"):
        tear_log_tail(tmp_path, random.Random(0), nbytes=nbytes)


def test_tear_without_a_log_is_a_clear_error(tmp_path: Path) -> None:
    Storage.open(tmp_path)[0].close()
    with pytest.raises(FaultError, match="no non-empty log segment") as info:
        tear_log_tail(tmp_path, random.Random(1))
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize("seed", range(8))
def test_corrupt_newest_snapshot_makes_open_fall_back(tmp_path: Path, seed: int) -> None:
    populated(tmp_path)
    description = corrupt_newest_snapshot(tmp_path, random.Random(seed))
    newest = f"snapshot.{make_zxid(1, 6):016x}"
    assert description.startswith(f"corrupted {newest}")
    storage, rec = Storage.open(tmp_path)
    with storage:
        assert rec.skipped_snapshots == (newest,)
        assert rec.snapshot_zxid == make_zxid(1, 2)
        assert rec.txns == tuple(txns(3, 9))


def test_corrupt_snapshot_without_one_is_a_clear_error(tmp_path: Path) -> None:
    Storage.open(tmp_path)[0].close()
    with pytest.raises(FaultError, match="no snapshot to corrupt"):
        corrupt_newest_snapshot(tmp_path, random.Random(1))


def test_drop_unsynced_tail_loses_exactly_the_unsynced_writes(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    storage.append(txns(1, 3))
    storage.write(txns(4, 5))
    log_file, offset = storage.sync()
    storage.write(txns(6, 7))  # page cache only
    storage.close()
    description = drop_unsynced_tail(tmp_path, log_file, offset)
    assert f"cut {log_file}" in description
    storage, rec = Storage.open(tmp_path)
    with storage:
        assert rec.txns == tuple(txns(1, 5)) and rec.torn_bytes == 0


def test_drop_unsynced_tail_deletes_segments_begun_after_the_sync(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    storage.append(txns(1, 3))
    storage.write_snapshot(make_zxid(1, 2), {"k0": "v2", "k1": "v1"})
    log_file, offset = storage.synced
    storage.write(txns(4, 6))  # a new segment, never synced
    storage.close()
    assert len(list_segments(tmp_path)) == 2
    description = drop_unsynced_tail(tmp_path, log_file, offset)
    assert f"deleted log.{make_zxid(1, 4):016x}" in description
    storage, rec = Storage.open(tmp_path)
    with storage:
        assert rec.txns == tuple(txns(3, 3)) and rec.last_zxid == make_zxid(1, 3)


def test_drop_unsynced_tail_with_no_synced_segment_deletes_all(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    assert storage.sync() == ("", 0)
    storage.write(txns(1, 2))
    storage.close()
    drop_unsynced_tail(tmp_path, "", 0)
    storage, rec = Storage.open(tmp_path)
    with storage:
        assert rec.txns == () and rec.last_zxid == 0


@pytest.mark.parametrize(
    ("log_file", "offset", "match"),
    [
        ("snapshot.1", 0, "not a log segment"),
        ("../log.1", 0, "not a log segment"),
        ("log.1", -1, "non-negative"),
    ],
)
def test_drop_unsynced_tail_rejects_bad_requests(
    tmp_path: Path, log_file: str, offset: int, match: str
) -> None:
    with pytest.raises(FaultError, match=match):
        drop_unsynced_tail(tmp_path, log_file, offset)
