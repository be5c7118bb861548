"""The nemesis: makes a fault plan happen to a running cluster, and logs what it did.

This module owns the interpretation of a `Plan` against a live `harness.cluster.Cluster`:
when each step runs (the monotonic clock, `start + at_ms`), what its symbolic targets
resolve to at that moment (`faults.plan.resolve`, with the leader asked of the cluster
and a `random.Random(seed)`), how a network fault becomes Toxiproxy toxics, how a
process fault becomes a launcher call and a disk fault a `faults.disk` call, and the
`fault` / `fault_failed` events in `harness.jsonl`. It decides nothing about *which*
faults to inject (that is the plan) and checks nothing (that is the checker).

Theory of operation.
- The nemesis keeps what it believes: `view` (each peer's status, the leader last
  seen, who was hit) and `net` (the `NetState` every `fault` event carries), plus the
  toxics it installed. Before each step `view` is reconciled with the processes (a
  peer that exited on its own is `crashed`), so a symbolic target never picks a dead
  peer and an explicit one is reported as a failure instead.
- Network faults are declarative: each step computes the *desired* set of toxics from
  the new `NetState` (cuts, delays) and the shaping in force (bandwidth, slicer), and
  the adapter removes what is no longer wanted, then adds what is missing. A new
  partition therefore lifts old cuts before the new ones go in, a cut that stays is
  never touched (its connections stay dead, no window), and heal removes everything.
- A directed link (i, j) means "i's data to j". It is carried by four proxy streams:
  `e{i}-{j}` both ways (i's vote connection to j; nothing flows back on it), `q{i}-{j}`
  upstream (i as a learner dialing leader j) and `q{j}-{i}` downstream (j as a
  learner: what leader i replies). A cut is a `timeout` toxic with `timeout=0` and
  toxicity 1 on each: data is dropped and the connection is kept open, so a peer only
  notices through its own timeouts (a real partition, not a reset). Removing such a
  toxic closes its connections (Toxiproxy does that on purpose so no stream resumes
  mid-message); the peers re-dial, which is what they do after a real partition too.
- `Reset` disables and re-enables the link's proxies: that closes every connection at
  once whether or not data is flowing. A `reset_peer` toxic was the alternative, but it
  only fires on the next chunk of data, so an idle link would never be reset.
- A step that cannot be applied (a peer already dead, a proxy error, a disk fault with
  nothing to damage) is logged as `fault_failed` and the run goes on; `heal()` runs at
  the end of `run` and on any error, so a cluster is never left cut or paused.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, assert_never

from faults import disk
from faults.applied import failed_fields, fault_fields, hit_each_target, needs_leader
from faults.errors import FaultError
from faults.plan import (
    PROCESS_FAULTS,
    Bandwidth,
    ClusterView,
    CorruptSnapshot,
    Crash,
    Fault,
    FirstStart,
    Heal,
    Latency,
    LoseUnsynced,
    OneWay,
    Partition,
    Pause,
    PeerStatus,
    Plan,
    Reset,
    Resolution,
    Restart,
    Resume,
    Slicer,
    Start,
    Step,
    Stop,
    TearLogTail,
    Workload,
    apply_to_net,
    resolve,
)
from faults.topology import Link, NetState
from harness.cluster import Cluster
from harness.events import read_log

__all__ = [
    "FailedStep",
    "Nemesis",
    "NemesisError",
    "Shaping",
    "ToxicSpec",
    "desired_toxics",
    "last_synced",
    "link_streams",
    "observe",
]

log = logging.getLogger(__name__)

UP = frozenset({PeerStatus.RUNNING, PeerStatus.PAUSED})
DOWN = frozenset({PeerStatus.CRASHED, PeerStatus.STOPPED})
HEAL_STEP = -1  # the `step` of events logged by `heal()` and by `apply()` outside a plan


class NemesisError(FaultError):
    """The nemesis was misused (a plan naming peers the cluster does not have)."""


# --- pure core: which toxics a fault state needs ------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class ToxicSpec:
    """One toxic on one proxy stream, as the Toxiproxy API takes it."""

    proxy: str
    name: str
    type: str
    stream: str
    attributes: tuple[tuple[str, int], ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.proxy, self.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Shaping:
    """Degradations in force that `NetState` does not track (they slow, never cut):
    per directed link, a bandwidth rate (KB/s) and slicer (average_size,
    size_variation, delay_us)."""

    bandwidth: Mapping[Link, int] = field(default_factory=dict)
    slicer: Mapping[Link, tuple[int, int, int]] = field(default_factory=dict)


ProxyNames = Callable[[int, int], tuple[str, str]]  # (src, dst) -> (election, quorum)


def link_streams(link: Link, names: ProxyNames) -> tuple[tuple[str, str], ...]:
    """The (proxy, stream) pairs that carry i's data to j for link (i, j)."""
    i, j = link
    election, quorum = names(i, j)
    _, quorum_back = names(j, i)
    return (
        (election, "upstream"),
        (election, "downstream"),
        (quorum, "upstream"),
        (quorum_back, "downstream"),
    )


