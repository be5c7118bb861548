"""The nemesis on real processes: each fault kind observably happens to a 3-peer cluster
behind the embedded Toxiproxy, every step is logged with its resolution, failures are
logged as `fault_failed` and the run goes on, and a run always ends healed.

Timing is only ever asserted loosely (a latency toxic delays by *at least* its value,
and by less than ten times it); every wait has a deadline naming what it waited for."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from faults.nemesis import Nemesis
from faults.plan import (
    PLAN_VERSION,
    CorruptSnapshot,
    Crash,
    Heal,
    Latency,
    LoseUnsynced,
    OneWay,
    Partition,
    Pause,
    Plan,
    Reset,
    Restart,
    Resume,
    Step,
    Sym,
    TearLogTail,
    Workload,
)
from faults.topology import Shape
from harness.client import PeerClient
from harness.cluster import Cluster, ClusterSpec
from harness.events import Event, read_log
from peer.domain import Timing

pytestmark = pytest.mark.integration

LEADER_S = 20.0  # generous deadlines: 2 shared cores, other tests running
PEERS = (1, 2, 3)


def _plan(steps: tuple[Step, ...] = ()) -> Plan:
    return Plan(
        version=PLAN_VERSION,
        generator_version=None,
        profile="test",
        seed=None,
        peers=PEERS,
        duration_ms=10_000,
        quiet_ms=0,
        initially_running=PEERS,
        steps=steps,
    )


def _launch(run_dir: Path, timing: Timing) -> Iterator[Cluster]:
    with Cluster(ClusterSpec(peers=3, timing=timing), run_dir) as c:
        c.start()
        c.wait_for_leader(LEADER_S)
        yield c


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from _launch(tmp_path / "run", Timing())


@pytest.fixture
def snapshotting_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Snapshots every 10 txns, so a few writes leave several snapshots behind."""
    yield from _launch(tmp_path / "run", Timing(snap_count=10))


