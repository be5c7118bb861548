"""The launcher: a cluster of real peer processes wired through Toxiproxy proxies.

This module owns a cluster's lifecycle and its run dir: it starts (or attaches to) a
Toxiproxy server, creates one proxy per directed link, writes `cluster.json`, spawns
`python -m peer` processes, routes the proxies to the ports the peers report, and
kills, pauses, resumes, restarts and finally reaps them. It applies no fault plan
(that is the nemesis, which uses this API) and knows nothing of the protocol beyond
the client `status` call used to find the leader.

Wiring. Proxy `e{i}-{j}` carries peer i's election connection to j, `q{i}-{j}` its
quorum connection to j (i dials, so j's replies flow back *downstream* of it), and
`c{j}` clients' connections to j. Start-up: create every proxy listening on
127.0.0.1:0 with a placeholder upstream, write `cluster.json` whose `dial` entries
are the proxies' bound addresses, spawn the peers on port 0, read each one's
`listening` event, then point the proxies at the ports it got. A restarted peer may
get new ports, so its proxies are routed again.

Run dir (kept whatever happens): `cluster.json`, `harness.jsonl` (run_start, spawn,
exit, run_end), `peer-<sid>.jsonl` (the peer's own log, all boots), `peer-<sid>.stderr`,
`data-<sid>/`, `toxiproxy.log` (embedded server), and `pids`: one `<name> <pid>` line
per process ever started, so a crashed harness can be audited.

Example:

    with Cluster(ClusterSpec(peers=3), run_dir) as cluster:
        cluster.start()
        leader = cluster.wait_for_leader(10.0)
        e, q = cluster.link_proxies(leader, 2)
        cluster.toxiproxy.add_toxic(e, type="timeout", attributes={"timeout": 0})
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from faults.toxiproxy.client import ToxiproxyClient
from harness import procs
from harness.client import PeerClient
from harness.errors import ClientError, ClusterError, HarnessError, WaitTimeout
from harness.events import HARNESS_LOG, EventWriter, peer_log_name
from peer.config import Address, ClusterConfig, Dial, Member
from peer.domain import FAST, Bug, Role, ServerState, Timing
from peer.native import ENV_SWITCH as NATIVE_SWITCH

HOST = "127.0.0.1"
PLACEHOLDER_UPSTREAM = f"{HOST}:1"  # nothing listens on port 1: refused until routed
CLUSTER_JSON = "cluster.json"
PIDS_FILE = "pids"
POLL_S = 0.02
_PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The peer's interpreter flags. `-S` skips the `site` module: the peer needs only the
# standard library and the project's own packages (PYTHONPATH), and `site` would make
# every peer start-up pay for the .pth files of site-packages (an editable install's
# import hook, whatever else is installed), about a tenth of its start-up CPU.
# tests/peer/test_startup.py keeps the peer's import graph free of third-party modules.
PEER_PYTHON_FLAGS: tuple[str, ...] = ("-S",)
# The peer's own modules plus the one harness module it imports (the event writer):
# what `precompile_peer` checks before the peers' first start.
_PEER_SOURCES = ("peer/*.py", "harness/__init__.py", "harness/events.py")


def peer_argv(
    python: str, sid: int, config: Path, data: Path, events: Path, bug: Bug | None = None
) -> list[str]:
    """The command line of one peer process."""
    argv = [python, *PEER_PYTHON_FLAGS, "-m", "peer", "--id", str(sid), "--config", str(config)]
    argv += ["--data", str(data), "--events", str(events)]
    if bug is not None:
        argv += ["--bug", bug.value]
    return argv


def bytecode_cache_dir() -> Path:
    """Where peers keep their compiled modules when the environment forbids writing
    them next to the sources (PYTHONDONTWRITEBYTECODE): a per-user cache directory."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "quorum-chaos" / "pycache"


