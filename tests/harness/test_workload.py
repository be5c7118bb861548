"""The workload on a real 3-peer cluster behind the embedded proxy: a well-formed
Jepsen-style history (every invoke completed exactly once, ok writes carry the zxid
the leader gave them), on/off control, and honest outcomes when the peers are gone."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from harness.cluster import Cluster, ClusterSpec
from harness.events import read_log
from harness.workload import Workload, WorkloadConfig
from peer.domain import epoch_of

pytestmark = pytest.mark.integration


def _history(path: Path) -> list[dict[str, object]]:
    log = read_log(path)
    assert not log.errors, log.errors
    return [dict(ev.fields) for ev in log.events]


def _completions_match_invokes(history: list[dict[str, object]]) -> Counter[str]:
    open_ops: dict[int, dict[str, object]] = {}
    kinds: Counter[str] = Counter()
    for record in history:
        kind = str(record["kind"])
        kinds[kind] += 1
        op_id = record["id"]
        assert isinstance(op_id, int), record  # the workload numbers its ops
        if kind == "invoke":
            assert op_id not in open_ops
            open_ops[op_id] = record
            continue
        invoke = open_ops.pop(op_id)  # a completion without its invoke fails here
        assert invoke["process"] == record["process"]
        assert invoke["op"] == record["op"]
        if record["op"] == "write":
            assert invoke["value"] == record["value"]
    assert not open_ops, f"invocations never completed: {sorted(open_ops)}"
    return kinds


def test_history_is_well_formed_and_writes_commit(tmp_path: Path) -> None:
    with Cluster(ClusterSpec(peers=3), tmp_path) as cluster:
        cluster.start()
        leader = cluster.wait_for_leader(15.0)
        epoch = cluster.status(leader)
        assert epoch is not None
        history_path = tmp_path / "history.jsonl"
        workload = Workload(
            WorkloadConfig(clients=2, rate=40.0, read_fraction=0.2, seed=3),
            sids=cluster.sids,
            address=cluster.client_address,
            history_path=history_path,
        )
        workload.start()
        time.sleep(1.5)
        workload.set_enabled(False)
        time.sleep(0.3)
        during_off = workload.stats.invoked
        time.sleep(0.5)
        assert workload.stats.invoked == during_off, "workload kept invoking while off"
        workload.stop()
    history = _history(history_path)
    kinds = _completions_match_invokes(history)
    assert kinds["ok"] > 5, kinds
    zxids = [r["zxid"] for r in history if r["kind"] == "ok" and r["op"] == "write"]
    assert zxids and len(set(zxids)) == len(zxids), "two acknowledged writes share a zxid"
    assert all(isinstance(z, int) and epoch_of(z) >= 1 for z in zxids)
    assert workload.stats.ok == kinds["ok"]
    assert workload.stats.invoked == kinds["invoke"]


def test_ops_against_dead_peers_fail_or_stay_unknown(tmp_path: Path) -> None:
    with Cluster(ClusterSpec(peers=3), tmp_path) as cluster:
        cluster.start()
        cluster.wait_for_leader(15.0)
        for sid in cluster.sids:
            cluster.kill(sid)
        history_path = tmp_path / "history.jsonl"
        workload = Workload(
            WorkloadConfig(clients=1, rate=20.0, timeout_s=0.3, seed=1),
            sids=cluster.sids,
            address=cluster.client_address,
            history_path=history_path,
        )
        workload.start()
        time.sleep(1.0)
        workload.stop()
    kinds = _completions_match_invokes(_history(history_path))
    assert kinds["invoke"] > 0
    assert kinds["ok"] == 0
    assert kinds["fail"] + kinds["info"] == kinds["invoke"]


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="clients"):
        WorkloadConfig(clients=0)
    with pytest.raises(ValueError, match="read_fraction"):
        WorkloadConfig(read_fraction=1.5)
