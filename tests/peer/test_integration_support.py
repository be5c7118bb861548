"""Direct peers for integration tests: real `python -m peer` processes on 127.0.0.1
dialing each other's own ports (no proxy), plus waits with deadlines and event-log
readers.

This module owns only test plumbing: it writes a cluster.json with pre-allocated
loopback ports (the peers' dial addresses must be known before they start, so each
port is bound once below the ephemeral range and released just before the spawn),
spawns and signals the peers through `harness.procs` (own session, parent-death
SIGKILL, reaped on close), and reads their JSONL logs through `harness.events`. It
knows nothing of the protocol beyond the client `status` call. No tests live here.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from harness import cluster, procs
from harness.client import PeerClient
from harness.errors import ClientError
from harness.events import Event, read_log
from peer.config import Address, ClusterConfig, Dial, Member
from peer.domain import FAST, Bug, Role, ServerState, Timing

HOST = "127.0.0.1"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
PORT_NAMES = ("election_port", "quorum_port", "client_port")
_T = TypeVar("_T")


class WaitFailed(AssertionError):
    """A wait ran past its deadline; the message says what it waited for and what
    it last saw."""


def wait_until(what: str, check: Callable[[], _T | None], timeout: float, poll: float = 0.02) -> _T:
    """Poll `check` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None and found is not False:
            return found
        if time.monotonic() >= deadline:
            raise WaitFailed(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)


# Ports handed out by `free_ports`: below Linux's default ephemeral range (32768-60999),
# which the kernel also gives every outgoing connection as its source port. A port
# taken by binding port 0 comes from that range, and under `pytest -n auto` some dialing
# socket could take it between its release and the peer's bind ("address in use").
_PORT_RANGE = range(20_000, 32_768)
_pick = random.SystemRandom()


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports, free a moment ago and outside the ephemeral range.
    All are held open together while choosing, so none is handed out twice."""
    socks: list[socket.socket] = []
    try:
        while len(socks) < count:
            sock = socket.socket()
            try:
                sock.bind((HOST, _pick.choice(_PORT_RANGE)))
            except OSError:
                sock.close()  # taken: draw another
                continue
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def direct_config(
    voters: Iterable[int], *, observers: Iterable[int] = (), timing: Timing = FAST
) -> ClusterConfig:
    """A config where every peer dials the others' own (pre-allocated) ports."""
    voter_sids = tuple(voters)
    observer_sids = tuple(observers)
    sids = voter_sids + observer_sids
    ports = free_ports(3 * len(sids))
    own = {sid: ports[3 * i : 3 * i + 3] for i, sid in enumerate(sids)}
    members = {
        sid: Member(
            sid=sid,
            role=Role.VOTER if sid in voter_sids else Role.OBSERVER,
            host=HOST,
            election_port=own[sid][0],
            quorum_port=own[sid][1],
            client_port=own[sid][2],
            dial={
                j: Dial(
                    election=Address(host=HOST, port=own[j][0]),
                    quorum=Address(host=HOST, port=own[j][1]),
                )
                for j in sids
                if j != sid
            },
        )
        for sid in sids
    }
    return ClusterConfig(members=members, timing=timing)


def peer_argv(
    sid: int, config_path: Path, data: Path, events: Path, bug: Bug | str | None = None
) -> list[str]:
    """A peer's command line exactly as the launcher builds it (same interpreter flags)."""
    planted = Bug(bug) if isinstance(bug, str) else bug
    return cluster.peer_argv(sys.executable, sid, config_path, data, events, planted)


def peer_env() -> dict[str, str]:
    """The launcher's peer environment, with the peer's modules compiled once up front so
    the peers of a test do not each compile them at spawn (see `cluster.precompile_peer`)."""
    env = cluster.peer_env()
    cluster.precompile_peer(env)
    return env


def events_of(path: Path, kind: str | None = None) -> list[Event]:
    """Every event of a peer log (all boots), failing on any invalid line."""
    if not path.exists():
        return []
    log = read_log(path)
    assert not log.errors, f"{path}: invalid events: {[str(e) for e in log.errors]}"
    return [e for e in log.events if kind is None or e.kind == kind]