def _wait(what: str, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _events(cluster: Cluster, sid: int, kind: str) -> list[Event]:
    return [e for e in read_log(cluster.event_log(sid)).events if e.kind == kind]


def _harness(cluster: Cluster, *kinds: str) -> list[Event]:
    events = read_log(cluster.run_dir / "harness.jsonl").events
    return [e for e in events if e.kind in kinds]


def _last_fault(cluster: Cluster, what: str) -> Event:
    return [e for e in _harness(cluster, "fault") if e["what"] == what][-1]


def _write(cluster: Cluster, count: int, prefix: str) -> list[int]:
    leader = cluster.wait_for_leader(LEADER_S)
    host, port = cluster.client_address(leader)
    with PeerClient(host, port, timeout=5.0) as client:
        return [client.write(f"{prefix}{n}", str(n)) for n in range(count)]


def _toxics(cluster: Cluster) -> list[tuple[str, str]]:
    return [(p.name, t.name) for p in cluster.toxiproxy.proxies().values() for t in p.toxics]


def _follows(cluster: Cluster, sid: int) -> bool:
    status = cluster.status(sid)
    return status is not None and status.get("state") == "FOLLOWING"


def test_partition_one_way_reset_and_heal(cluster: Cluster) -> None:
    nemesis = Nemesis(cluster, _plan(), seed=1)
    leader = cluster.wait_for_leader(LEADER_S)
    # isolate a follower: its data to everyone is dropped, so its votes stop arriving
    res = nemesis.apply(Partition(shape=Shape.ISOLATE, target=Sym.FOLLOWER))
    (f,) = res.targets
    others = [s for s in PEERS if s != f]
    assert f != leader
    assert {tuple(sorted(g)) for g in res.groups or ()} == {(f,), tuple(others)}
    event = _last_fault(cluster, "partition")
    assert event["targets"] == [f]
    assert sorted(map(tuple, event["cut"])) == sorted(
        [(f, o) for o in others] + [(o, f) for o in others]
    )
    cut_t = event.t + 300_000_000  # what was in flight when the toxics went in

    def sent_since(t: int) -> list[Event]:
        return [e for e in _events(cluster, f, "vote_sent") if e.t > t and e["to"] in others]

    _wait(f"isolated peer {f} to send votes", lambda: len(sent_since(cut_t)) >= 2)
    heal_t_before = time.monotonic_ns()
    for o in others:
        late = [e for e in _events(cluster, o, "vote_recv") if e["from"] == f and e.t > cut_t]
        assert late == [], f"peer {o} received votes from isolated peer {f}: {late}"
    nemesis.apply(Heal())
    assert _toxics(cluster) == []
    assert nemesis.net.cut == frozenset()
    _wait(
        f"votes of peer {f} to arrive after heal",
        lambda: any(
            e["from"] == f and e.t > heal_t_before
            for o in others
            for e in _events(cluster, o, "vote_recv")
        ),
    )
    _wait(f"peer {f} to follow again", lambda: _follows(cluster, f), LEADER_S)

    # one-way: everyone's data to f is cut, f's data to them still flows
    res = nemesis.apply(OneWay(src=Sym.ALL, dst=f))
    assert res.links == frozenset((o, f) for o in others)
    one_way_t = _last_fault(cluster, "one-way").t + 300_000_000
    _wait(
        f"peer {f}'s votes to reach the others across the one-way cut",
        lambda: any(
            e["from"] == f and e.t > one_way_t
            for o in others
            for e in _events(cluster, o, "vote_recv")
        ),
    )
    assert [
        e for e in _events(cluster, f, "vote_recv") if e.t > one_way_t and e["from"] in others
    ] == [], "data to the cut-off peer arrived"

    # reset closes the live connections of the links (the proxies come back enabled)
    nemesis.apply(Reset(links=((f, others[0]),)))
    assert all(p.enabled for p in cluster.toxiproxy.proxies().values())
    assert _last_fault(cluster, "reset")["targets"] == sorted([f, others[0]])

    nemesis.heal()
    assert _toxics(cluster) == []
    _wait(f"peer {f} to follow after the final heal", lambda: _follows(cluster, f), LEADER_S)
    assert nemesis.failures == []


def test_latency_delays_replication_by_about_its_value(cluster: Cluster) -> None:
    latency_ms = 300
    nemesis = Nemesis(cluster, _plan(), seed=2)
    leader = cluster.wait_for_leader(LEADER_S)
    f = next(s for s in PEERS if s != leader)

    def lags(zxids: list[int], sid: int) -> list[float]:
        proposed = {e["zxid"]: e.t for e in _events(cluster, leader, "propose")}
        logged: dict[int, int] = {}
        for e in _events(cluster, sid, "logged"):
            logged.setdefault(e["zxid"], e.t)
        return [(logged[z] - proposed[z]) / 1e6 for z in zxids if z in logged and z in proposed]

    before = _write(cluster, 5, "before")
    _wait("the follower to log the first writes", lambda: len(lags(before, f)) == 5)
    # leader -> f only: the proposals to f are delayed, g keeps the quorum going
    nemesis.apply(Latency(links=((leader, f),), latency_ms=latency_ms))
    event = _last_fault(cluster, "latency")
    assert event["delays"] == [[leader, f, latency_ms, 0]]
    after = _write(cluster, 5, "after")
    _wait("the delayed follower to log the writes", lambda: len(lags(after, f)) == 5)
    delayed = lags(after, f)
    assert min(delayed) >= 0.8 * latency_ms, delayed  # a latency toxic never delivers early
    assert statistics.median(delayed) < 10 * latency_ms, delayed
    assert statistics.median(lags(before, f)) < latency_ms, lags(before, f)
    nemesis.heal()
    assert _toxics(cluster) == []


def test_pause_stops_the_process_and_resume_or_heal_continues_it(cluster: Cluster) -> None:
    nemesis = Nemesis(cluster, _plan(), seed=3)
    (f,) = nemesis.apply(Pause(target=Sym.FOLLOWER)).targets
    pid = cluster.pid(f)
    assert pid is not None
    proc = psutil.Process(pid)
    # SIGSTOP is delivered asynchronously: the state changes a moment after the call
    _wait(f"peer {f} to be stopped", lambda: proc.status() == psutil.STATUS_STOPPED)
    assert nemesis.net.paused == {f}
    assert _last_fault(cluster, "pause")["paused"] == [f]
    (resumed,) = nemesis.apply(Resume(target=Sym.LAST)).targets
    assert resumed == f
    _wait(f"peer {f} to continue", lambda: proc.status() != psutil.STATUS_STOPPED)
    _wait(f"peer {f} to answer and follow", lambda: _follows(cluster, f), LEADER_S)
    # heal() resumes whatever is still paused, and logs it
    (again,) = nemesis.apply(Pause(target=Sym.FOLLOWER)).targets
    nemesis.heal()
    assert not cluster.is_paused(again)
    assert _last_fault(cluster, "heal")["targets"] == [again]
    assert nemesis.net.paused == frozenset()


def _has_logged(cluster: Cluster, sid: int, zxid: int) -> Callable[[], bool]:
    return lambda: zxid in {e["zxid"] for e in _events(cluster, sid, "logged")}


def _boots(cluster: Cluster, sid: int, kind: str) -> list[Event]:
    events = _events(cluster, sid, kind)
    last = max(e.boot or 0 for e in events)
    return [e for e in events if e.boot == last]


def test_crash_restart_recovers_from_disk_and_torn_tail_is_truncated(cluster: Cluster) -> None:
    nemesis = Nemesis(cluster, _plan(), seed=4)
    zxids = _write(cluster, 5, "k")
    # a write returns once a quorum logged it: wait until both followers have it too
    for sid in PEERS:
        _wait(f"peer {sid} to log the writes", _has_logged(cluster, sid, max(zxids)))
    (f,) = nemesis.apply(Crash(target=Sym.FOLLOWER)).targets
    assert not cluster.is_running(f)
    assert nemesis.net.down == {f}
    nemesis.apply(Restart(target=Sym.LAST))
    (boot,) = _boots(cluster, f, "boot")
    assert boot["last_zxid"] >= max(zxids) > 0  # it recovered the writes from its disk

    _write(cluster, 3, "more")
    nemesis.apply(Crash(target=f))
    _wait(f"peer {f} to be down", lambda: not cluster.is_running(f))
    nemesis.apply(TearLogTail(target=f))
    assert _last_fault(cluster, "tear-log-tail")["detail"].startswith("tore log.")
    nemesis.apply(Restart(target=f))
    (recovered,) = _boots(cluster, f, "recovered")
    assert recovered["torn_bytes"] > 0
    _wait(f"peer {f} to follow after recovery", lambda: _follows(cluster, f), LEADER_S)
    assert nemesis.failures == []


def test_corrupt_newest_snapshot_falls_back_and_unsynced_tail_is_dropped(
    snapshotting_cluster: Cluster,
) -> None:
    cluster = snapshotting_cluster
    nemesis = Nemesis(cluster, _plan(), seed=5)
    _write(cluster, 35, "s")
    leader = cluster.wait_for_leader(LEADER_S)
    f = next(s for s in PEERS if s != leader)
    _wait(f"peer {f} to write snapshots", lambda: len(_events(cluster, f, "snapshot")) >= 2)
    nemesis.apply(Crash(target=f))
    nemesis.apply(CorruptSnapshot(target=Sym.LAST))
    nemesis.apply(LoseUnsynced(target=Sym.LAST))
    detail = _last_fault(cluster, "lose-unsynced")["detail"]
    assert detail.startswith("power loss in "), detail
    nemesis.apply(Restart(target=f))
    (recovered,) = _boots(cluster, f, "recovered")
    assert recovered["skipped_snapshots"], recovered.fields
    _wait(f"peer {f} to follow after recovery", lambda: _follows(cluster, f), LEADER_S)
    assert nemesis.failures == []


def test_run_logs_failures_goes_on_and_always_heals(cluster: Cluster) -> None:
    leader = cluster.wait_for_leader(LEADER_S)
    f = next(s for s in PEERS if s != leader)
    calls: list[bool] = []
    steps: tuple[Step, ...] = (
        Step(at_ms=0, fault=Restart(target=f)),  # running: cannot be restarted
        Step(at_ms=0, fault=Resume(target=f)),  # not paused
        Step(at_ms=0, fault=TearLogTail(target=f)),  # disk fault on a live peer
        Step(at_ms=100, fault=Partition(shape=Shape.ISOLATE_LEADER)),
        Step(at_ms=200, fault=Workload(on=False)),
        Step(at_ms=300, fault=Latency(latency_ms=50, jitter_ms=10)),
        Step(at_ms=400, fault=Workload(on=True)),
    )
    seen: list[tuple[int, str, tuple[int, ...]]] = []
    nemesis = Nemesis(cluster, _plan(steps), seed=6, workload=calls.append)
    nemesis.run(on_step=lambda i, step, res: seen.append((i, step.fault.kind, res.targets)))
    assert [s[0] for s in seen] == list(range(len(steps)))
    assert seen[3][2] == (leader,)  # the leader at that moment was isolated
    assert calls == [False, True]
    failed = _harness(cluster, "fault_failed")
    assert [(e["step"], e["what"]) for e in failed] == [
        (0, "restart"),
        (1, "resume"),
        (2, "tear-log-tail"),
    ]
    assert all(e["why"] for e in failed)
    faults = _harness(cluster, "fault")
    assert [e["step"] for e in faults] == [3, 4, 5, 6, -1]  # then the final heal
    assert faults[0]["leader"] == leader and faults[0]["at_ms"] == 100
    assert faults[2]["delays"] and faults[2]["cut"]  # the full NetState after the step
    assert faults[-1]["cut"] == [] and faults[-1]["delays"] == []
    assert _toxics(cluster) == []

    # an error in the middle of a run still leaves the cluster healed
    def boom(i: int, step: Step, res: Any) -> None:
        raise RuntimeError("observer failed")

    cutting: tuple[Step, ...] = (Step(at_ms=0, fault=Partition(shape=Shape.HALVES)),)
    with pytest.raises(RuntimeError, match="observer failed"):
        Nemesis(cluster, _plan(cutting), seed=7).run(on_step=boom)
    assert _toxics(cluster) == []
    assert _harness(cluster, "fault")[-1]["what"] == "heal"
