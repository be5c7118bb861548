"""Unit tests of peer/storage.py on real files in a per-test tmp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from peer.domain import Txn, make_zxid
from peer.errors import CorruptLogError, StorageError
from peer.records import encode_txn
from peer.storage import Recovered, Storage, list_segments, list_snapshots, log_name


def txn(epoch: int, counter: int, key: str = "k", value: str | None = None) -> Txn:
    return Txn(zxid=make_zxid(epoch, counter), key=key, value=value or f"v{epoch}.{counter}")


def batch(epoch: int, first: int, last: int) -> list[Txn]:
    return [txn(epoch, c, key=f"k{c % 3}") for c in range(first, last + 1)]


def reopen(storage: Storage) -> tuple[Storage, Recovered]:
    storage.close()
    return Storage.open(storage.data_dir)


def replayed(rec: Recovered) -> dict[str, str]:
    state = dict(rec.state)
    for t in rec.txns:
        state[t.key] = t.value
    return state


def test_fresh_dir_is_created_and_empty(tmp_path: Path) -> None:
    storage, rec = Storage.open(tmp_path / "new" / "data")
    with storage:
        assert rec == Recovered(
            snapshot_zxid=0,
            state={},
            txns=(),
            last_zxid=0,
            accepted_epoch=0,
            current_epoch=0,
            torn_bytes=0,
            skipped_snapshots=(),
        )
        assert storage.sync() == ("", 0)


def test_append_then_reopen_returns_every_txn(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    name, offset = storage.append(batch(1, 1, 3))
    assert name == log_name(make_zxid(1, 1))
    assert offset == (tmp_path / name).stat().st_size
    assert storage.append(batch(1, 4, 5))[1] > offset
    storage, rec = reopen(storage)
    with storage:
        assert rec.txns == tuple(batch(1, 1, 5))
        assert rec.last_zxid == make_zxid(1, 5) and rec.torn_bytes == 0


def test_write_refuses_non_increasing_zxids(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    with storage:
        storage.append([txn(1, 5)])
        with pytest.raises(StorageError, match="strictly increase"):
            storage.write([txn(1, 5)])
        with pytest.raises(StorageError, match="strictly increase"):
            storage.write([txn(1, 7), txn(1, 6)])


def test_boot_counter_starts_at_zero_and_survives_reopen(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    assert storage.next_boot() == 0
    assert storage.next_boot() == 1
    storage, _ = reopen(storage)
    with storage:
        assert storage.next_boot() == 2
        assert (tmp_path / "boot").read_text() == "2\n"


def test_one_storage_per_dir(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    with storage, pytest.raises(StorageError, match="in use"):
        Storage.open(tmp_path)
    Storage.open(tmp_path)[0].close()  # released by close


def test_closed_storage_refuses_writes(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    storage.close()
    with pytest.raises(StorageError, match="closed"):
        storage.append([txn(1, 1)])


# ---- torn tails and corruption ------------------------------------------------------


def test_torn_tail_is_truncated_and_the_log_is_writable_after(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    name, offset = storage.append(batch(1, 1, 3))
    storage.close()
    partial = encode_txn(txn(1, 4))[:9]
    with (tmp_path / name).open("ab") as f:
        f.write(partial)
    storage, rec = Storage.open(tmp_path)
    assert rec.torn_bytes == len(partial)
    assert rec.txns == tuple(batch(1, 1, 3))
    assert (tmp_path / name).stat().st_size == offset
    storage.append([txn(1, 4, value="after")])
    storage, rec = reopen(storage)
    with storage:
        assert rec.torn_bytes == 0
        assert rec.txns[-1] == txn(1, 4, value="after") and len(rec.txns) == 4


def test_segment_torn_to_nothing_is_removed(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    storage.append(batch(1, 1, 2))
    storage.write_snapshot(make_zxid(1, 2), {"k1": "v1.1", "k2": "v1.2"})
    storage.close()
    (tmp_path / log_name(make_zxid(1, 3))).write_bytes(encode_txn(txn(1, 3))[:20])
    storage, rec = Storage.open(tmp_path)
    with storage:
        assert rec.torn_bytes == 20 and rec.txns == ()
        assert list_segments(tmp_path) == []
        storage.append([txn(1, 3)])
        assert [n for _, n in list_segments(tmp_path)] == [log_name(make_zxid(1, 3))]


def test_mid_log_corruption_refuses_to_start_naming_file_and_offset(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    name, _ = storage.append(batch(1, 1, 4))
    storage.close()
    path = tmp_path / name
    data = bytearray(path.read_bytes())
    second = len(encode_txn(txn(1, 1, key="k1")))
    data[second + 15] ^= 0xFF  # inside record 2's payload, records 3 and 4 follow
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptLogError) as info:
        Storage.open(tmp_path)
    assert info.value.path == str(path) and info.value.offset == second
    assert f"{path} at byte offset {second}" in str(info.value)
    # The refusal changed nothing and released the lock: same answer again.
    with pytest.raises(CorruptLogError):
        Storage.open(tmp_path)
    assert path.read_bytes() == bytes(data)


def test_torn_record_in_an_older_segment_is_corruption(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    first, _ = storage.append(batch(1, 1, 3))
    storage.write_snapshot(make_zxid(1, 2), {})  # keeps segment 1 (holds 1:3)
    storage.append(batch(1, 4, 5))
    storage.close()
    path = tmp_path / first
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CorruptLogError, match="followed by log"):
        Storage.open(tmp_path)


def test_garbled_epoch_file_is_a_clear_error(tmp_path: Path) -> None:
    Storage.open(tmp_path)[0].close()
    (tmp_path / "currentEpoch").write_text("seven\n")
    with pytest.raises(StorageError, match=r"currentEpoch.*decimal"):
        Storage.open(tmp_path)


# ---- snapshots ---------------------------------------------------------------------


def test_snapshot_then_reopen_replays_only_the_txns_after_it(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    storage.append(batch(1, 1, 6))
    name = storage.write_snapshot(make_zxid(1, 4), {"snap": "at 1:4"})
    assert name == f"snapshot.{make_zxid(1, 4):016x}"
    storage.append(batch(1, 7, 8))
    storage, rec = reopen(storage)
    with storage:
        assert rec.snapshot_zxid == make_zxid(1, 4) and rec.state == {"snap": "at 1:4"}
        assert rec.txns == tuple(batch(1, 5, 8))
        assert rec.last_zxid == make_zxid(1, 8)


def test_snapshot_starts_a_new_segment(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    with storage:
        storage.append(batch(1, 1, 2))
        storage.write_snapshot(make_zxid(1, 1), {})
        storage.append(batch(1, 3, 3))
        names = [n for _, n in list_segments(tmp_path)]
        assert names == [log_name(make_zxid(1, 1)), log_name(make_zxid(1, 3))]


def test_snapshot_refuses_to_run_ahead_of_the_log_or_go_back(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    with storage:
        storage.append(batch(1, 1, 3))
        with pytest.raises(StorageError, match="ahead of the last logged"):
            storage.write_snapshot(make_zxid(1, 4), {})
        storage.write_snapshot(make_zxid(1, 3), {})
        with pytest.raises(StorageError, match="older than the newest"):
            storage.write_snapshot(make_zxid(1, 2), {})


def test_corrupt_newest_snapshot_falls_back_to_the_older_one(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    storage.append(batch(1, 1, 4))
    storage.write_snapshot(make_zxid(1, 2), {"k1": "v1.1", "k2": "v1.2"})
    storage.append(batch(1, 5, 6))
    newest = storage.write_snapshot(make_zxid(1, 6), {"whatever": "x"})
    storage.close()
    path = tmp_path / newest
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    storage, rec = Storage.open(tmp_path)
    with storage:
        assert rec.skipped_snapshots == (newest,)
        assert rec.snapshot_zxid == make_zxid(1, 2)
        assert rec.txns == tuple(batch(1, 3, 6))
        assert replayed(rec) == {"k0": "v1.6", "k1": "v1.4", "k2": "v1.5"}
        assert (tmp_path / (newest + ".corrupt")).exists()
        assert [z for z, _ in list_snapshots(tmp_path)] == [make_zxid(1, 2)]


def test_no_valid_snapshot_refuses_to_start(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    storage.append(batch(1, 1, 2))
    name = storage.write_snapshot(make_zxid(1, 2), {"a": "b"})
    storage.close()
    (tmp_path / name).write_bytes(b"QCSNAP garbage")
    for _ in range(2):  # refusing leaves the files as they were
        with pytest.raises(StorageError, match="no valid snapshot"):
            Storage.open(tmp_path)


def test_pruning_keeps_three_snapshots_and_the_logs_they_need(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    with storage:
        for i in range(6):
            storage.append(batch(1, 10 * i + 1, 10 * i + 10))
            # Snapshot lags the log by 3 txns, as a peer's applied state can.
            storage.write_snapshot(make_zxid(1, 10 * i + 7), {"i": str(i)})
        snaps = [z for z, _ in list_snapshots(tmp_path)]
        assert snaps == [make_zxid(1, 37), make_zxid(1, 47), make_zxid(1, 57)]
        # Segments begin after each snapshot; the one holding 1:38.. is still needed.
        firsts = [z for z, _ in list_segments(tmp_path)]
        assert firsts == [make_zxid(1, 31), make_zxid(1, 41), make_zxid(1, 51)]
    for victim in snaps[1:]:  # damage the two newest: recovery reaches the oldest kept
        path = tmp_path / f"snapshot.{victim:016x}"
        path.write_bytes(path.read_bytes()[:-1])
    storage, rec = Storage.open(tmp_path)
    with storage:
        assert rec.snapshot_zxid == make_zxid(1, 37) and rec.state == {"i": "3"}
        assert rec.txns == tuple(batch(1, 38, 60))


# ---- epochs ------------------------------------------------------------------------


def test_epoch_files_round_trip_and_may_decrease(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    storage.set_accepted_epoch(5)
    storage.set_current_epoch(4)
    storage.set_accepted_epoch(4)  # a decrease is written, not refused
    storage, rec = reopen(storage)
    with storage:
        assert (rec.accepted_epoch, rec.current_epoch) == (4, 4)
        assert (tmp_path / "acceptedEpoch").read_text() == "4\n"
        assert not list(tmp_path.glob("*.tmp"))
        with pytest.raises(StorageError, match="non-negative"):
            storage.set_current_epoch(-1)


def test_accepted_epoch_below_current_epoch_refuses_to_start(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    storage.set_accepted_epoch(3)
    storage.set_current_epoch(4)
    storage.close()
    with pytest.raises(StorageError, match="acceptedEpoch 3 < currentEpoch 4"):
        Storage.open(tmp_path)


def test_missing_accepted_epoch_with_a_current_epoch_refuses(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    storage.set_current_epoch(1)
    storage.close()
    with pytest.raises(StorageError, match="acceptedEpoch 0 < currentEpoch 1"):
        Storage.open(tmp_path)


def test_leftover_tmp_files_are_removed_at_open(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    storage.set_accepted_epoch(2)
    storage.close()
    (tmp_path / "acceptedEpoch.tmp").write_text("9\n")
    storage, rec = Storage.open(tmp_path)
    with storage:
        assert rec.accepted_epoch == 2 and not (tmp_path / "acceptedEpoch.tmp").exists()


# ---- truncation and SNAP -----------------------------------------------------------


def test_truncate_after_across_segments(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    storage.append(batch(1, 1, 5))
    storage.write_snapshot(make_zxid(1, 2), {"s": "2"})
    storage.append(batch(1, 6, 8))
    storage.write_snapshot(make_zxid(1, 7), {"s": "7"})
    storage.write([txn(2, 1)])  # unsynced: truncate_after syncs it first
    assert len(list_segments(tmp_path)) == 3
    assert storage.truncate_after(make_zxid(1, 4)) == 5  # 1:5, 1:6, 1:7, 1:8, 2:1
    assert storage.last_zxid == make_zxid(1, 4)
    assert [z for z, _ in list_segments(tmp_path)] == [make_zxid(1, 1)]
    assert [z for z, _ in list_snapshots(tmp_path)] == [make_zxid(1, 2)]
    storage.append([txn(3, 1, key="new")])
    storage, rec = reopen(storage)
    with storage:
        assert rec.snapshot_zxid == make_zxid(1, 2)
        assert rec.txns == (*batch(1, 3, 4), txn(3, 1, key="new"))
        assert storage.truncate_after(make_zxid(3, 1)) == 0


def test_truncate_below_the_oldest_snapshot_is_refused(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    with storage:
        storage.append(batch(1, 1, 5))
        storage.write_snapshot(make_zxid(1, 3), {})
        with pytest.raises(StorageError, match="oldest snapshot"):
            storage.truncate_after(make_zxid(1, 2))
        assert storage.truncate_after(make_zxid(1, 3)) == 2


def test_truncate_everything_without_snapshots(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    with storage:
        storage.append(batch(1, 1, 3))
        assert storage.truncate_after(0) == 3
        assert list_segments(tmp_path) == [] and storage.synced == ("", 0)
        storage.append([txn(1, 1, value="again")])
    storage, rec = Storage.open(tmp_path)
    with storage:
        assert rec.txns == (txn(1, 1, value="again"),)


def test_install_snapshot_replaces_everything(tmp_path: Path) -> None:
    storage, _ = Storage.open(tmp_path)
    storage.append(batch(1, 1, 5))
    storage.write_snapshot(make_zxid(1, 3), {"old": "1"})
    storage.append(batch(1, 6, 9))
    storage.install_snapshot(make_zxid(1, 2), {"leader": "state"})  # even an older zxid
    assert list_segments(tmp_path) == []
    assert [z for z, _ in list_snapshots(tmp_path)] == [make_zxid(1, 2)]
    assert storage.last_zxid == make_zxid(1, 2)
    storage.append([txn(2, 1, key="leader", value="next")])
    assert [z for z, _ in list_segments(tmp_path)] == [make_zxid(2, 1)]
    storage, rec = reopen(storage)
    with storage:
        assert rec.snapshot_zxid == make_zxid(1, 2)
        assert replayed(rec) == {"leader": "next"}
        assert rec.last_zxid == make_zxid(2, 1)