class DirectPeers:
    """A set of peers started as real processes, dialing each other directly.

    Each boot appends to `peer-<sid>.jsonl`; `data-<sid>/` survives kills so a restart
    recovers. `close()` (or leaving the `with`) reaps every process: SIGCONT, SIGTERM,
    then SIGKILL (harness.procs)."""

    def __init__(
        self,
        root: Path,
        voters: Iterable[int],
        *,
        observers: Iterable[int] = (),
        timing: Timing = FAST,
        bug: Bug | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.env = env if env is not None else peer_env()
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = direct_config(voters, observers=observers, timing=timing)
        self.sids = tuple(sorted(self.config.members))
        self.voters = self.config.voters
        self.bug = bug
        self.config_path = root / "cluster.json"
        self.config_path.write_text(json.dumps(self.config.to_json(), indent=1), encoding="utf-8")
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._stderr: dict[int, Any] = {}
        self.paused: set[int] = set()
        self.spawned_at: dict[int, float] = {}

    def __enter__(self) -> DirectPeers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- paths ---------------------------------------------------------------------

    def data_dir(self, sid: int) -> Path:
        return self.root / f"data-{sid}"

    def log_path(self, sid: int) -> Path:
        return self.root / f"peer-{sid}.jsonl"

    def stderr_path(self, sid: int) -> Path:
        return self.root / f"peer-{sid}.stderr"

    def client_port(self, sid: int) -> int:
        return self.config.members[sid].client_port

    # --- lifecycle -----------------------------------------------------------------

    def start(self, *sids: int) -> None:
        """Spawn the given peers (all when none given); does not wait for them."""
        for sid in sids or self.sids:
            assert sid not in self._procs, f"peer {sid} is already running"
            self.data_dir(sid).mkdir(exist_ok=True)
            if sid not in self._stderr:
                self._stderr[sid] = self.stderr_path(sid).open("ab")
            argv = peer_argv(
                sid, self.config_path, self.data_dir(sid), self.log_path(sid), self.bug
            )
            self.spawned_at[sid] = time.monotonic()
            self._procs[sid] = procs.spawn(
                argv, stdout=self._stderr[sid], stderr=self._stderr[sid], env=self.env
            )
            self.paused.discard(sid)

    def kill(self, sid: int) -> None:
        """SIGKILL and collect the peer."""
        proc = self._procs.pop(sid)
        procs.send_signal(proc, signal.SIGKILL)
        proc.wait(timeout=10)
        procs.untrack(proc)
        self.paused.discard(sid)

    def pause(self, sid: int) -> None:
        procs.send_signal(self._procs[sid], signal.SIGSTOP)
        self.paused.add(sid)

    def resume(self, sid: int) -> None:
        procs.send_signal(self._procs[sid], signal.SIGCONT)
        self.paused.discard(sid)

    def pid(self, sid: int) -> int:
        return self._procs[sid].pid

    def running(self) -> tuple[int, ...]:
        return tuple(sid for sid, p in sorted(self._procs.items()) if p.poll() is None)

    def close(self) -> None:
        try:
            procs.reap(list(self._procs.values()), timeout=5.0)
        finally:
            self._procs.clear()
            for handle in self._stderr.values():
                handle.close()
            self._stderr.clear()

    # --- observing -----------------------------------------------------------------

    def status(self, sid: int, timeout: float = 1.0) -> dict[str, Any] | None:
        if sid not in self._procs or sid in self.paused:
            return None
        try:
            with PeerClient(HOST, self.client_port(sid), timeout=timeout) as client:
                return client.status()
        except ClientError:
            return None

    def client(self, sid: int, timeout: float = 3.0) -> PeerClient:
        return PeerClient(HOST, self.client_port(sid), timeout=timeout)

    def leader(self, among: Iterable[int] | None = None) -> int | None:
        """The sid that is LEADING and serving, when every live peer in `among` (default:
        all running, not paused) agrees on it and is FOLLOWING/OBSERVING it; else None."""
        live = [s for s in (among or self.running()) if s not in self.paused]
        statuses = {s: self.status(s) for s in live}
        if any(st is None for st in statuses.values()):
            return None
        leaders = {st.get("leader") for st in statuses.values() if st is not None}
        if len(leaders) != 1:
            return None
        (leader,) = leaders
        if not isinstance(leader, int) or leader not in statuses:
            return None
        for sid, st in statuses.items():
            assert st is not None
            expected = ServerState.LEADING if sid == leader else None
            if expected is ServerState.LEADING:
                if st["state"] != ServerState.LEADING or st["serving"] is not True:
                    return None
            elif st["state"] not in (ServerState.FOLLOWING, ServerState.OBSERVING):
                return None
        return int(leader)

    def wait_for_leader(self, timeout: float = 15.0, among: Iterable[int] | None = None) -> int:
        group = tuple(among) if among is not None else None

        def check() -> int | None:
            return self.leader(group)

        try:
            return wait_until("one agreed, serving leader", check, timeout)
        except WaitFailed as exc:
            seen = {s: self.status(s) for s in (group or self.running())}
            raise WaitFailed(f"{exc}; statuses: {seen}\n{self.evidence()}") from None

    def events(self, sid: int, kind: str | None = None) -> list[Event]:
        return events_of(self.log_path(sid), kind)

    def evidence(self, lines: int = 8) -> str:
        parts: list[str] = []
        for sid in self.sids:
            for path in (self.log_path(sid), self.stderr_path(sid)):
                with contextlib.suppress(OSError):
                    tail = path.read_text(encoding="utf-8", errors="replace").splitlines()
                    parts.append(f"--- {path.name}")
                    parts.extend(tail[-lines:])
        return "\n".join(parts)

    def write(self, value_key: str, value: str, timeout: float = 10.0) -> tuple[int, int]:
        """Write through the current leader, retrying through elections; returns
        (leader, zxid)."""
        deadline = time.monotonic() + timeout
        while True:
            leader = self.leader()
            if leader is not None:
                try:
                    with self.client(leader) as client:
                        return leader, client.write(value_key, value)
                except ClientError:
                    pass
            if time.monotonic() >= deadline:
                raise WaitFailed(f"no leader accepted write {value_key}={value} in {timeout}s")
            time.sleep(0.05)


def established(events: Iterable[Event]) -> Iterator[Event]:
    return (e for e in events if e.kind == "established")