def desired_toxics(
    net: NetState, shaping: Shaping, names: ProxyNames
) -> dict[tuple[str, str], ToxicSpec]:
    """Every toxic the faults in force need, keyed by (proxy, toxic name). Names are
    `<what>-<stream>`: one toxic of each kind per proxy stream, so each key is unique
    (a proxy stream carries exactly one directed link)."""
    wanted: dict[tuple[str, str], ToxicSpec] = {}

    def put(link: Link, what: str, type_: str, attributes: Iterable[tuple[str, int]]) -> None:
        for proxy, stream in link_streams(link, names):
            spec = ToxicSpec(
                proxy=proxy,
                name=f"{what}-{stream}",
                type=type_,
                stream=stream,
                attributes=tuple(attributes),
            )
            wanted[spec.key] = spec

    for link in sorted(net.cut):
        put(link, "cut", "timeout", [("timeout", 0)])
    for delay in net.delays:
        put(
            (delay.src, delay.dst),
            "latency",
            "latency",
            [("latency", delay.latency_ms), ("jitter", delay.jitter_ms)],
        )
    for link, rate in sorted(shaping.bandwidth.items()):
        put(link, "bandwidth", "bandwidth", [("rate", rate)])
    for link, (size, variation, delay_us) in sorted(shaping.slicer.items()):
        attributes = [("average_size", size), ("size_variation", variation), ("delay", delay_us)]
        put(link, "slicer", "slicer", attributes)
    return wanted


def observe(view: ClusterView, *, running: Iterable[int], paused: Iterable[int]) -> ClusterView:
    """`view` corrected by what the processes show: a peer believed up that is gone
    crashed (it exited on its own), a paused/unpaused mismatch follows the process, a
    peer believed down that runs was started by someone else."""
    live = frozenset(running)
    stopped = frozenset(paused)
    status = dict(view.status)
    for sid, believed in view.status.items():
        if sid not in live:
            if believed in UP:
                status[sid] = PeerStatus.CRASHED
        elif sid in stopped:
            status[sid] = PeerStatus.PAUSED
        else:
            status[sid] = PeerStatus.RUNNING
    leader = view.leader if view.leader is None or status[view.leader] in UP else None
    return replace(view, status=status, leader=leader)


def last_synced(path: Path) -> tuple[str, int] | None:
    """The last (log file, offset) a peer reported fsynced: the newest `logged` event
    of its last boot that logged anything (the last boot's own, when it has one). None
    when the peer never logged a write: nothing it wrote was ever known to be durable."""
    found: dict[int, tuple[str, int]] = {}
    for event in read_log(path).events:
        if event.kind == "logged" and event.boot is not None:
            file, offset = event.get("file"), event.get("offset")
            if isinstance(file, str) and isinstance(offset, int):
                found[event.boot] = (file, offset)
    return found[max(found)] if found else None


@dataclass(frozen=True, slots=True, kw_only=True)
class FailedStep:
    """A step (or one target of it) that could not be applied; also a `fault_failed` event."""

    step: int
    what: str
    why: str
    target: int | None = None


# --- the adapter ----------------------------------------------------------------------


