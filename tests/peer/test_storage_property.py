"""Property test of peer/storage.py: any sequence of appends, unsynced writes, syncs,
snapshots, truncations, SNAP installs and crashes, then reopen, recovers exactly the
fsynced prefix.

A crash is the power-loss model of `faults.disk.drop_unsynced_tail` (everything after the
position the last sync reported is gone), optionally plus a partial record appended to the
newest segment (the write the crash interrupted). The model is a plain list of txns and
the snapshot zxids the storage should hold."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from faults.disk import drop_unsynced_tail
from peer.domain import Txn
from peer.records import encode_txn
from peer.storage import Recovered, Storage, list_segments

OPS = st.one_of(
    st.tuples(st.just("append"), st.integers(1, 3)),
    st.tuples(st.just("write"), st.integers(1, 3)),
    st.tuples(st.just("sync"), st.just(0)),
    st.tuples(st.just("snapshot"), st.integers(0, 100)),
    st.tuples(st.just("truncate"), st.integers(0, 100)),
    st.tuples(st.just("install"), st.integers(1, 5)),
    st.tuples(st.just("crash"), st.integers(0, 100)),
)


@dataclass
class Model:
    base_state: dict[str, str] = field(default_factory=dict)  # state of the last install
    base_zxid: int = 0
    txns: list[Txn] = field(default_factory=list)  # logged after the install, in order
    synced: int = 0  # txns[:synced] are durable
    snapshots: list[int] = field(default_factory=list)

    @property
    def last_zxid(self) -> int:
        last = self.txns[-1].zxid if self.txns else 0
        return max([last, self.base_zxid, *self.snapshots])

    def state_at(self, zxid: int) -> dict[str, str]:
        state = dict(self.base_state)
        for t in self.txns:
            if t.zxid <= zxid:
                state[t.key] = t.value
        return state


def check(rec: Recovered, model: Model) -> None:
    assert rec.snapshot_zxid == (model.snapshots[-1] if model.snapshots else 0)
    assert rec.txns == tuple(t for t in model.txns if t.zxid > rec.snapshot_zxid)
    assert rec.last_zxid == model.last_zxid
    state = dict(rec.state)
    for t in rec.txns:
        state[t.key] = t.value
    assert state == model.state_at(model.last_zxid)
    assert rec.skipped_snapshots == ()


def run(ops: list[tuple[str, int]], data_dir: Path) -> None:
    model = Model()
    storage, rec = Storage.open(data_dir)
    check(rec, model)
    try:
        for seq, (op, arg) in enumerate(ops):
            match op:
                case "append" | "write":
                    new = [
                        Txn(zxid=model.last_zxid + i + 1, key=f"k{i % 3}", value=f"{seq}.{i}")
                        for i in range(arg)
                    ]
                    model.txns.extend(new)
                    if op == "append":
                        assert storage.append(new) == storage.synced
                        model.synced = len(model.txns)
                    else:
                        storage.write(new)
                case "sync":
                    storage.sync()
                    model.synced = len(model.txns)
                case "snapshot":
                    newest = model.snapshots[-1] if model.snapshots else 0
                    choices = [model.last_zxid, *(t.zxid for t in model.txns if t.zxid >= newest)]
                    zxid = choices[arg % len(choices)]
                    storage.write_snapshot(zxid, model.state_at(zxid))
                    model.synced = len(model.txns)
                    if zxid not in model.snapshots:
                        model.snapshots.append(zxid)
                    del model.snapshots[:-3]
                case "truncate":
                    oldest = model.snapshots[0] if model.snapshots else 0
                    choices = [oldest, *(t.zxid for t in model.txns if t.zxid > oldest)]
                    zxid = choices[arg % len(choices)]
                    expected = sum(1 for t in model.txns if t.zxid > zxid)
                    assert storage.truncate_after(zxid) == expected
                    model.txns = [t for t in model.txns if t.zxid <= zxid]
                    model.synced = len(model.txns)
                    model.snapshots = [s for s in model.snapshots if s <= zxid]
                    assert storage.last_zxid == model.last_zxid
                case "install":
                    zxid = model.last_zxid + arg
                    state = {"installed": str(seq), "k0": f"snap{seq}"}
                    storage.install_snapshot(zxid, state)
                    model = Model(base_state=state, base_zxid=zxid, snapshots=[zxid])
                case "crash":
                    log_file, offset = storage.synced
                    storage.close()
                    drop_unsynced_tail(data_dir, log_file, offset)
                    segments = list_segments(data_dir)
                    if arg % 2 and segments:
                        # The interrupted write: a prefix of one more record.
                        record = encode_txn(Txn(zxid=model.last_zxid + 1, key="t", value="torn"))
                        with (data_dir / segments[-1][1]).open("ab") as f:
                            f.write(record[: 1 + arg % (len(record) - 1)])
                    del model.txns[model.synced :]
                    storage, rec = Storage.open(data_dir)
                    check(rec, model)
                case _:
                    raise AssertionError(op)
        storage.sync()
        model.synced = len(model.txns)
        storage.close()
        storage, rec = Storage.open(data_dir)
        check(rec, model)
    finally:
        storage.close()


@settings(max_examples=50, deadline=None)
@given(st.lists(OPS, max_size=20))
def test_reopen_recovers_exactly_the_fsynced_prefix(ops: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory(prefix="storage-prop-") as tmp:
        run(ops, Path(tmp) / "data")


def test_a_crash_after_unsynced_writes_in_a_new_segment_loses_only_them() -> None:
    """A fixed sequence through the rolled-segment case, so it is always exercised."""
    with tempfile.TemporaryDirectory(prefix="storage-prop-") as tmp:
        run(
            [
                ("append", 3),
                ("snapshot", 0),
                ("write", 2),
                ("crash", 5),
                ("write", 2),
                ("sync", 0),
                ("write", 1),
                ("truncate", 2),
                ("install", 3),
                ("write", 2),
                ("crash", 2),
                ("append", 1),
            ],
            Path(tmp) / "data",
        )
