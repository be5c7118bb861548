"""The deterministic simulator: exact replay, a complete run dir, faults that behave like
the real ones (crash loses only un-fsynced data, pause holds inputs), and the CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from faults.plan import Crash, Heal, Partition, Pause, Plan, Restart, Resume, TearLogTail
from faults.topology import Shape
from harness.checker import Outcome
from harness.events import Event, read_log
from harness.runlog import check_run_dir
from harness.runner import RUN_JSON_VERSION, recorded_options
from harness.sim import SimOptions, World, WorldSpec, run_sim, sim_main, simulated_config
from harness.sim.run import begin
from peer.domain import FAST
from peer.storage import Storage

LOGS = ("harness.jsonl", "history.jsonl", *(f"peer-{s}.jsonl" for s in range(1, 6)))


def _logs(run_dir: Path) -> dict[str, bytes]:
    return {name: (run_dir / name).read_bytes() for name in LOGS if (run_dir / name).exists()}


def test_same_seed_gives_byte_identical_logs_and_other_seeds_differ(tmp_path: Path) -> None:
    options = SimOptions(seed=11, duration_s=12, report=False)
    first = run_sim(options, tmp_path / "a")
    second = run_sim(options, tmp_path / "b")
    other = run_sim(SimOptions(seed=12, duration_s=12, report=False), tmp_path / "c")
    a, b, c = _logs(first.run_dir), _logs(second.run_dir), _logs(other.run_dir)
    assert set(a) == set(LOGS)
    assert a == b
    assert (tmp_path / "a" / "plan.json").read_bytes() == (
        tmp_path / "b" / "plan.json"
    ).read_bytes()
    assert a["harness.jsonl"] != c["harness.jsonl"]
    assert a["history.jsonl"] != c["history.jsonl"]


def test_run_dir_is_a_complete_simulated_run(tmp_path: Path) -> None:
    result = run_sim(SimOptions(seed=5, duration_s=12), tmp_path / "run")
    run_dir = result.run_dir
    for name in ("plan.json", "seed", "cluster.json", "run.json", "verdict.json", "report.html"):
        assert (run_dir / name).exists(), name
    # run.json has the schema of every run dir (harness.runner.run_record), source "sim"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["source"] == "sim" and record["versions"]["run_json"] == RUN_JSON_VERSION
    assert record["options"]["seed"] == record["seed"] == 5
    assert record["options"]["timing"] == record["timing"]["name"] == "fast"
    assert (record["peers"], record["bug"], record["duration_ms"]) == (5, None, 12_000)
    assert recorded_options(run_dir)["peers"] == 5
    harness = read_log(run_dir / "harness.jsonl")
    assert not harness.errors and not harness.torn_tail
    start = harness.events[0]
    assert start.kind == "run_start" and start["simulated"] is True and start["seed"] == 5
    # every plan step shows up as a fault event carrying the full fault state
    plan = json.loads((run_dir / "plan.json").read_text())
    faults = [e for e in harness.events if e.kind == "fault" and e["step"] >= 0]
    assert [e["step"] for e in faults] == list(range(len(plan["steps"])))
    assert all({"cut", "down", "paused", "targets"} <= set(e.fields) for e in faults)
    # the checker judges it the same way again, and the run did real work
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert verdict["verdict"] == check_run_dir(run_dir).outcome.value == result.outcome.value
    assert result.outcome is Outcome.VALID, result.verdict.violations
    history = read_log(run_dir / "history.jsonl")
    oks = [e for e in history.events if e.kind == "ok" and e["op"] == "write"]
    assert len(oks) > 50
    committed = {
        e["zxid"] for e in read_log(run_dir / "peer-1.jsonl").events if e.kind == "deliver"
    }
    assert committed  # peer 1 applied writes
    assert result.simulated_s >= 12


def _world(tmp_path: Path, seed: int = 3) -> World:
    config = simulated_config((1, 2, 3), FAST)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "cluster.json").write_text(json.dumps(config.to_json()))
    world = World(WorldSpec(seed=seed, config=config), run_dir, tmp_path / "data")
    plan = Plan(
        profile="test",
        seed=seed,
        peers=(1, 2, 3),
        duration_ms=10_000,
        quiet_ms=5_000,
        initially_running=(1, 2, 3),
        steps=(),
    )
    begin(world, plan, seed=seed)
    return world


def _advance(world: World, ms: int) -> None:
    world.sched.run_until(world.sched.now + ms * 1_000_000)


def test_crash_loses_only_unsynced_data_and_restart_recovers_from_disk(tmp_path: Path) -> None:
    world = _world(tmp_path)
    try:
        _advance(world, 3_000)
        leader = world.leader()
        assert leader is not None
        follower = next(s for s in (1, 2, 3) if s != leader)
        peer = world.peers[follower]
        logged_before = peer.replica.last_zxid
        assert logged_before > 0  # the workload wrote through the quorum
        # Plant an un-fsynced write directly on its storage: a crash must drop it.
        from peer.domain import Txn

        peer.storage.write([Txn(zxid=logged_before + 1, key="ghost", value="x")])
        world.apply(Crash(target=follower), step=0)
        data = world.data_dir(follower)
        storage, recovered = Storage.open(data)
        storage.close()
        assert recovered.last_zxid == logged_before
        assert "ghost" not in recovered.state
        world.apply(Restart(target=follower), step=1)
        boot = world.peers[follower]
        assert boot.boot == 1 and boot.replica.last_zxid == logged_before
        _advance(world, 3_000)
        assert world.leader() is not None
        assert world.peers[follower].replica.committed_zxid > logged_before  # caught up
    finally:
        world.close()


def test_tear_log_tail_cuts_the_plans_byte_count(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    world = _world(tmp_path)
    try:
        _advance(world, 2_000)
        leader = world.leader()
        assert leader is not None
        follower = next(s for s in (1, 2, 3) if s != leader)
        world.apply(Crash(target=follower), step=0)
        data = world.data_dir(follower)
        newest = max(data.glob("log.*"), key=lambda p: p.name)
        size = newest.stat().st_size
        world.apply(TearLogTail(target=follower, bytes=5), step=1)
        assert newest.stat().st_size == size - 5
        fault = [e for e in _harness_events(world) if e.kind == "fault"][-1]
        assert fault["what"] == "tear-log-tail" and "cut 5 bytes off its end" in fault["detail"]
        world.apply(Restart(target=follower), step=2)
        assert world.running(follower)  # a torn tail is the end of the log, not corruption
    finally:
        world.close()
    # storage's warning went where the launcher keeps a peer's stderr, not to ours
    stderr = (world.run_dir / f"peer-{follower}.stderr").read_text()
    assert stderr.startswith(f"truncating torn tail of <data>/peer-{follower}/{newest.name}: ")
    assert stderr.count("\n") == 1
    assert capfd.readouterr() == ("", "")


def _harness_events(world: World) -> list[Event]:
    world.flush()
    return read_log(world.run_dir / "harness.jsonl").events


def test_a_paused_peer_processes_nothing_until_resumed(tmp_path: Path) -> None:
    world = _world(tmp_path)
    try:
        _advance(world, 3_000)
        leader = world.leader()
        assert leader is not None
        world.apply(Pause(target=leader), step=0)
        paused = world.peers[leader]
        zxid = paused.replica.committed_zxid
        _advance(world, 2_000)
        assert paused.replica.committed_zxid == zxid  # frozen
        assert paused.deferred  # its timers and inbound data wait
        new_leader = world.leader()
        assert new_leader is not None and new_leader != leader
        world.apply(Resume(target=leader), step=1)
        _advance(world, 3_000)
        assert not paused.deferred
        assert world.leader() is not None
        assert paused.election.vote.leader == world.leader()  # rejoined, follows
    finally:
        world.close()


def test_partition_cuts_the_minority_and_heal_reconnects(tmp_path: Path) -> None:
    world = _world(tmp_path)
    try:
        _advance(world, 3_000)
        leader = world.leader()
        assert leader is not None
        world.apply(Partition(shape=Shape.ISOLATE_LEADER), step=0)
        _advance(world, 3_000)
        new_leader = world.leader()
        assert new_leader is not None and new_leader != leader
        world.apply(Heal(), step=1)
        _advance(world, 3_000)
        assert world.peers[leader].election.vote.leader == world.leader()
    finally:
        world.close()
    verdict = check_run_dir(tmp_path / "run")
    safety = {v.prop.value for v in verdict.violations} - {"majority-survival"}
    assert not safety, verdict.violations


def _args(tmp_path: Path, **over: object) -> argparse.Namespace:
    base: dict[str, object] = {
        "seed": None,
        "seeds": None,
        "peers": 5,
        "duration": 10.0,
        "profile": "mixed",
        "bug": None,
        "out": tmp_path / "runs",
        "jobs": 1,
    }
    base.update(over)
    return argparse.Namespace(**base)


def test_cli_single_seed_prints_seed_verdict_and_run_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = sim_main(_args(tmp_path, seed=4))
    out = capsys.readouterr().out
    assert "seed: 4" in out and "verdict: seed 4: valid" in out
    assert str(tmp_path / "runs" / "sim-seed-4") in out
    assert code == 0


def test_cli_refuses_unknown_bug_and_both_seed_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sim_main(_args(tmp_path, seed=1, bug="no-such-bug")) == 2
    assert "unknown --bug 'no-such-bug'" in capsys.readouterr().err
    assert sim_main(_args(tmp_path, seed=1, seeds=(1, 2))) == 2
    assert "not both" in capsys.readouterr().err


def test_cli_sweep_stops_at_first_violation_and_prints_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = sim_main(_args(tmp_path, seeds=(1, 3), bug="minority-quorum", duration=30.0))
    out = capsys.readouterr().out
    assert code == 1
    line = next(x for x in out.splitlines() if x.startswith("replay: "))
    assert line.startswith("replay: quorum-chaos sim --seed ")
    assert "--bug minority-quorum" in line and "--duration 30" in line
    seed = int(line.split("--seed ")[1].split()[0])
    assert (tmp_path / "runs" / f"sim-seed-{seed}" / "report.html").exists()


def _files(data: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(data.iterdir()) if p.name != "lock"}


def test_simulated_disk_writes_what_storage_writes(tmp_path: Path) -> None:
    """SimStorage skips fsync syscalls only: same files, bytes, positions and refusals."""
    from harness.sim.disk import EncodeCache, SimStorage
    from peer.domain import Txn
    from peer.errors import StorageError

    cache = EncodeCache()

    def txn(n: int) -> Txn:
        return Txn(zxid=(1 << 32) + n, key=f"k{n % 3}", value=f"v{n}")

    real, _ = Storage.open(tmp_path / "real")
    sim, _ = SimStorage.open(tmp_path / "sim")
    assert isinstance(sim, SimStorage)
    sim.encoded = cache
    try:
        for storage in (real, sim):
            positions = []
            for n in range(1, 6):
                storage.write([txn(n)])  # the first one opens the segment
                positions.append(storage.sync())
            storage.write([txn(6), txn(7)])  # a batch: the inherited path
            storage.write([txn(8)])  # not synced
            positions.append(storage.synced)
            with pytest.raises(StorageError, match="strictly increase"):
                storage.write([txn(8)])
            positions.append(storage.sync())
            storage.write_snapshot(txn(7).zxid, {"k1": "v7"})
            storage.write([txn(9)])
            positions.append(storage.sync())
            storage.truncate_after(txn(8).zxid)
            positions.append(storage.sync())
            storage.write([txn(10)])
            positions.append(storage.sync())
            if storage is real:
                real_positions = positions
        assert positions == real_positions
        assert _files(tmp_path / "sim") == _files(tmp_path / "real")
    finally:
        real.close()
        sim.close()
    reopened, recovered = Storage.open(tmp_path / "sim")
    reopened.close()
    assert recovered.last_zxid == txn(10).zxid and recovered.torn_bytes == 0


def test_sim_peer_and_node_share_the_storage_facing_effect_handlers() -> None:
    """Both adapters dispatch through peer.effect_dispatch; only transport hooks differ."""
    from harness.sim.world import SimPeer
    from peer.effect_dispatch import EffectRunner
    from peer.effects import (
        AppendTxns,
        Decided,
        Emit,
        GoLooking,
        InstallSnapshot,
        PersistAcceptedEpoch,
        PersistCurrentEpoch,
        SyncLog,
        TruncateLog,
        WriteSnapshot,
    )
    from peer.node import Node

    shared = (
        AppendTxns,
        Decided,
        Emit,
        GoLooking,
        InstallSnapshot,
        PersistAcceptedEpoch,
        PersistCurrentEpoch,
        SyncLog,
        TruncateLog,
        WriteSnapshot,
    )
    assert SimPeer._effect_table.keys() == Node._effect_table.keys()
    for kind in shared:
        assert SimPeer._effect_table[kind] is Node._effect_table[kind], kind
    assert SimPeer._sync_log is Node._sync_log is EffectRunner._sync_log
