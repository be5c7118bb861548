"""The launcher on real processes: peers behind Toxiproxy proxies elect a leader,
partitions made of proxy toxics move leadership, one-way cuts stay one-way, and
nothing (peer or proxy server) outlives the cluster or a SIGKILLed harness."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

pytest.importorskip("faults.toxiproxy.process", reason="embedded toxiproxy not built yet")
pytest.importorskip("faults.toxiproxy.client", reason="toxiproxy client not built yet")

from harness.cluster import Cluster, ClusterSpec
from harness.errors import ClusterError
from harness.events import read_log

ROOT = Path(__file__).resolve().parents[2]
LEADER_S = 20.0  # generous deadlines: 2 shared cores, other tests running


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pids: list[int], deadline_s: float = 10.0) -> list[int]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if all(_gone(pid) for pid in pids):
            return []
        time.sleep(0.05)
    return [pid for pid in pids if not _gone(pid)]


def _listening_ports(pids: list[int]) -> set[int]:
    ports: set[int] = set()
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        ports |= {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN}
    return ports


def _all_listening() -> set[int]:
    conns = psutil.net_connections(kind="tcp")
    return {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN and c.laddr}


def _pids_file(run_dir: Path) -> list[int]:
    return [int(line.split()[1]) for line in (run_dir / "pids").read_text().splitlines()]


class Cuts:
    """Partitions made of `timeout` toxics (timeout=0: data dropped, connection kept)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.applied: list[tuple[str, str]] = []

    def _toxic(self, proxy: str, stream: str) -> None:
        name = f"cut-{stream}"
        if (proxy, name) in self.applied:
            return
        self.cluster.toxiproxy.add_toxic(
            proxy, type="timeout", name=name, stream=stream, attributes={"timeout": 0}
        )
        self.applied.append((proxy, name))

    def one_way(self, a: int, b: int) -> None:
        """a cannot reach b; b still reaches a."""
        election_ab, quorum_ab = self.cluster.link_proxies(a, b)
        _, quorum_ba = self.cluster.link_proxies(b, a)
        self._toxic(election_ab, "upstream")
        self._toxic(election_ab, "downstream")
        self._toxic(quorum_ab, "upstream")  # what a sends on the link it dialed
        self._toxic(quorum_ba, "downstream")  # what a answers on the link b dialed

    def isolate(self, sid: int) -> None:
        for other in self.cluster.sids:
            if other != sid:
                self.one_way(sid, other)
                self.one_way(other, sid)

    def heal(self) -> None:
        for proxy, name in self.applied:
            self.cluster.toxiproxy.remove_toxic(proxy, name)
        self.applied.clear()