class Nemesis:
    """Applies a plan (or single faults) to a running cluster; see the module docstring.

    Not thread-safe: one thread drives it (`run`, or a test calling `apply`)."""

    def __init__(
        self,
        cluster: Cluster,
        plan: Plan,
        *,
        seed: int,
        workload: Callable[[bool], None] | None = None,
    ) -> None:
        stray = sorted(set(plan.peers) - set(cluster.sids))
        if stray:
            raise NemesisError(
                "the plan names peers the cluster does not have",
                plan_peers=list(plan.peers),
                cluster_sids=list(cluster.sids),
                missing=stray,
            )
        self.cluster = cluster
        self.plan = plan
        self.seed = seed
        self.workload = workload
        self.rng = random.Random(seed)
        # disk damage draws from its own stream, so it does not shift later resolutions
        self.disk_rng = random.Random(f"nemesis-disk:{seed}")
        self.view = ClusterView.initial(plan)
        self.net = NetState()
        self.shaping = Shaping()
        self.failures: list[FailedStep] = []
        self._installed: dict[tuple[str, str], ToxicSpec] = {}
        self._sync_with_processes()
        self.net = replace(
            self.net,
            down=frozenset(s for s in plan.peers if not cluster.is_running(s)),
            paused=frozenset(s for s in plan.peers if cluster.is_paused(s)),
        )

    # --- the plan ---------------------------------------------------------------------

    def run(
        self,
        *,
        stop: threading.Event | None = None,
        on_step: Callable[[int, Step, Resolution], None] | None = None,
    ) -> None:
        """Apply every step at `start + at_ms` (monotonic clock); return after the last
        one (the caller waits the quiet period). A set `stop` aborts between steps.
        The cluster is healed on the way out, whatever happened."""
        halt = stop if stop is not None else threading.Event()
        start = time.monotonic()
        try:
            for index, step in enumerate(self.plan.steps):
                due = start + step.at_ms / 1000.0
                if halt.wait(max(0.0, due - time.monotonic())):
                    log.info("nemesis stopped before step %d", index)
                    break
                late_ms = max(0, round((time.monotonic() - due) * 1000))
                resolution = self._apply(step.fault, step=index, at_ms=step.at_ms, late_ms=late_ms)
                if on_step is not None:
                    on_step(index, step, resolution)
        finally:
            self.heal()

    def apply(self, fault: Fault, *, step: int = HEAL_STEP) -> Resolution:
        """Apply one fault now (tests and tools): resolved, applied, logged like a plan
        step. Failures are logged as `fault_failed` and kept in `failures`; the returned
        resolution names only the targets it was applied to."""
        return self._apply(fault, step=step, at_ms=None, late_ms=None)

    def heal(self) -> None:
        """Remove every toxic on the cluster's proxies, enable every proxy, resume every
        paused peer; logged as a `fault` event (what "heal", step -1). Errors are logged
        as `fault_failed` and do not stop the rest of the healing."""
        problems = self._clear_network()
        resumed: list[int] = []
        for sid in self.cluster.sids:
            try:
                if self.cluster.is_paused(sid):
                    self.cluster.resume(sid)
                    resumed.append(sid)
            except Exception as exc:  # keep healing the others; reported below
                problems.append(f"resume peer {sid}: {exc}")
        self.shaping = Shaping()
        self.net = self.net.heal().resume(resumed)
        self._sync_with_processes()
        for why in problems:
            self._failed(HEAL_STEP, "heal", why)
        self._emit_fault(HEAL_STEP, "heal", Resolution(targets=tuple(resumed)), detail="healed all")

    # --- one step -------------------------------------------------------------------

    def _apply(
        self, fault: Fault, *, step: int, at_ms: int | None, late_ms: int | None
    ) -> Resolution:
        what = fault.kind.value
        self._sync_with_processes()
        extra: dict[str, Any] = {}
        if at_ms is not None:
            extra.update(at_ms=at_ms, late_ms=late_ms)
        if needs_leader(fault):
            try:
                leader = self.cluster.leader()
            except Exception as exc:  # the step may still resolve without a leader
                log.warning("step %d: could not ask for the leader: %s", step, exc)
                leader = None
            self.view = replace(self.view, leader=leader)
            extra["leader"] = leader  # the resolution is logged with what it was based on
        try:
            resolution = resolve(fault, self.view, self.rng)
        except FaultError as exc:
            self._failed(step, what, f"cannot resolve targets: {exc}")
            return Resolution()
        if isinstance(fault, PROCESS_FAULTS):
            return self._apply_to_peers(fault, resolution, step=step, extra=extra)
        match fault:
            case Partition() | OneWay() | Heal() | Latency() | Bandwidth() | Slicer():
                shaping = self._shaping_after(fault, resolution)
                net = apply_to_net(self.net, fault, resolution)
                try:
                    if isinstance(fault, Heal):
                        problems = self._clear_network()
                        if problems:
                            raise FaultError("heal incomplete", problems=problems)
                    else:
                        self._sync_toxics(desired_toxics(net, shaping, self.cluster.link_proxies))
                except Exception as exc:  # a proxy error: the toxics may be half set
                    self._failed(step, what, f"toxiproxy: {exc}")
                    return Resolution()
                self.net, self.shaping = net, shaping
                self._emit_fault(step, what, resolution, fault=fault, **extra)
                return resolution
            case Reset():
                try:
                    detail = self._reset(resolution.links)
                except Exception as exc:
                    self._failed(step, what, f"toxiproxy: {exc}")
                    return Resolution()
                self._emit_fault(step, what, resolution, fault=fault, detail=detail, **extra)
                return resolution
            case Workload(on=on):
                if self.workload is None:
                    detail = "no workload attached"
                else:
                    try:
                        self.workload(on)
                    except Exception as exc:
                        self._failed(step, what, f"workload callback: {exc}")
                        return Resolution()
                    detail = f"workload {'on' if on else 'off'}"
                self._emit_fault(step, what, resolution, fault=fault, detail=detail, **extra)
                return resolution
            case _:
                assert_never(fault)

    def _apply_to_peers(
        self, fault: Fault, resolution: Resolution, *, step: int, extra: dict[str, Any]
    ) -> Resolution:
        what = fault.kind.value

        def failed(sid: int, exc: Exception) -> None:
            # the peer was not in the state the step needs
            self._failed(step, what, str(exc), target=sid)

        applied = hit_each_target(
            fault,
            resolution,
            self.view,
            self.net,
            hit=lambda sid: self._hit(fault, sid),
            failed=failed,
        )
        if applied is None:
            return replace(resolution, targets=())  # only fault_failed events
        self.view, self.net = applied.view, applied.net
        self._emit_fault(
            step, what, applied.resolution, fault=fault, detail=applied.detail, **extra
        )
        return applied.resolution

    def _hit(self, fault: Fault, sid: int) -> str:
        """One process or disk fault on one peer; returns a detail for the log."""
        cluster = self.cluster
        match fault:
            case Crash():
                return f"peer {sid} killed, exit code {cluster.kill(sid)}"
            case Stop():
                return f"peer {sid} stopped, exit code {cluster.stop(sid)}"
            case Pause():
                if cluster.is_paused(sid):
                    raise NemesisError("cannot pause a peer that is already paused", sid=sid)
                cluster.pause(sid)
                return ""
            case Resume():
                if not cluster.is_paused(sid):
                    raise NemesisError("cannot resume a peer that is not paused", sid=sid)
                cluster.resume(sid)
                return ""
            case Restart() | Start() | FirstStart():
                cluster.start_peer(sid)
                return f"peer {sid} started, pid {cluster.pid(sid)}"
            case TearLogTail() | CorruptSnapshot() | LoseUnsynced():
                if cluster.is_running(sid):
                    raise NemesisError("disk faults need a down peer, this one runs", sid=sid)
                return self._damage(fault, sid)
            case Partition() | OneWay() | Heal() | Latency() | Bandwidth() | Slicer():
                raise AssertionError(f"not a process fault: {fault!r}")
            case Reset() | Workload():
                raise AssertionError(f"not a process fault: {fault!r}")
            case _:
                assert_never(fault)

    def _damage(self, fault: TearLogTail | CorruptSnapshot | LoseUnsynced, sid: int) -> str:
        data_dir = self.cluster.data_dir(sid)
        match fault:
            case TearLogTail(bytes=count):
                return disk.tear_log_tail(data_dir, self.disk_rng, nbytes=count)
            case CorruptSnapshot():
                return disk.corrupt_newest_snapshot(data_dir, self.disk_rng)
            case LoseUnsynced():
                synced = last_synced(self.cluster.event_log(sid))
                file, offset = synced if synced is not None else ("", 0)
                return disk.drop_unsynced_tail(data_dir, file, offset)
            case _:
                assert_never(fault)

    # --- network ----------------------------------------------------------------------

    def _shaping_after(self, fault: Fault, resolution: Resolution) -> Shaping:
        links = resolution.links
        match fault:
            case Heal():
                return Shaping()
            case Bandwidth(rate_kbps=rate):
                bandwidth = dict(self.shaping.bandwidth) | {link: rate for link in links}
                return replace(self.shaping, bandwidth=bandwidth)
            case Slicer(average_size=size, size_variation=variation, delay_us=delay_us):
                sliced = {link: (size, variation, delay_us) for link in links}
                return replace(self.shaping, slicer=dict(self.shaping.slicer) | sliced)
            case _:
                return self.shaping

    def _sync_toxics(self, wanted: Mapping[tuple[str, str], ToxicSpec]) -> None:
        """Remove installed toxics that are no longer wanted (or changed), then add the
        missing ones. `_installed` follows every successful call, so after a failure it
        still says what is on the proxies."""
        tox = self.cluster.toxiproxy
        for key, spec in sorted(self._installed.items()):
            if wanted.get(key) != spec:
                tox.remove_toxic(spec.proxy, spec.name)
                del self._installed[key]
        for key, spec in sorted(wanted.items()):
            if key not in self._installed:
                tox.add_toxic(
                    spec.proxy,
                    type=spec.type,
                    name=spec.name,
                    stream=spec.stream,
                    toxicity=1.0,
                    attributes=dict(spec.attributes),
                )
                self._installed[key] = spec

    def _proxy_names(self) -> set[str]:
        names = {self.cluster.proxy_name("c", sid) for sid in self.cluster.sids}
        for i in self.cluster.sids:
            for j in self.cluster.sids:
                if i != j:
                    names.update(self.cluster.link_proxies(i, j))
        return names

    def _clear_network(self) -> list[str]:
        """Remove every toxic on this cluster's proxies (ours or anyone's) and enable
        every one; returns what failed (each attempted independently)."""
        problems: list[str] = []
        tox = self.cluster.toxiproxy
        try:
            proxies = tox.proxies()
        except Exception as exc:
            return [f"list proxies: {exc}"]
        for name in sorted(self._proxy_names() & set(proxies)):
            proxy = proxies[name]
            for toxic in proxy.toxics:
                try:
                    tox.remove_toxic(name, toxic.name)
                    self._installed.pop((name, toxic.name), None)
                except Exception as exc:
                    problems.append(f"remove toxic {toxic.name} of {name}: {exc}")
            if not proxy.enabled:
                try:
                    tox.update_proxy(name, enabled=True)
                except Exception as exc:
                    problems.append(f"enable {name}: {exc}")
        return problems

    def _reset(self, links: Iterable[Link]) -> str:
        """Close every connection of these links: disable, then enable their proxies."""
        proxies = sorted(
            {proxy for link in links for proxy, _ in link_streams(link, self.cluster.link_proxies)}
        )
        tox = self.cluster.toxiproxy
        try:
            for name in proxies:
                tox.update_proxy(name, enabled=False)
        finally:  # never leave a proxy disabled: heal would, but only at the end
            for name in proxies:
                tox.update_proxy(name, enabled=True)
        return f"reset {len(proxies)} proxies"

    # --- bookkeeping ----------------------------------------------------------------

    def _sync_with_processes(self) -> None:
        sids = self.plan.peers
        running = [s for s in sids if self.cluster.is_running(s)]
        paused = [s for s in running if self.cluster.is_paused(s)]
        self.view = observe(self.view, running=running, paused=paused)
        gone = [s for s in sids if self.view.status[s] in DOWN and s not in self.net.down]
        if gone:  # exited on its own since the last step
            self.net = self.net.take_down(gone)

    def _emit_fault(
        self,
        step: int,
        what: str,
        resolution: Resolution,
        *,
        fault: Fault | None = None,
        **extra: Any,
    ) -> None:
        fields = fault_fields(step, what, resolution, self.net, fault, extra)
        self.cluster.harness_log.emit("fault", fields)
        log.info("step %d: %s on %s", step, what, list(resolution.targets))

    def _failed(self, step: int, what: str, why: str, *, target: int | None = None) -> None:
        self.failures.append(FailedStep(step=step, what=what, why=why, target=target))
        self.cluster.harness_log.emit("fault_failed", failed_fields(step, what, why, target))
        log.warning("step %d (%s) failed: %s", step, what, why)