def peer_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a peer process: `base` (default: ours) with the project on
    PYTHONPATH (the peer must import without `site`, see PEER_PYTHON_FLAGS), and with
    bytecode caching on. A shell with PYTHONDONTWRITEBYTECODE=1 would otherwise make
    every peer start compile the peer's modules from source, about 40% more start-up
    CPU; the compiled files go to `bytecode_cache_dir()`, not into the source tree.
    Real peers run as Python even when the simulator's native core is built
    (peer/native.py): they wait on sockets and clocks, not on the CPU, and would pay
    the build lookup (hashing the source) at every start."""
    env = dict(os.environ if base is None else base)
    env[NATIVE_SWITCH] = "0"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(_PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    if env.get("PYTHONDONTWRITEBYTECODE") and not env.get("PYTHONPYCACHEPREFIX"):
        del env["PYTHONDONTWRITEBYTECODE"]
        env["PYTHONPYCACHEPREFIX"] = str(bytecode_cache_dir())
    return env


def _cached_path(source: Path, prefix: str | None) -> Path:
    """Where an interpreter like ours, run with PYTHONPYCACHEPREFIX=`prefix` (or none),
    looks for the compiled `source` (importlib's cache_from_source, without depending
    on this process's own prefix)."""
    name = f"{source.stem}.{sys.implementation.cache_tag}.pyc"
    if prefix:
        return Path(prefix).joinpath(*source.parent.parts[1:], name)
    return source.parent / "__pycache__" / name


def _is_fresh(source: Path, cached: Path) -> bool:
    """Whether `cached` is a timestamp-validated .pyc of `source` (PEP 552 header)."""
    try:
        st = source.stat()
        with cached.open("rb") as handle:
            header = handle.read(16)
    except OSError:
        return False
    return (
        len(header) == 16
        and header[:4] == importlib.util.MAGIC_NUMBER
        and int.from_bytes(header[4:8], "little") == 0
        and int.from_bytes(header[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
        and int.from_bytes(header[12:16], "little") == st.st_size & 0xFFFFFFFF
    )


def precompile_peer(env: Mapping[str, str], python: str = sys.executable) -> bool:
    """Make sure peers started by `python` with `env` find their modules compiled, the
    standard library's included (a PYTHONPYCACHEPREFIX hides the install's own .pyc
    files): when anything looks stale, one warm-up process imports the peer's module
    graph and writes them. Peers spawned together would otherwise each compile the same
    modules at once, on the CPUs their election needs. Returns whether it warmed up."""
    if env.get("PYTHONDONTWRITEBYTECODE"):
        return False
    prefix = env.get("PYTHONPYCACHEPREFIX")
    sources = [s for pattern in _PEER_SOURCES for s in sorted(_PROJECT_ROOT.glob(pattern))]
    sources.append(Path(asyncio.__file__))  # stands for the standard library
    if python == sys.executable and all(_is_fresh(s, _cached_path(s, prefix)) for s in sources):
        return False
    warm = [python, *PEER_PYTHON_FLAGS, "-c", "import peer.__main__, peer.node"]
    subprocess.run(warm, env=dict(env), stdin=subprocess.DEVNULL, check=False, timeout=60)
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSpec:
    """What to launch. Voters get sids 1..peers, observers peers+1..peers+observers.
    `toxiproxy_url` attaches to a running server instead of starting one (the CLI and
    the pytest plugin pass TOXIPROXY_URL here); `seed` is only recorded in run_start."""

    peers: int = 5
    observers: int = 0
    timing: Timing = FAST
    bug: Bug | None = None
    toxiproxy_url: str | None = None
    python: str = sys.executable
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.peers, int) or isinstance(self.peers, bool) or self.peers < 1:
            raise ClusterError("ClusterSpec.peers must be an integer >= 1", peers=self.peers)
        if (
            not isinstance(self.observers, int)
            or isinstance(self.observers, bool)
            or self.observers < 0
        ):
            raise ClusterError(
                "ClusterSpec.observers must be an integer >= 0", observers=self.observers
            )
        if not isinstance(self.timing, Timing):
            raise ClusterError("ClusterSpec.timing must be a Timing", timing=self.timing)
        if self.bug is not None and not isinstance(self.bug, Bug):
            raise ClusterError("ClusterSpec.bug must be a Bug or None", bug=self.bug)

    @property
    def sids(self) -> tuple[int, ...]:
        return tuple(range(1, self.peers + self.observers + 1))

    @property
    def voters(self) -> tuple[int, ...]:
        return tuple(range(1, self.peers + 1))


@dataclass(slots=True)
class _Peer:
    """Harness-side bookkeeping of one peer process (mutable, private)."""

    sid: int
    proc: subprocess.Popen[bytes] | None = None
    boots: int = 0
    paused: bool = False
    stderr: IO[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16_384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return "    (missing)"
    chosen = text.splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in chosen) if chosen else "    (empty)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Cluster:
    """A running cluster; a context manager whose exit reaps every process it started
    and closes its logs. Thread-safe: the nemesis, workload and tests may call it
    from different threads (spawning itself always happens on one long-lived thread)."""

    def __init__(self, spec: ClusterSpec, run_dir: Path) -> None:
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.sids: tuple[int, ...] = spec.sids
        self.voters: tuple[int, ...] = spec.voters
        self._peers = {sid: _Peer(sid=sid) for sid in self.sids}
        self._lock = threading.RLock()
        self._ready = False
        self._closed = False
        self._guarded = False
        self._toxiproxy: ToxiproxyClient | None = None
        self._proxy_proc: subprocess.Popen[bytes] | None = None
        self._proxy_prefix = ""
        self._listen: dict[str, str] = {}
        self._harness_log: EventWriter | None = None
        self._log_closed = False
        self._peer_env = peer_env()

    # --- context manager ----------------------------------------------------------

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        reason = "ok" if exc_type is None else f"error: {exc_type.__name__}"
        self.close(reason=reason)

    # --- public attributes ----------------------------------------------------------

    @property
    def toxiproxy(self) -> ToxiproxyClient:
        if self._toxiproxy is None:
            raise ClusterError("cluster not started: no proxy server yet", run_dir=self.run_dir)
        return self._toxiproxy

    @property
    def harness_log(self) -> EventWriter:
        if self._harness_log is None:
            raise ClusterError("cluster not started: no harness log yet", run_dir=self.run_dir)
        return self._harness_log

    def proxy_name(self, kind: str, src: int, dst: int | None = None) -> str:
        """Name of a proxy: kind "e"/"q" with (src, dst), or "c" with src = the peer."""
        self._check_sid(src)
        if kind == "c" and dst is None:
            return f"{self._proxy_prefix}c{src}"
        if kind in ("e", "q") and dst is not None:
            self._check_sid(dst)
            if src == dst:
                raise ClusterError("a peer has no link to itself", sid=src)
            return f"{self._proxy_prefix}{kind}{src}-{dst}"
        raise ClusterError("unknown proxy kind", kind=kind, src=src, dst=dst)

    def link_proxies(self, src: int, dst: int) -> tuple[str, str]:
        """(election proxy, quorum proxy) names of the links src dials to reach dst."""
        return self.proxy_name("e", src, dst), self.proxy_name("q", src, dst)

    def client_address(self, sid: int) -> tuple[str, int]:
        """Where clients connect to reach `sid`: the listen address of proxy c{sid}."""
        listen = self._listen_of(self.proxy_name("c", sid))
        address = Address.parse(listen, f"proxy c{sid} listen")
        return address.host, address.port

    def data_dir(self, sid: int) -> Path:
        self._check_sid(sid)
        return self.run_dir / f"data-{sid}"

    def event_log(self, sid: int) -> Path:
        self._check_sid(sid)
        return self.run_dir / peer_log_name(sid)

    def stderr_log(self, sid: int) -> Path:
        self._check_sid(sid)
        return self.run_dir / f"peer-{sid}.stderr"

    def ports(self, sid: int) -> dict[str, int]:
        """The peer's own ports from its last `listening` event (empty before)."""
        self._check_sid(sid)
        return dict(self._peers[sid].ports)

    # --- lifecycle ------------------------------------------------------------------

    def start(self, sids: Iterable[int] | None = None, *, timeout: float = 10.0) -> None:
        """Set up the proxy server, proxies and cluster.json (first call only), then start
        `sids` (None = all) and wait until each is listening and routed."""
        chosen = self.sids if sids is None else tuple(sids)
        for sid in chosen:
            self._check_sid(sid)
        with self._lock:
            self._setup(timeout)
            for sid in chosen:
                if self.is_running(sid):
                    raise ClusterError("peer is already running", sid=sid)
            deadline = time.monotonic() + timeout
            offsets = {sid: self._spawn(sid) for sid in chosen}
            for sid in chosen:
                self._await_listening(sid, offsets[sid], deadline, timeout)

    def start_peer(self, sid: int, *, timeout: float = 10.0) -> None:
        """Start one peer that is down (first start or after kill/stop): same as restart."""
        self.restart(sid, timeout=timeout)

    def restart(self, sid: int, *, timeout: float = 10.0) -> None:
        """Start a peer that is down again, on its existing data dir, and route its proxies."""
        self._check_sid(sid)
        with self._lock:
            self._setup(timeout)
            if self.is_running(sid):
                raise ClusterError("cannot restart a running peer: kill or stop it first", sid=sid)
            offset = self._spawn(sid)
            self._await_listening(sid, offset, time.monotonic() + timeout, timeout)

    def kill(self, sid: int) -> int:
        """SIGKILL the peer (paused or not) and collect it; returns its exit code."""
        with self._lock:
            peer = self._running_peer(sid, "kill")
            assert peer.proc is not None
            procs.send_signal(peer.proc, signal.SIGKILL)
            return self._collect(peer, timeout=5.0)

    def stop(self, sid: int, timeout: float = 5.0) -> int:
        """Graceful stop: SIGCONT, SIGTERM, SIGKILL after `timeout`; returns the exit code."""
        with self._lock:
            peer = self._running_peer(sid, "stop")
            return self._collect(peer, timeout=timeout)

    def pause(self, sid: int) -> None:
        """SIGSTOP the peer: it keeps its sockets but answers nothing."""
        with self._lock:
            peer = self._running_peer(sid, "pause")
            assert peer.proc is not None
            procs.send_signal(peer.proc, signal.SIGSTOP)
            peer.paused = True

    def resume(self, sid: int) -> None:
        with self._lock:
            peer = self._running_peer(sid, "resume")
            assert peer.proc is not None
            procs.send_signal(peer.proc, signal.SIGCONT)
            peer.paused = False

    def wipe(self, sid: int) -> None:
        """Delete the peer's data dir (it must be down): it restarts empty."""
        with self._lock:
            if self.is_running(sid):
                raise ClusterError("cannot wipe the data of a running peer", sid=sid)
            shutil.rmtree(self.data_dir(sid), ignore_errors=True)
            self.data_dir(sid).mkdir(parents=True, exist_ok=True)

    def is_running(self, sid: int) -> bool:
        """The process exists (paused counts as running). Notices and logs a peer that
        exited on its own."""
        self._check_sid(sid)
        with self._lock:
            peer = self._peers[sid]
            if peer.proc is None:
                return False
            if peer.proc.poll() is None:
                return True
            self._collect(peer, timeout=0.0)
            return False

    def is_paused(self, sid: int) -> bool:
        return self.is_running(sid) and self._peers[sid].paused

    def pid(self, sid: int) -> int | None:
        with self._lock:
            proc = self._peers[sid].proc if self.is_running(sid) else None
            return None if proc is None else proc.pid

    def running(self) -> tuple[int, ...]:
        return tuple(sid for sid in self.sids if self.is_running(sid))

    # --- observing --------------------------------------------------------------------

    def status(self, sid: int, timeout: float = 1.0) -> dict[str, Any] | None:
        """The peer's status over the client protocol (through c{sid}); None when it is
        down, paused or does not answer in time."""
        if not self.is_running(sid) or self.is_paused(sid):
            return None
        host, port = self.client_address(sid)
        try:
            with PeerClient(host, port, timeout=timeout) as client:
                return client.status()
        except ClientError:
            return None

    def leader(self) -> int | None:
        """A peer reporting LEADING and serving that a majority of the running (and not
        paused) voters follow, itself included; None if there is none."""
        live = [sid for sid in self.voters if self.is_running(sid) and not self.is_paused(sid)]
        if not live:
            return None
        statuses = {sid: self.status(sid) for sid in live}
        for sid, st in statuses.items():
            if st is None or st.get("state") != ServerState.LEADING:
                continue
            if st.get("serving") is not True:
                continue
            followers = sum(
                1
                for other, ot in statuses.items()
                if ot is not None
                and (
                    other == sid
                    or (ot.get("state") == ServerState.FOLLOWING and ot.get("leader") == sid)
                )
            )
            if followers * 2 > len(live):
                return sid
        return None

    def wait_for_leader(self, timeout: float, *, among: Iterable[int] | None = None) -> int:
        """Poll until `leader()` names a peer (in `among`, if given)."""
        allowed = None if among is None else frozenset(among)
        deadline = time.monotonic() + timeout
        while True:
            found = self.leader()
            if found is not None and (allowed is None or found in allowed):
                return found
            if time.monotonic() >= deadline:
                what = "an established leader" + (
                    f" among {sorted(allowed)}" if allowed is not None else ""
                )
                lines = [f"last leader seen: {found}"]
                for sid in self.sids:
                    lines.append(f"  peer {sid} status: {self.status(sid, timeout=0.5)}")
                lines.append(self._evidence(self.sids, lines=5))
                raise WaitTimeout(what, timeout, "\n".join(lines))
            time.sleep(0.05)

    # --- teardown -----------------------------------------------------------------------

    def close(self, reason: str = "closed") -> None:
        """Reap every peer and the owned proxy server, write run_end, close logs.
        Idempotent; never leaves a process behind even when a step fails."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            errors: list[BaseException] = []
            live = [p for p in self._peers.values() if p.proc is not None]
            try:
                codes = procs.reap([p.proc for p in live if p.proc is not None], timeout=5.0)
                for peer in live:
                    assert peer.proc is not None
                    self._log_exit(peer, codes.get(peer.proc.pid, 0))
            except HarnessError as exc:
                errors.append(exc)
            if self._toxiproxy is not None and self._proxy_proc is None:
                # Attached to a shared server: remove only our own proxies.
                for name in list(self._listen):
                    try:
                        self._toxiproxy.delete_proxy(name)
                    except Exception as exc:  # keep tearing down; report below
                        errors.append(exc)
            if self._proxy_proc is not None:
                try:
                    procs.reap([self._proxy_proc], timeout=5.0)
                except HarnessError as exc:
                    errors.append(exc)
            for peer in self._peers.values():
                if peer.stderr is not None:
                    peer.stderr.close()
                    peer.stderr = None
            if self._harness_log is not None:
                self._harness_log.emit("run_end", reason=reason)
                self._harness_log.close()
                self._log_closed = True
            if self._guarded:
                procs.SignalGuard.release()
                self._guarded = False
            if errors:
                raise ClusterError(
                    "teardown incomplete", run_dir=self.run_dir, errors=[str(e) for e in errors]
                )

    # --- internals ------------------------------------------------------------------------

    def _check_sid(self, sid: int) -> None:
        if sid not in self._peers:
            raise ClusterError("no such peer", sid=sid, sids=list(self.sids))

    def _running_peer(self, sid: int, action: str) -> _Peer:
        if not self.is_running(sid):
            raise ClusterError(f"cannot {action} a peer that is not running", sid=sid)
        return self._peers[sid]

    def _listen_of(self, name: str) -> str:
        try:
            return self._listen[name]
        except KeyError:
            raise ClusterError("cluster not started: no such proxy yet", proxy=name) from None

    def _record_pid(self, name: str, pid: int) -> None:
        with (self.run_dir / PIDS_FILE).open("a", encoding="utf-8") as handle:
            handle.write(f"{name} {pid}\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _setup(self, timeout: float) -> None:
        if self._closed:
            raise ClusterError("cluster is closed", run_dir=self.run_dir)
        if self._ready:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self._harness_log is None:
            self._harness_log = EventWriter(self.run_dir / HARNESS_LOG)
            self._harness_log.emit(
                "run_start",
                peers=self.spec.peers,
                observers=self.spec.observers,
                seed=self.spec.seed,
                bug=self.spec.bug.value if self.spec.bug else None,
                run_dir=str(self.run_dir),
            )
            self._guarded = procs.SignalGuard.hold()
        if self._toxiproxy is None:
            self._toxiproxy = self._start_proxy_server(timeout)
        self._create_proxies()
        self._write_config()
        for sid in self.sids:
            self.data_dir(sid).mkdir(parents=True, exist_ok=True)
        precompile_peer(self._peer_env, self.spec.python)
        self._ready = True

    def _start_proxy_server(self, timeout: float) -> ToxiproxyClient:
        if self.spec.toxiproxy_url is not None:
            # A shared server: prefix our proxy names so parallel clusters do not collide.
            self._proxy_prefix = f"qc{uuid.uuid4().hex[:8]}-"
            client = ToxiproxyClient(self.spec.toxiproxy_url)
            self._await_proxy_api(client, timeout)
            return client
        # Both servers take `-host/-port`; we spawn either ourselves (not through
        # faults.toxiproxy.process.spawn_server) so that it gets the parent-death signal.
        binary = shutil.which("toxiproxy-server")
        argv = [binary] if binary else [self.spec.python, "-m", "faults.toxiproxy"]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(_PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        for attempt in range(3):  # the free port may be taken between probe and bind
            port = _free_port()
            with (self.run_dir / "toxiproxy.log").open("ab") as log:
                proc = procs.spawn(
                    [*argv, "-host", HOST, "-port", str(port)], stdout=log, stderr=log, env=env
                )
            self._proxy_proc = proc
            self._record_pid("toxiproxy", proc.pid)
            url = f"http://{HOST}:{port}"
            self.harness_log.emit("spawn", pid=proc.pid, what="toxiproxy", url=url)
            client = ToxiproxyClient(url)
            try:
                self._await_proxy_api(client, timeout)
                return client
            except ClusterError as exc:
                procs.reap([proc], timeout=2.0)
                self._proxy_proc = None
                if attempt == 2 or isinstance(exc, WaitTimeout):
                    raise
        raise AssertionError("unreachable")

    def _await_proxy_api(self, client: ToxiproxyClient, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.proxies()
                return
            except Exception as exc:  # any failure means "not up yet" until the deadline
                if self._proxy_proc is not None and self._proxy_proc.poll() is not None:
                    raise ClusterError(
                        "toxiproxy server exited at start",
                        code=self._proxy_proc.returncode,
                        log=_tail(self.run_dir / "toxiproxy.log", 20),
                    ) from None
                if time.monotonic() >= deadline:
                    raise WaitTimeout(
                        f"the toxiproxy API at {client.url}",
                        timeout,
                        f"last error: {exc}\n{_tail(self.run_dir / 'toxiproxy.log', 20)}",
                    ) from None
            time.sleep(POLL_S)

    def _create_proxies(self) -> None:
        names = [self.proxy_name("c", j) for j in self.sids]
        for i in self.sids:
            for j in self.sids:
                if i != j:
                    names.extend(self.link_proxies(i, j))
        for name in names:
            if name in self._listen:
                continue
            proxy = self.toxiproxy.create_proxy(name, f"{HOST}:0", PLACEHOLDER_UPSTREAM)
            self._listen[name] = proxy.listen

    def _write_config(self) -> None:
        members: dict[int, Member] = {}
        for i in self.sids:
            dial = {
                j: Dial(
                    election=Address.parse(self._listen_of(self.proxy_name("e", i, j)), "proxy"),
                    quorum=Address.parse(self._listen_of(self.proxy_name("q", i, j)), "proxy"),
                )
                for j in self.sids
                if j != i
            }
            members[i] = Member(
                sid=i,
                role=Role.VOTER if i in self.voters else Role.OBSERVER,
                host=HOST,
                election_port=0,
                quorum_port=0,
                client_port=0,
                dial=dial,
            )
        config = ClusterConfig(members=members, timing=self.spec.timing)
        path = self.run_dir / CLUSTER_JSON
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config.to_json(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    def _spawn(self, sid: int) -> int:
        """Start peer `sid`; returns the size its event log had before, where this
        boot's events begin."""
        peer = self._peers[sid]
        log = self.event_log(sid)
        offset = log.stat().st_size if log.exists() else 0
        argv = peer_argv(
            self.spec.python,
            sid,
            self.run_dir / CLUSTER_JSON,
            self.data_dir(sid),
            log,
            self.spec.bug,
        )
        env = self._peer_env
        if peer.stderr is None:
            peer.stderr = self.stderr_log(sid).open("ab")
        proc = procs.spawn(argv, stdout=peer.stderr, stderr=peer.stderr, env=env)
        peer.proc = proc
        peer.paused = False
        peer.boots += 1
        peer.ports = {}
        self._record_pid(f"peer-{sid}", proc.pid)
        self.harness_log.emit("spawn", sid=sid, pid=proc.pid, boot=peer.boots)
        return offset

    def _await_listening(self, sid: int, offset: int, deadline: float, timeout: float) -> None:
        peer = self._peers[sid]
        log = self.event_log(sid)
        while True:
            ports = self._listening_ports(log, offset)
            if ports is not None:
                peer.ports = ports
                self._route(sid, ports)
                return
            if peer.proc is None or peer.proc.poll() is not None:
                code = self._collect(peer, timeout=0.0)
                raise ClusterError(
                    f"peer {sid} exited with code {code} before listening\n"
                    + self._evidence([sid]),
                    sid=sid,
                )
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"peer {sid} to report its ports (a listening event)",
                    timeout,
                    self._evidence([sid]),
                )
            time.sleep(POLL_S)

    @staticmethod
    def _listening_ports(log: Path, offset: int) -> dict[str, int] | None:
        try:
            with log.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return None
        for raw in data.split(b"\n")[:-1]:  # the last piece is incomplete or empty
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(record, dict) and record.get("kind") == "listening":
                names = ("election_port", "quorum_port", "client_port")
                if all(isinstance(record.get(n), int) for n in names):
                    return {n: int(record[n]) for n in names}
        return None

    def _route(self, sid: int, ports: dict[str, int]) -> None:
        """Point every proxy that leads to `sid` at the ports it reported."""
        tox = self.toxiproxy
        tox.update_proxy(self.proxy_name("c", sid), upstream=f"{HOST}:{ports['client_port']}")
        for i in self.sids:
            if i == sid:
                continue
            election, quorum = self.link_proxies(i, sid)
            tox.update_proxy(election, upstream=f"{HOST}:{ports['election_port']}")
            tox.update_proxy(quorum, upstream=f"{HOST}:{ports['quorum_port']}")

    def _collect(self, peer: _Peer, timeout: float) -> int:
        """Reap the peer's process (SIGCONT/SIGTERM/SIGKILL if still alive) and log its exit."""
        assert peer.proc is not None
        proc = peer.proc
        if proc.poll() is not None:
            code = proc.returncode
            procs.untrack(proc)
        else:
            code = procs.reap([proc], timeout=max(timeout, 0.1)).get(proc.pid, 0)
        self._log_exit(peer, code)
        return code

    def _log_exit(self, peer: _Peer, code: int) -> None:
        if peer.proc is None:
            return
        if self._harness_log is not None and not self._log_closed:
            self._harness_log.emit("exit", sid=peer.sid, pid=peer.proc.pid, code=code)
        peer.proc = None
        peer.paused = False

    def _evidence(self, sids: Iterable[int], lines: int = 10) -> str:
        parts: list[str] = []
        for sid in sids:
            parts.append(f"--- {self.event_log(sid)} (last {lines} lines)")
            parts.append(_tail(self.event_log(sid), lines))
            parts.append(f"--- {self.stderr_log(sid)} (last {lines * 2} lines)")
            parts.append(_tail(self.stderr_log(sid), lines * 2))
        return "\n".join(parts)