def _wait_status(
    cluster: Cluster, sid: int, want: dict[str, Any], timeout: float = LEADER_S
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cluster.status(sid)
        if last is not None and all(last.get(k) == v for k, v in want.items()):
            return last
        time.sleep(0.05)
    raise AssertionError(f"peer {sid} never reached {want}; last status {last}")


@pytest.fixture
def cluster3(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(ClusterSpec(peers=3), tmp_path / "run") as cluster:
        cluster.start()
        yield cluster


def test_spec_is_validated() -> None:
    with pytest.raises(ClusterError, match="peers"):
        ClusterSpec(peers=0)
    with pytest.raises(ClusterError, match="observers"):
        ClusterSpec(observers=-1)
    spec = ClusterSpec(peers=3, observers=2)
    assert spec.sids == (1, 2, 3, 4, 5)
    assert spec.voters == (1, 2, 3)


def test_misuse_is_named(tmp_path: Path) -> None:
    cluster = Cluster(ClusterSpec(peers=3), tmp_path / "run")
    with pytest.raises(ClusterError, match="no such peer"):
        cluster.kill(9)
    with pytest.raises(ClusterError, match="not started"):
        cluster.client_address(1)
    with pytest.raises(ClusterError, match="not running"):
        cluster.pause(1)
    cluster.close()
    with pytest.raises(ClusterError, match="closed"):
        cluster.start()


def test_setup_wires_proxies_into_cluster_json_and_close_reaps_the_server(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with Cluster(ClusterSpec(peers=3, observers=1), run_dir) as cluster:
        cluster.start(sids=[])  # proxy server, proxies and cluster.json; no peer yet
        server_pid = _pids_file(run_dir)[0]
        assert server_pid in {p.pid for p in psutil.Process().children(recursive=True)}
        proxies = cluster.toxiproxy.proxies()
        assert len(proxies) == 4 * 3 * 2 + 4  # e and q per directed link, c per peer
        config = json.loads((run_dir / "cluster.json").read_text())
        roles = {m["sid"]: m["role"] for m in config["members"]}
        assert roles == {1: "voter", 2: "voter", 3: "voter", 4: "observer"}
        for member in config["members"]:
            assert (member["election_port"], member["quorum_port"]) == (0, 0)
            for j, dial in member["dial"].items():
                e, q = cluster.link_proxies(member["sid"], int(j))
                assert dial == {"election": proxies[e].listen, "quorum": proxies[q].listen}
        host, port = cluster.client_address(2)
        assert f"{host}:{port}" == proxies["c2"].listen
        assert cluster.leader() is None and cluster.running() == ()
        server_ports = _listening_ports([server_pid])
    assert _wait_gone([server_pid]) == []
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before
    assert not (server_ports & _all_listening())
    kinds = [e.kind for e in read_log(run_dir / "harness.jsonl").events]
    assert kinds == ["run_start", "spawn", "run_end"]


@pytest.mark.integration
def test_five_peers_elect_and_a_partitioned_leader_is_replaced_then_rejoins(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    before_children = {p.pid for p in psutil.Process().children(recursive=True)}
    with Cluster(ClusterSpec(peers=5), run_dir) as cluster:
        cluster.start()
        own = [cluster.pid(sid) for sid in cluster.sids]
        pids = [pid for pid in own if pid is not None] + _pids_file(run_dir)[:1]
        ports = _listening_ports(pids)
        old = cluster.wait_for_leader(LEADER_S)
        cuts = Cuts(cluster)
        cuts.isolate(old)
        rest = [sid for sid in cluster.sids if sid != old]
        new = cluster.wait_for_leader(LEADER_S, among=rest)
        assert new != old
        # The cut-off leader steps down instead of leading a minority.
        _wait_status(cluster, old, {"serving": False})

        cuts.heal()
        _wait_status(cluster, old, {"state": "FOLLOWING", "leader": new})
        assert cluster.leader() == new

    # Everything reaped: processes and their listening ports.
    assert _wait_gone(pids) == []
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before_children
    assert not (ports & _all_listening())
    kinds = [e.kind for e in read_log(run_dir / "harness.jsonl").events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert kinds.count("spawn") == 6 and kinds.count("exit") == 5


@pytest.mark.integration
def test_one_way_cut_is_one_way(cluster3: Cluster) -> None:
    leader = cluster3.wait_for_leader(LEADER_S)
    follower, _other = (sid for sid in cluster3.sids if sid != leader)
    cut_at = time.monotonic_ns()
    cuts = Cuts(cluster3)
    cuts.one_way(leader, follower)  # the leader cannot reach the follower
    # The follower stops hearing its leader and looks for one...
    _wait_status(cluster3, follower, {"state": "LOOKING"})
    # ...while the leader, still reached by the follower, keeps its majority with `other`.
    assert cluster3.wait_for_leader(LEADER_S) == leader
    time.sleep(0.5)  # let some votes cross
    grace = cut_at + 300_000_000  # frames already in flight at the cut

    def votes(at: int, sender: int) -> list[int]:
        events = read_log(cluster3.event_log(at)).events
        return [e.t for e in events if e.kind == "vote_recv" and e.get("from") == sender]

    assert any(t > grace for t in votes(leader, follower)), "follower -> leader was cut too"
    assert not any(t > grace for t in votes(follower, leader)), "leader -> follower got through"
    cuts.heal()
    _wait_status(cluster3, follower, {"state": "FOLLOWING", "leader": leader})


@pytest.mark.integration
def test_kill_pause_restart_and_wipe(cluster3: Cluster) -> None:
    leader = cluster3.wait_for_leader(LEADER_S)
    old_pid = cluster3.pid(leader)
    assert cluster3.kill(leader) == -signal.SIGKILL
    assert not cluster3.is_running(leader) and cluster3.pid(leader) is None
    assert cluster3.status(leader) is None
    with pytest.raises(ClusterError, match="not running"):
        cluster3.kill(leader)
    rest = [sid for sid in cluster3.sids if sid != leader]
    new = cluster3.wait_for_leader(LEADER_S, among=rest)

    cluster3.restart(leader)
    assert cluster3.pid(leader) not in (None, old_pid)
    _wait_status(cluster3, leader, {"state": "FOLLOWING", "leader": new})
    with pytest.raises(ClusterError, match="running"):
        cluster3.restart(leader)

    follower = next(sid for sid in cluster3.sids if sid != new)
    cluster3.pause(follower)
    assert cluster3.is_paused(follower) and cluster3.is_running(follower)
    assert cluster3.status(follower) is None
    cluster3.resume(follower)
    assert not cluster3.is_paused(follower)
    _wait_status(cluster3, follower, {"leader": new})

    assert cluster3.stop(follower) in (0, -signal.SIGTERM)
    cluster3.wipe(follower)
    assert list(cluster3.data_dir(follower).iterdir()) == []
    cluster3.start_peer(follower)
    _wait_status(cluster3, follower, {"state": "FOLLOWING", "leader": new})
    boots = [e for e in read_log(cluster3.event_log(leader)).events if e.kind == "boot"]
    assert len(boots) == 2


@pytest.mark.integration
def test_start_failure_shows_the_peers_stderr(tmp_path: Path) -> None:
    # A peer that refuses to start (exit code 2) is reported with its exit code and the
    # tail of its stderr, and nothing is left running.
    with Cluster(ClusterSpec(peers=1), tmp_path / "run") as cluster:
        cluster.start(sids=[])  # proxies and cluster.json only
        (tmp_path / "run" / "cluster.json").write_text("{}")  # corrupt it behind its back
        with pytest.raises(ClusterError, match="exited with code 2") as info:
            cluster.start()
        assert "bad config" in str(info.value)
        assert not cluster.is_running(1)


HARNESS_SCRIPT = """
import sys, time
from pathlib import Path
from harness.cluster import Cluster, ClusterSpec

with Cluster(ClusterSpec(peers=3), Path(sys.argv[1])) as cluster:
    cluster.start()
    print("ready", flush=True)
    time.sleep(120)
"""


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_harness_leaves_nothing_behind(tmp_path: Path, sig: signal.Signals) -> None:
    script = tmp_path / "harness_script.py"
    script.write_text(textwrap.dedent(HARNESS_SCRIPT))
    run_dir = tmp_path / "run"
    harness = subprocess.Popen(
        [sys.executable, str(script), str(run_dir)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
    )
    pids: list[int] = []
    try:
        assert harness.stdout is not None
        assert harness.stdout.readline().strip() == b"ready"
        pids = _pids_file(run_dir)
        assert len(pids) == 4  # the proxy server and three peers
        ports = _listening_ports(pids)
        assert ports
        harness.send_signal(sig)
        harness.wait(timeout=30)
        assert _wait_gone(pids) == [], f"survivors after {sig.name} of the harness"
        assert not (ports & _all_listening())
        if sig == signal.SIGTERM:
            kinds = [e.kind for e in read_log(run_dir / "harness.jsonl").events]
            assert kinds[-1] == "run_end" and kinds.count("exit") == 3
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
        for pid in pids:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_attached_server_is_shared_by_prefix_and_left_running(tmp_path: Path) -> None:
    from faults.toxiproxy.process import spawn_server
    from harness import procs

    server, url = spawn_server(log_path=tmp_path / "server.log")
    procs.track(server)
    try:
        spec = ClusterSpec(peers=2, toxiproxy_url=url)
        with Cluster(spec, tmp_path / "a") as first, Cluster(spec, tmp_path / "b") as second:
            first.start(sids=[])
            second.start(sids=[])
            names_a = set(first.link_proxies(1, 2)) | {first.proxy_name("c", 1)}
            names_b = set(second.link_proxies(1, 2)) | {second.proxy_name("c", 1)}
            assert not names_a & names_b  # parallel clusters on one server do not collide
            assert len(first.toxiproxy.proxies()) == 2 * (2 * 2 * 1 + 2)
            first.close()
            assert set(second.toxiproxy.proxies()) >= names_b
            assert not set(second.toxiproxy.proxies()) & names_a
        assert server.poll() is None  # not ours to stop
        assert not (tmp_path / "a" / "pids").exists()
    finally:
        procs.reap([server])
