"""Fault plans as data: the model, JSON text, validation, runtime resolution, generation.

This module owns what a fault plan *is* (timed `Step`s, one dataclass per fault kind),
how it is written (`plan.json`, stable byte for byte), what makes it valid, how a
step's symbolic target ("the leader", "a random follower", "the last peer crashed")
becomes sids when it runs (`resolve`, given what the nemesis observed), and how a
seeded profile generates a plan. It is a pure core: no I/O (plan files are read and
written by `faults.planfile`), no clock, and no randomness it was not handed (the generator
seeds its own `random.Random` from (GENERATOR_VERSION, profile, seed) only).

Theory of operation.
- A step runs at `at_ms` after the run starts; steps are in time order (ties keep
  plan order). After the last step comes a quiet period (`quiet_ms`) with no faults,
  long enough for the liveness check.
- Peers have a status: new (never started), running, paused, crashed, stopped.
  Process and disk faults are only possible from some statuses (restart needs a down
  peer, resume a paused one, a disk fault a down one). The workload starts ON and a
  `Workload` step turns it off or back on.
- Validation walks the plan over an *abstract* state: for each peer, the set of
  statuses it may have. An explicit sid must be eligible for certain; a symbolic
  target is resolved at run time among the eligible peers (possibly none: the step
  then does nothing and says so), so it only needs some peer that may be eligible.
  Symbolic "all" maps every possibility exactly, so `Restart(all)` after any
  crashes leaves everyone certainly running: generated plans end that way.
- A recorded plan is replayed as stored; `GENERATOR_VERSION` changes whenever the
  same (profile, seed) would generate a different plan.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, replace
from enum import StrEnum
from typing import Any, ClassVar, Final, Literal, assert_never

from faults.errors import FaultError, PlanError
from faults.topology import (
    Groups,
    Link,
    NetState,
    Shape,
    all_links,
    cut_links,
    partition_groups,
)

__all__ = [
    "FAULT_TYPES",
    "GENERATOR_VERSION",
    "PLAN_VERSION",
    "PROCESS_FAULTS",
    "PROFILES",
    "Bandwidth",
    "ClusterView",
    "CorruptSnapshot",
    "Crash",
    "Fault",
    "FaultKind",
    "FirstStart",
    "Heal",
    "Latency",
    "Links",
    "LoseUnsynced",
    "OneWay",
    "Partition",
    "Pause",
    "PeerStatus",
    "Plan",
    "PlanError",
    "PlanState",
    "ProcessFault",
    "Reset",
    "Resolution",
    "Restart",
    "Resume",
    "Slicer",
    "Start",
    "Step",
    "Stop",
    "Sym",
    "Target",
    "TearLogTail",
    "Workload",
    "advance",
    "apply_to_net",
    "ends_settled",
    "fault_to_json",
    "format_plan",
    "generate",
    "parse_plan",
    "plan_from_text",
    "plan_to_json",
    "quiet_period_ms",
    "resolve",
    "settle_steps",
    "symbols_for",
    "validate_plan",
]

PLAN_VERSION = 1
# 2: `mixed` and `crash-restart` gained the bug-hunting episodes
# 3: they gained `rejoin_crash` (a follower crashed again just after it re-synced)
# 4: they gained `leader_outage` (the leader away longer than an election may take)
GENERATOR_VERSION = 4
MAX_PEERS = 99


class Sym(StrEnum):
    """Symbolic targets, resolved when the step runs (and the resolution logged)."""

    LEADER = "leader"  # the leader the nemesis sees at that moment
    FOLLOWER = "follower"  # a random eligible peer that is not the leader
    RANDOM = "random"  # a random eligible peer
    ALL = "all"  # every eligible peer
    LAST = "last"  # the peer most recently hit by a step that left it eligible


Target = int | Sym
Links = tuple[Link, ...] | Literal["all"]


class PeerStatus(StrEnum):
    NEW = "new"  # never started (sequential-start scenarios)
    RUNNING = "running"
    PAUSED = "paused"  # SIGSTOP
    CRASHED = "crashed"  # SIGKILL
    STOPPED = "stopped"  # graceful stop (SIGTERM)


class FaultKind(StrEnum):
    PARTITION = "partition"
    ONE_WAY = "one-way"
    HEAL = "heal"
    LATENCY = "latency"
    BANDWIDTH = "bandwidth"
    SLICER = "slicer"
    RESET = "reset"
    CRASH = "crash"
    RESTART = "restart"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    START = "start"
    FIRST_START = "first-start"
    TEAR_LOG_TAIL = "tear-log-tail"
    CORRUPT_SNAPSHOT = "corrupt-snapshot"
    LOSE_UNSYNCED = "lose-unsynced"
    WORKLOAD = "workload"


# --- the faults: one dataclass per kind -------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Partition:
    """Cut the network into groups (replacing any cut in force). `groups` only for the
    explicit shape; `target` only for `isolate` (default: a random peer)."""

    kind: ClassVar[FaultKind] = FaultKind.PARTITION
    shape: Shape
    groups: Groups | None = None
    target: Target | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OneWay:
    """`src` can no longer send to `dst` (added to the cuts in force)."""

    kind: ClassVar[FaultKind] = FaultKind.ONE_WAY
    src: Target
    dst: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class Heal:
    """Remove every network fault (cuts, latency, bandwidth, slicer)."""

    kind: ClassVar[FaultKind] = FaultKind.HEAL


@dataclass(frozen=True, slots=True, kw_only=True)
class Latency:
    kind: ClassVar[FaultKind] = FaultKind.LATENCY
    links: Links = "all"
    latency_ms: int
    jitter_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Bandwidth:
    kind: ClassVar[FaultKind] = FaultKind.BANDWIDTH
    links: Links = "all"
    rate_kbps: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Slicer:
    """Toxiproxy's slicer: cut the stream into small packets with a delay between."""

    kind: ClassVar[FaultKind] = FaultKind.SLICER
    links: Links = "all"
    average_size: int
    size_variation: int = 0
    delay_us: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Reset:
    """Reset the connections of these links once (TCP RST); not a lasting fault."""

    kind: ClassVar[FaultKind] = FaultKind.RESET
    links: Links = "all"


@dataclass(frozen=True, slots=True, kw_only=True)
class Crash:
    kind: ClassVar[FaultKind] = FaultKind.CRASH
    target: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class Restart:
    kind: ClassVar[FaultKind] = FaultKind.RESTART
    target: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause:
    kind: ClassVar[FaultKind] = FaultKind.PAUSE
    target: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume:
    kind: ClassVar[FaultKind] = FaultKind.RESUME
    target: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop:
    kind: ClassVar[FaultKind] = FaultKind.STOP
    target: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    kind: ClassVar[FaultKind] = FaultKind.START
    target: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class FirstStart:
    kind: ClassVar[FaultKind] = FaultKind.FIRST_START
    target: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class TearLogTail:
    """Cut `bytes` off the end of the newest transaction log of a down peer."""

    kind: ClassVar[FaultKind] = FaultKind.TEAR_LOG_TAIL
    target: Target
    bytes: int = 7


@dataclass(frozen=True, slots=True, kw_only=True)
class CorruptSnapshot:
    kind: ClassVar[FaultKind] = FaultKind.CORRUPT_SNAPSHOT
    target: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class LoseUnsynced:
    """Drop what the down peer wrote after its last fsync (a lost machine)."""

    kind: ClassVar[FaultKind] = FaultKind.LOSE_UNSYNCED
    target: Target


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    kind: ClassVar[FaultKind] = FaultKind.WORKLOAD
    on: bool


Fault = (
    Partition
    | OneWay
    | Heal
    | Latency
    | Bandwidth
    | Slicer
    | Reset
    | Crash
    | Restart
    | Pause
    | Resume
    | Stop
    | Start
    | FirstStart
    | TearLogTail
    | CorruptSnapshot
    | LoseUnsynced
    | Workload
)
ProcessFault = (
    Crash
    | Restart
    | Pause
    | Resume
    | Stop
    | Start
    | FirstStart
    | TearLogTail
    | CorruptSnapshot
    | LoseUnsynced
)
# The same kinds as a tuple, for `isinstance`: the faults that hit peers (processes
# and their data dirs) rather than the network, resolved and applied alike.
PROCESS_FAULTS: Final = (
    Crash,
    Restart,
    Pause,
    Resume,
    Stop,
    Start,
    FirstStart,
    TearLogTail,
    CorruptSnapshot,
    LoseUnsynced,
)
FAULT_TYPES: dict[FaultKind, type[Any]] = {
    cls.kind: cls
    for cls in (
        Partition,
        OneWay,
        Heal,
        Latency,
        Bandwidth,
        Slicer,
        Reset,
        *PROCESS_FAULTS,
        Workload,
    )
}

_UP = frozenset({PeerStatus.RUNNING, PeerStatus.PAUSED})
_DOWN = frozenset({PeerStatus.CRASHED, PeerStatus.STOPPED})
_PICK = frozenset({Sym.RANDOM, Sym.ALL})


@dataclass(frozen=True, slots=True)
class _Rule:
    """Which statuses a process/disk fault applies to, what it leaves, which symbols
    make sense for it (a down peer leads nothing; a new one was never 'last')."""

    eligible: frozenset[PeerStatus]
    result: PeerStatus | None  # None: status unchanged (disk faults)
    symbols: frozenset[Sym]
    verb: str


_RULES: dict[FaultKind, _Rule] = {
    FaultKind.CRASH: _Rule(_UP, PeerStatus.CRASHED, frozenset(Sym) - {Sym.LAST}, "crashed"),
    FaultKind.STOP: _Rule(_UP, PeerStatus.STOPPED, frozenset(Sym) - {Sym.LAST}, "stopped"),
    FaultKind.PAUSE: _Rule(
        frozenset({PeerStatus.RUNNING}), PeerStatus.PAUSED, frozenset(Sym) - {Sym.LAST}, "paused"
    ),
    FaultKind.RESTART: _Rule(_DOWN, PeerStatus.RUNNING, _PICK | {Sym.LAST}, "restarted"),
    FaultKind.START: _Rule(_DOWN, PeerStatus.RUNNING, _PICK | {Sym.LAST}, "started"),
    FaultKind.RESUME: _Rule(
        frozenset({PeerStatus.PAUSED}), PeerStatus.RUNNING, _PICK | {Sym.LAST}, "resumed"
    ),
    FaultKind.FIRST_START: _Rule(
        frozenset({PeerStatus.NEW}), PeerStatus.RUNNING, _PICK, "started for the first time"
    ),
    FaultKind.TEAR_LOG_TAIL: _Rule(_DOWN, None, _PICK | {Sym.LAST}, "given a torn log tail"),
    FaultKind.CORRUPT_SNAPSHOT: _Rule(_DOWN, None, _PICK | {Sym.LAST}, "given a bad snapshot"),
    FaultKind.LOSE_UNSYNCED: _Rule(_DOWN, None, _PICK | {Sym.LAST}, "made to lose its tail"),
}
# Network targets name peers whatever their status; "all" only makes sense one-way.
_NET_SYMBOLS = frozenset({Sym.LEADER, Sym.FOLLOWER, Sym.RANDOM, Sym.LAST})
_ONE_WAY_SYMBOLS = _NET_SYMBOLS | {Sym.ALL}


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    at_ms: int
    fault: Fault


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    version: int = PLAN_VERSION
    generator_version: int | None = GENERATOR_VERSION
    profile: str
    seed: int | None
    peers: tuple[int, ...]
    duration_ms: int
    quiet_ms: int
    initially_running: tuple[int, ...]
    steps: tuple[Step, ...]


# --- abstract state: validation and generation share it ----------------------------


class _Refused(Exception):
    def __init__(self, field_name: str, why: str) -> None:
        super().__init__(why)
        self.field = field_name
        self.why = why


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanState:
    """What may be true after a prefix of a plan: per peer the statuses it may have,
    whether a network fault may be in force, whether the workload is on."""

    possible: Mapping[int, frozenset[PeerStatus]]
    net_faulty: bool = False
    workload_on: bool = True

    @classmethod
    def initial(cls, peers: Iterable[int], running: Iterable[int]) -> PlanState:
        up = frozenset(running)
        return cls(
            possible={
                s: frozenset({PeerStatus.RUNNING if s in up else PeerStatus.NEW}) for s in peers
            }
        )

    def certain(self, kind: FaultKind) -> tuple[int, ...]:
        """Peers an explicit-sid step of this kind may name now."""
        eligible = _RULES[kind].eligible
        return tuple(s for s, p in sorted(self.possible.items()) if p <= eligible)

    def maybe(self, kind: FaultKind) -> tuple[int, ...]:
        """Peers a symbolic step of this kind might hit now."""
        eligible = _RULES[kind].eligible
        return tuple(s for s, p in sorted(self.possible.items()) if p & eligible)

    def settled(self) -> bool:
        running = frozenset({PeerStatus.RUNNING})
        return (
            not self.net_faulty
            and self.workload_on
            and all(p == running for p in self.possible.values())
        )

    def after(self, fault: Fault) -> PlanState:
        """The state after `fault`, or `_Refused` naming the field when impossible."""
        if isinstance(fault, PROCESS_FAULTS):
            return self._process(fault)
        match fault:
            case Partition() | OneWay() | Latency() | Bandwidth() | Slicer():
                return replace(self, net_faulty=True)
            case Heal():
                return replace(self, net_faulty=False)
            case Reset():
                return self
            case Workload(on=on):
                if on == self.workload_on:
                    raise _Refused("on", f"the workload is already {'on' if on else 'off'}")
                return replace(self, workload_on=on)
            case _:
                assert_never(fault)

    def _process(self, fault: ProcessFault) -> PlanState:
        rule = _RULES[fault.kind]
        target = fault.target
        new = dict(self.possible)
        if isinstance(target, Sym):
            hit = self.maybe(fault.kind)
            if not hit:
                states = "/".join(sorted(rule.eligible))
                raise _Refused("target", f"no peer can be {rule.verb} here (none is {states})")
            for sid in hit:
                p = self.possible[sid]
                if rule.result is None:
                    continue
                if target is Sym.ALL:  # every eligible possibility moves: exact
                    new[sid] = frozenset(rule.result if s in rule.eligible else s for s in p)
                else:  # at most one peer is hit: it may or may not be this one
                    new[sid] = p | {rule.result}
            return replace(self, possible=new)
        p = self.possible[target]
        if not p <= rule.eligible:
            now = "/".join(sorted(p))
            need = "/".join(sorted(rule.eligible))
            raise _Refused(
                "target", f"peer {target} cannot be {rule.verb}: it is {now} (needs {need})"
            )
        if rule.result is not None:
            new[target] = frozenset({rule.result})
        return replace(self, possible=new)


def symbols_for(kind: FaultKind) -> frozenset[Sym]:
    """The symbolic targets a process/disk fault of this kind accepts."""
    return _RULES[kind].symbols


# --- validation ------------------------------------------------------------------


def _check_sid(value: object, peers: tuple[int, ...], fname: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Refused(fname, f"expected a sid, got {value!r}")
    if value not in peers:
        raise _Refused(fname, f"peer {value} does not exist (peers: {list(peers)})")


def _check_target(
    value: object, peers: tuple[int, ...], fname: str, allowed: frozenset[Sym]
) -> None:
    if isinstance(value, Sym):
        if value not in allowed:
            ok = ", ".join(sorted(allowed))
            raise _Refused(fname, f"target {value.value!r} makes no sense here (use a sid or {ok})")
        return
    _check_sid(value, peers, fname)


def _check_links(links: Links, peers: tuple[int, ...]) -> None:
    if links == "all":
        return
    if not links:
        raise _Refused("links", 'an empty list of links (use "all" for every link)')
    for src, dst in links:
        _check_sid(src, peers, "links")
        _check_sid(dst, peers, "links")
        if src == dst:
            raise _Refused("links", f"link [{src}, {dst}] goes from a peer to itself")


def _check_nonneg(value: object, fname: str, *, positive: bool = False) -> None:
    low = 1 if positive else 0
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise _Refused(fname, f"expected an integer >= {low}, got {value!r}")


def _check_fault(fault: Fault, peers: tuple[int, ...]) -> None:
    """Static checks of one fault (no sequence): sids exist, numbers in range."""
    match fault:
        case Partition(shape=shape, groups=groups, target=target):
            if not isinstance(shape, Shape):
                raise _Refused("shape", f"unknown shape {shape!r}")
            if (groups is not None) != (shape is Shape.EXPLICIT):
                why = "explicit needs groups" if groups is None else "groups need shape explicit"
                raise _Refused("groups", why)
            if target is not None and shape is not Shape.ISOLATE:
                raise _Refused("target", f"only the isolate shape takes a target, not {shape}")
            if target is not None:
                _check_target(target, peers, "target", _NET_SYMBOLS)
            if groups is not None:
                try:
                    partition_groups(shape, peers, leader=None, rng=random.Random(0), groups=groups)
                except FaultError as exc:
                    raise _Refused("groups", str(exc)) from None
        case OneWay(src=src, dst=dst):
            _check_target(src, peers, "src", _ONE_WAY_SYMBOLS)
            _check_target(dst, peers, "dst", _ONE_WAY_SYMBOLS)
            if isinstance(src, int) and src == dst:
                raise _Refused("dst", f"peer {src} cannot be cut from itself")
        case Heal() | Workload():
            pass
        case Latency(links=links, latency_ms=latency, jitter_ms=jitter):
            _check_links(links, peers)
            _check_nonneg(latency, "latency_ms")
            _check_nonneg(jitter, "jitter_ms")
        case Bandwidth(links=links, rate_kbps=rate):
            _check_links(links, peers)
            _check_nonneg(rate, "rate_kbps")
        case Slicer(links=links, average_size=avg, size_variation=var, delay_us=delay):
            _check_links(links, peers)
            _check_nonneg(avg, "average_size", positive=True)
            _check_nonneg(var, "size_variation")
            _check_nonneg(delay, "delay_us")
            if var >= avg:
                raise _Refused("size_variation", f"must be below average_size ({avg}), got {var}")
        case Reset(links=links):
            _check_links(links, peers)
        case TearLogTail(target=target, bytes=count):
            _check_target(target, peers, "target", _RULES[fault.kind].symbols)
            _check_nonneg(count, "bytes", positive=True)
        case (
            Crash()
            | Restart()
            | Pause()
            | Resume()
            | Stop()
            | Start()
            | FirstStart()
            | CorruptSnapshot()
            | LoseUnsynced()
        ):
            _check_target(fault.target, peers, "target", _RULES[fault.kind].symbols)
        case _:
            assert_never(fault)


def validate_plan(plan: Plan) -> PlanState:
    """Refuse an unusable plan with a `PlanError` naming the step index and field;
    return the abstract state after its last step."""
    if plan.version != PLAN_VERSION:
        raise PlanError(f"unsupported plan version {plan.version!r}", field="version")
    peers = plan.peers
    if not peers or len(set(peers)) != len(peers) or len(peers) > MAX_PEERS:
        raise PlanError(f"expected 1..{MAX_PEERS} distinct sids, got {list(peers)}", field="peers")
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in peers):
        raise PlanError(f"sids must be integers >= 1, got {list(peers)}", field="peers")
    for sid in plan.initially_running:
        if sid not in peers:
            why = f"peer {sid} does not exist (peers: {list(peers)})"
            raise PlanError(why, field="initially_running")
    if plan.duration_ms <= 0:
        raise PlanError(f"must be positive, got {plan.duration_ms}", field="duration_ms")
    if not 0 <= plan.quiet_ms <= plan.duration_ms:
        why = f"must be between 0 and duration_ms ({plan.duration_ms}), got {plan.quiet_ms}"
        raise PlanError(why, field="quiet_ms")
    last_fault_ms = plan.duration_ms - plan.quiet_ms
    state = PlanState.initial(peers, plan.initially_running)
    previous = 0
    for index, step in enumerate(plan.steps):
        what = step.fault.kind.value
        if step.at_ms < 0:
            raise PlanError(f"negative time {step.at_ms}", field="at_ms", step=index, what=what)
        if step.at_ms < previous:
            why = f"{step.at_ms} is before the previous step ({previous}); steps are in time order"
            raise PlanError(why, field="at_ms", step=index, what=what)
        if step.at_ms > last_fault_ms:
            why = (
                f"{step.at_ms} falls in the quiet period (steps must be at or before "
                f"{last_fault_ms} = duration_ms - quiet_ms)"
            )
            raise PlanError(why, field="at_ms", step=index, what=what)
        previous = step.at_ms
        try:
            _check_fault(step.fault, peers)
            state = state.after(step.fault)
        except _Refused as exc:
            raise PlanError(exc.why, field=exc.field, step=index, what=what) from None
    return state


def ends_settled(plan: Plan) -> bool:
    """True when the plan leaves every peer certainly running, the network healed and
    the workload on: what every generated plan guarantees before its quiet period."""
    return validate_plan(plan).settled()


# --- JSON ------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value


def fault_to_json(fault: Fault) -> dict[str, Any]:
    out: dict[str, Any] = {"fault": fault.kind.value}
    for f in fields(fault):
        out[f.name] = _encode(getattr(fault, f.name))
    return out


def plan_to_json(plan: Plan) -> dict[str, Any]:
    return {
        "version": plan.version,
        "generator_version": plan.generator_version,
        "profile": plan.profile,
        "seed": plan.seed,
        "peers": list(plan.peers),
        "duration_ms": plan.duration_ms,
        "quiet_ms": plan.quiet_ms,
        "initially_running": list(plan.initially_running),
        "steps": [{"at_ms": s.at_ms, **fault_to_json(s.fault)} for s in plan.steps],
    }


def _dump(value: Any, indent: str) -> str:
    # Objects get one key a line (2-space indent); anything without an object inside
    # (sid lists, link lists, groups) stays on one line so a plan reads as a list of
    # steps rather than a column of numbers.
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = indent + "  "
        items = [f"{inner}{json.dumps(k)}: {_dump(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        inner = indent + "  "
        items = [inner + _dump(v, inner) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + indent + "]"
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=True)


def format_plan(plan: Plan) -> str:
    """The plan as `plan.json` text: stable key order, 2-space indent, lists of
    numbers on one line, no trailing newline. The same plan gives the same bytes."""
    return _dump(plan_to_json(plan), "")


def _is_int(raw: object) -> bool:
    return isinstance(raw, int) and not isinstance(raw, bool)


def _dec_int(raw: object) -> int:
    if not _is_int(raw):
        raise ValueError(f"expected an integer, got {raw!r}")
    assert isinstance(raw, int)
    return raw


def _dec_target(raw: object) -> Target:
    if _is_int(raw):
        assert isinstance(raw, int)
        return raw
    if isinstance(raw, str):
        try:
            return Sym(raw)
        except ValueError:
            pass
    known = ", ".join(s.value for s in Sym)
    raise ValueError(f"expected a sid or one of {known}, got {raw!r}")


def _dec_links(raw: object) -> Links:
    if raw == "all":
        return "all"
    if not isinstance(raw, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(_is_int(x) for x in p) for p in raw
    ):
        raise ValueError(f'expected "all" or a list of [src, dst] sid pairs, got {raw!r}')
    return tuple((p[0], p[1]) for p in raw)


def _dec_groups(raw: object) -> Groups | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(
        isinstance(g, list) and all(_is_int(x) for x in g) for g in raw
    ):
        raise ValueError(f"expected a list of lists of sids, got {raw!r}")
    return tuple(frozenset(g) for g in raw)


def _dec_shape(raw: object) -> Shape:
    if isinstance(raw, str) and raw in {s.value for s in Shape}:
        return Shape(raw)
    known = ", ".join(s.value for s in Shape)
    raise ValueError(f"unknown shape {raw!r} (known: {known})")


def _dec_opt_target(raw: object) -> Target | None:
    return None if raw is None else _dec_target(raw)


def _dec_bool(raw: object) -> bool:
    if not isinstance(raw, bool):
        raise ValueError(f"expected true or false, got {raw!r}")
    return raw


_DECODERS: dict[str, Callable[[object], Any]] = {
    "target": _dec_target,
    "src": _dec_target,
    "dst": _dec_target,
    "links": _dec_links,
    "groups": _dec_groups,
    "shape": _dec_shape,
    "on": _dec_bool,
}


def _parse_step(raw: object, index: int) -> Step:
    if not isinstance(raw, dict):
        raise PlanError(f"expected an object, got {raw!r}", field="step", step=index)
    name = raw.get("fault")
    try:
        kind = FaultKind(name) if isinstance(name, str) else FaultKind("")
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        why = f"unknown fault {name!r} (known: {known})"
        raise PlanError(why, field="fault", step=index) from None
    cls = FAULT_TYPES[kind]
    if "at_ms" not in raw:
        raise PlanError("missing", field="at_ms", step=index, what=kind.value)
    try:
        at_ms = _dec_int(raw["at_ms"])
    except ValueError as exc:
        raise PlanError(str(exc), field="at_ms", step=index, what=kind.value) from None
    known_fields = {f.name: f for f in fields(cls)}
    for key in raw:
        if key not in known_fields and key not in ("at_ms", "fault"):
            ok = ", ".join(known_fields) or "none"
            why = f"unknown field for {kind.value} (its fields: {ok})"
            raise PlanError(why, field=key, step=index, what=kind.value)
    kwargs: dict[str, Any] = {}
    for fname, f in known_fields.items():
        if fname not in raw:
            if f.default is MISSING and f.default_factory is MISSING:
                raise PlanError("missing", field=fname, step=index, what=kind.value)
            continue
        decode = _DECODERS.get(fname, _dec_int)
        if fname == "target" and kind is FaultKind.PARTITION:
            decode = _dec_opt_target
        try:
            kwargs[fname] = decode(raw[fname])
        except ValueError as exc:
            raise PlanError(str(exc), field=fname, step=index, what=kind.value) from None
    return Step(at_ms=at_ms, fault=cls(**kwargs))


def _plan_int(raw: Mapping[str, Any], name: str, *, optional: bool = False) -> Any:
    if name not in raw:
        if optional:
            return None
        raise PlanError("missing", field=name)
    value = raw[name]
    if optional and value is None:
        return None
    if not _is_int(value):
        raise PlanError(f"expected an integer, got {value!r}", field=name)
    return value


def _plan_sids(raw: Mapping[str, Any], name: str) -> tuple[int, ...]:
    value = raw.get(name)
    if not isinstance(value, list) or not all(_is_int(s) for s in value):
        raise PlanError(f"expected a list of sids, got {value!r}", field=name)
    return tuple(value)


def parse_plan(raw: object) -> Plan:
    """Build and validate a plan from decoded JSON (pure)."""
    if not isinstance(raw, dict):
        raise PlanError("expected a JSON object", field="plan")
    known = {f.name for f in fields(Plan)}
    for key in raw:
        if key not in known:
            raise PlanError(f"unknown field (known: {', '.join(sorted(known))})", field=key)
    profile = raw.get("profile", "manual")
    if not isinstance(profile, str):
        raise PlanError(f"expected a string, got {profile!r}", field="profile")
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list):
        raise PlanError(f"expected a list of steps, got {steps_raw!r}", field="steps")
    peers = _plan_sids(raw, "peers")
    plan = Plan(
        version=_plan_int(raw, "version"),
        generator_version=_plan_int(raw, "generator_version", optional=True),
        profile=profile,
        seed=_plan_int(raw, "seed", optional=True),
        peers=peers,
        duration_ms=_plan_int(raw, "duration_ms"),
        quiet_ms=_plan_int(raw, "quiet_ms"),
        initially_running=(
            _plan_sids(raw, "initially_running") if "initially_running" in raw else peers
        ),
        steps=tuple(_parse_step(s, i) for i, s in enumerate(steps_raw)),
    )
    validate_plan(plan)
    return plan


def plan_from_text(text: str, source: str = "plan") -> Plan:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        why = f"{source} is not JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        raise PlanError(why, field="plan") from None
    return parse_plan(raw)


# --- runtime resolution: what the nemesis and the simulator do when a step runs -----


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterView:
    """What the nemesis knows when a step runs: each peer's status, the leader it
    sees (None when none), and the sids hit by process/disk steps, oldest first."""

    status: Mapping[int, PeerStatus]
    leader: int | None = None
    hits: tuple[int, ...] = ()

    @classmethod
    def initial(cls, plan: Plan) -> ClusterView:
        up = frozenset(plan.initially_running)
        return cls(
            status={s: PeerStatus.RUNNING if s in up else PeerStatus.NEW for s in plan.peers}
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolution:
    """A step made concrete: the sids it names (for the `fault` event's `targets`),
    the partition groups, and the directed links it touches."""

    targets: tuple[int, ...] = ()
    groups: Groups | None = None
    links: frozenset[Link] = frozenset()


def _pick(
    target: Target,
    candidates: Sequence[int],
    view: ClusterView,
    rng: random.Random,
) -> tuple[int, ...]:
    match target:
        case Sym.LEADER:
            leader = view.leader
            return (leader,) if leader is not None and leader in candidates else ()
        case Sym.FOLLOWER:
            others = [s for s in candidates if s != view.leader]
            return (rng.choice(others),) if others else ()
        case Sym.RANDOM:
            return (rng.choice(list(candidates)),) if candidates else ()
        case Sym.ALL:
            return tuple(candidates)
        case Sym.LAST:
            for sid in reversed(view.hits):
                if sid in candidates:
                    return (sid,)
            return ()
        case int():
            return (target,)
        case _:
            assert_never(target)


def _links(links: Links, peers: Iterable[int]) -> frozenset[Link]:
    return all_links(peers) if links == "all" else frozenset(links)


def resolve(fault: Fault, view: ClusterView, rng: random.Random) -> Resolution:
    """Resolve a step's targets against what is observed now (pure, seeded by `rng`).
    A symbolic target with no eligible peer resolves to no targets; an explicit sid
    is returned as is (the nemesis reports it if the peer is not in the state the
    validated plan expected, e.g. it exited on its own)."""
    peers = sorted(view.status)
    if isinstance(fault, PROCESS_FAULTS):
        eligible = _RULES[fault.kind].eligible
        candidates = [s for s in peers if view.status[s] in eligible]
        return Resolution(targets=_pick(fault.target, candidates, view, rng))
    match fault:
        case Partition(shape=shape, groups=groups, target=target):
            node = None
            if shape is Shape.ISOLATE:
                chosen = _pick(target if target is not None else Sym.RANDOM, peers, view, rng)
                if not chosen:
                    return Resolution(groups=(frozenset(peers),))
                node = chosen[0]
            parts = partition_groups(
                shape, peers, leader=view.leader, rng=rng, groups=groups, node=node
            )
            # targets: the isolated peer, else everyone outside the (first) largest group
            if shape is Shape.ISOLATE_LEADER:
                named: tuple[int, ...] = (view.leader,) if view.leader is not None else ()
            elif node is not None:
                named = (node,)
            else:
                largest = max(parts, key=len)
                named = tuple(s for s in peers if s not in largest)
            return Resolution(targets=named, groups=parts, links=cut_links(parts))
        case OneWay(src=src, dst=dst):
            froms = _pick(src, peers, view, rng)
            tos = _pick(dst, peers, view, rng)
            cut = frozenset((i, j) for i in froms for j in tos if i != j)
            return Resolution(targets=tuple(sorted(set(froms) | set(tos))), links=cut)
        case Heal() | Workload():
            return Resolution()
        case Latency() | Bandwidth() | Slicer() | Reset():
            touched = _links(fault.links, peers)
            return Resolution(
                targets=tuple(sorted({s for link in touched for s in link})), links=touched
            )
        case _:
            assert_never(fault)


def advance(view: ClusterView, fault: Fault, resolution: Resolution) -> ClusterView:
    """The peers' statuses after a step hit `resolution.targets` (the leader is not
    guessed: the caller updates it from what it observes)."""
    rule = _RULES.get(fault.kind)
    if rule is None:
        return view
    status = dict(view.status)
    for sid in resolution.targets:
        if rule.result is not None:
            status[sid] = rule.result
    # a down leader leads nothing; a paused one still thinks it leads (the logs tell)
    leader = view.leader
    if leader in resolution.targets and rule.result in _DOWN:
        leader = None
    return replace(view, status=status, leader=leader, hits=view.hits + resolution.targets)


def apply_to_net(net: NetState, fault: Fault, resolution: Resolution) -> NetState:
    """The network/process fault state after a step (what the `fault` event logs)."""
    match fault:
        case Partition():
            return net.partition(resolution.groups or ())
        case OneWay():
            return net.cut_one_way(resolution.links)
        case Heal():
            return net.heal()
        case Latency(latency_ms=latency, jitter_ms=jitter):
            return net.delay(resolution.links, latency_ms=latency, jitter_ms=jitter)
        case Bandwidth() | Slicer() | Reset() | Workload():
            return net  # degrade but do not cut: NetState tracks reachability and delay
        case TearLogTail() | CorruptSnapshot() | LoseUnsynced():
            return net
        case Crash() | Stop():
            return net.take_down(resolution.targets)
        case Restart() | Start() | FirstStart():
            return net.bring_up(resolution.targets)
        case Pause():
            return net.pause(resolution.targets)
        case Resume():
            return net.resume(resolution.targets)
        case _:
            assert_never(fault)


# --- generation --------------------------------------------------------------------


def quiet_period_ms(tick_ms: int) -> int:
    """Fault-free time at the end of a plan: a follower notices a lost leader within
    sync_limit ticks, an election settles within a few notification rounds and
    finalize waits, discovery within init_limit ticks; 30 ticks plus 2 s covers them
    with room (5 s at the fast 100 ms tick)."""
    return 30 * tick_ms + 2_000


def settle_steps(state: PlanState, at_ms: int) -> list[Step]:
    """Steps that take `state` to settled: heal, resume/restart/start everyone,
    first-start peers never started, workload back on. Uses symbolic `all` so the
    result is certain whatever symbolic steps came before."""
    steps: list[Step] = [Step(at_ms=at_ms, fault=Heal())]
    for cls in (Resume, Restart, FirstStart):
        fault: Fault = cls(target=Sym.ALL)
        if state.maybe(fault.kind):
            state = state.after(fault)
            steps.append(Step(at_ms=at_ms, fault=fault))
    if not state.workload_on:
        steps.append(Step(at_ms=at_ms, fault=Workload(on=True)))
    return steps


PROFILES = ("mixed", "partitions", "latency", "crash-restart", "pause", "disk", "sequential-start")


class _Gen:
    """Builds one plan: a time cursor, the abstract state, the steps so far."""

    def __init__(self, rng: random.Random, peers: tuple[int, ...], tick_ms: int) -> None:
        self.rng = rng
        self.peers = peers
        self.tick = tick_ms
        self.t = 0
        self.state = PlanState.initial(peers, peers)
        self.steps: list[Step] = []

    def ticks(self, low: int, high: int) -> int:
        return self.rng.randint(low, high) * self.tick

    def emit(self, fault: Fault) -> None:
        self.state = self.state.after(fault)
        self.steps.append(Step(at_ms=self.t, fault=fault))

    def hold(self) -> None:
        self.t += self.ticks(10, 40)

    def gap(self) -> None:
        self.t += self.ticks(5, 20)

    def target(self, kind: FaultKind, symbols: Sequence[Sym]) -> Target:
        explicit = self.state.certain(kind)
        options: list[Target] = [*symbols, *explicit]
        return self.rng.choice(options)

    def some_links(self) -> Links:
        if self.rng.random() < 0.5:
            return "all"
        links = sorted(all_links(self.peers))
        return tuple(sorted(self.rng.sample(links, self.rng.randint(1, len(links)))))

    # one episode per fault family; each leaves the state as it found it
    def partition(self) -> None:
        shape = self.rng.choice(list(Shape))
        groups: Groups | None = None
        target: Target | None = None
        if shape is Shape.ISOLATE:
            isolated: list[Target] = [Sym.RANDOM, Sym.FOLLOWER, *self.peers]
            target = self.rng.choice(isolated)
        if shape is Shape.EXPLICIT:
            shuffled = list(self.peers)
            self.rng.shuffle(shuffled)
            cut = self.rng.randint(1, max(1, len(shuffled) - 1))
            groups = tuple(g for g in (frozenset(shuffled[:cut]), frozenset(shuffled[cut:])) if g)
        self.emit(Partition(shape=shape, groups=groups, target=target))
        self.hold()
        self.emit(Heal())

    def one_way(self) -> None:
        sources: list[Target] = [Sym.LEADER, Sym.RANDOM, *self.peers]
        src = self.rng.choice(sources)
        dst = self.rng.choice([Sym.ALL, Sym.FOLLOWER])
        self.emit(OneWay(src=src, dst=dst))
        self.hold()
        self.emit(Heal())

    def slow(self) -> None:
        links = self.some_links()
        choice = self.rng.randrange(4)
        if choice == 0:
            self.emit(Reset(links=links))
            return
        if choice == 1:
            self.emit(Bandwidth(links=links, rate_kbps=self.rng.randint(1, 64)))
        elif choice == 2:
            avg = self.rng.randint(1, 64)
            self.emit(
                Slicer(
                    links=links,
                    average_size=avg,
                    size_variation=self.rng.randrange(avg),
                    delay_us=self.rng.randint(0, 2_000),
                )
            )
        else:
            latency = self.rng.randint(1, 3 * self.tick)
            jitter = self.rng.randint(0, latency)
            self.emit(Latency(links=links, latency_ms=latency, jitter_ms=jitter))
        self.hold()
        self.emit(Heal())

    def crash(self, *, graceful: bool = False, disk: bool = False) -> None:
        kind = FaultKind.STOP if graceful else FaultKind.CRASH
        target = self.target(kind, [Sym.LEADER, Sym.FOLLOWER, Sym.RANDOM])
        self.emit(Stop(target=target) if graceful else Crash(target=target))
        if disk:
            self.t += self.ticks(1, 5)
            on: Target = target if isinstance(target, int) else Sym.LAST
            damages: list[Fault] = [
                TearLogTail(target=on, bytes=self.rng.randint(1, 64)),
                CorruptSnapshot(target=on),
                LoseUnsynced(target=on),
            ]
            self.emit(self.rng.choice(damages))
        self.hold()
        # "all" rather than "last": same effect here (only this episode's peer is
        # down), and the abstract state stays certain for later explicit targets.
        self.emit(Start(target=Sym.ALL) if graceful else Restart(target=Sym.ALL))

    def pause(self) -> None:
        self.emit(Pause(target=self.target(FaultKind.PAUSE, [Sym.LEADER, Sym.FOLLOWER])))
        self.hold()
        self.emit(Resume(target=Sym.ALL))

    def combo(self) -> None:
        """A process fault inside a partition: the cases a single fault misses
        (a leader that must step down while a follower is also gone)."""
        shapes = [Shape.HALVES, Shape.ISOLATE_LEADER, Shape.BRIDGE, Shape.MAJORITY_RING]
        self.emit(Partition(shape=self.rng.choice(shapes)))
        self.t += self.ticks(3, 10)
        symbols = [Sym.LEADER, Sym.FOLLOWER, Sym.RANDOM]
        paused = self.rng.random() < 0.5
        if paused:
            self.emit(Pause(target=self.target(FaultKind.PAUSE, symbols)))
        else:
            self.emit(Crash(target=self.target(FaultKind.CRASH, symbols)))
        self.hold()
        self.emit(Heal())
        self.emit(Resume(target=Sym.ALL) if paused else Restart(target=Sym.ALL))

    def workload_off(self) -> None:
        self.emit(Workload(on=False))
        self.hold()
        self.emit(Workload(on=True))

    # Episodes aimed at known bug classes (SPEC section 6): each sets up the state a
    # bug needs (an uncommitted tail, peers with stale epochs, a fresh sync) by
    # sequencing faults a single random fault rarely lines up.

    def leader_tail(self) -> None:
        """The leader takes writes it cannot commit (it is cut off, or slowed by
        latency and then crashed, both under load), the others elect a new leader,
        mostly with the workload stopped so the new epoch has no txns of its own, then
        the old leader rejoins holding a tail nobody else has: TRUNC (ZOOKEEPER-1156),
        and an election where logged and committed zxids differ."""
        slowed = self.rng.random() < 0.5
        if slowed:
            latency = self.rng.randint(1, self.tick)
            self.emit(Latency(links="all", latency_ms=latency, jitter_ms=latency))
            self.t += self.ticks(1, 3)
        crashed = self.rng.random() < 0.5
        self.emit(Crash(target=Sym.LEADER) if crashed else Partition(shape=Shape.ISOLATE_LEADER))
        # While cut off, the old leader keeps logging the writes sent to it.
        self.t += self.ticks(1, 4)
        quiet = self.rng.random() < 0.7
        if quiet:
            self.emit(Workload(on=False))
        self.hold()
        if slowed or not crashed:
            self.emit(Heal())
        if crashed:
            self.emit(Restart(target=Sym.ALL))
        if quiet:
            self.t += self.ticks(10, 20)  # it rejoins and syncs before new writes
            self.emit(Workload(on=True))

    def stale_epoch(self) -> None:
        """With no writes (equal zxids everywhere), the highest sid and then the
        leader miss an epoch change; they restart with the old epoch while the rest
        hold the new one, sometimes just as the new leader crashes too, so votes with
        equal zxids and different epochs and rounds race (ZOOKEEPER-1419, -1514)."""
        self.emit(Workload(on=False))
        self.t += self.ticks(2, 5)
        self.emit(Crash(target=self.peers[-1]))
        self.t += self.ticks(1, 5)
        self.emit(Crash(target=Sym.LEADER))
        self.hold()  # the rest elect a leader of a new epoch
        race = self.rng.random() < 0.5
        if race:
            self.emit(Crash(target=Sym.LEADER))
            self.t += self.ticks(0, 2)
        self.emit(Restart(target=Sym.ALL))
        self.hold()
        self.emit(Workload(on=True))

    def resync_crash(self) -> None:
        """A follower lags (paused under load), the leader crashes, and right after
        the next election synced it, the follower or everyone loses power: what was
        acknowledged at NEWLEADER must have been on disk (ZOOKEEPER-3911/4646), and
        acceptedEpoch must have been persisted before ACKEPOCH."""
        self.emit(Pause(target=Sym.FOLLOWER))
        self.hold()
        self.emit(Crash(target=Sym.LEADER))
        self.emit(Resume(target=Sym.ALL))
        # The election and sync take a few ticks: hit inside or just after them.
        self.t += self.ticks(2, 10)
        # (symbolic targets only: after Crash(leader) no explicit sid is certain to run)
        self.emit(Crash(target=self.rng.choice([Sym.ALL, Sym.FOLLOWER])))
        self.t += self.ticks(1, 5)
        self.emit(Restart(target=Sym.ALL))

    def rejoin_crash(self) -> None:
        """A follower is down for a few ticks under load (so it comes back a few txns
        behind and gets a DIFF, not a SNAP), is restarted, and is killed again a few
        milliseconds later: after it acknowledged NEWLEADER and delivered the synced
        txns, but before the next half-tick, when a peer that fsyncs late would
        (ZOOKEEPER-3911/4646). Then it restarts for good."""
        # an explicit sid: the second crash must hit the same peer, and `last` is no
        # crash target. Not the highest sid, the leader after a clean start.
        sid = self.rng.choice(self.peers[:-1]) if len(self.peers) > 1 else self.peers[0]
        if sid not in self.state.certain(FaultKind.CRASH):
            return
        self.emit(Crash(target=sid))
        self.t += self.ticks(2, 5)
        self.emit(Restart(target=sid))
        # Rejoining takes a few hops; the planted late fsync comes one tick/2 later.
        self.t += self.rng.randint(2, max(2, self.tick * 2 // 5))
        self.emit(Crash(target=sid))
        self.t += self.ticks(1, 5)
        self.emit(Restart(target=Sym.ALL))

    def leader_outage(self) -> None:
        """Every link a little slow and one follower's links slower, so the followers
        stand at different points of the leader's stream (one has logged a proposal
        another has not, each has seen a different last COMMIT); then the leader
        crashes or is cut off under load and stays away for 100-150 ticks, longer than
        majority survival allows an election to take (about 80 ticks with the fast
        timing). The rest must elect and serve without it, choosing by last logged
        zxid, and it rejoins far behind."""
        # One of the two highest sids: the one a tie on zxids elects, and the first
        # leader; explicit because latency toxics take explicit links.
        lagging = self.rng.choice(self.peers[-2:])
        base = self.rng.randint(1, max(1, self.tick // 30))
        self.emit(Latency(links="all", latency_ms=base, jitter_ms=0))
        around = sorted(link for link in all_links(self.peers) if lagging in link)
        slow = self.rng.randint(base + 2, max(base + 2, self.tick // 6))
        self.emit(Latency(links=tuple(around), latency_ms=slow, jitter_ms=0))
        self.t += self.ticks(1, 3)
        crashed = self.rng.random() < 0.5
        self.emit(Crash(target=Sym.LEADER) if crashed else Partition(shape=Shape.ISOLATE_LEADER))
        self.t += self.ticks(100, 150)
        self.emit(Heal())
        if crashed:
            self.emit(Restart(target=Sym.ALL))


def _episodes(profile: str, g: _Gen) -> list[Callable[[], None]]:
    match profile:
        case "partitions":
            return [g.partition, g.partition, g.partition, g.one_way]
        case "latency":
            return [g.slow]
        case "crash-restart":
            return [
                g.crash,
                g.crash,
                lambda: g.crash(graceful=True),
                g.leader_tail,
                g.stale_epoch,
                g.resync_crash,
                g.rejoin_crash,
                g.leader_outage,
            ]
        case "pause":
            return [g.pause]
        case "disk":
            return [lambda: g.crash(disk=True), lambda: g.crash(graceful=True, disk=True)]
        case _:  # mixed
            return [
                g.partition,
                g.partition,
                g.one_way,
                g.slow,
                g.crash,
                lambda: g.crash(graceful=True),
                lambda: g.crash(disk=True),
                g.pause,
                g.combo,
                g.combo,
                g.workload_off,
                g.leader_tail,
                g.leader_tail,
                g.stale_epoch,
                g.resync_crash,
                g.rejoin_crash,
                g.leader_outage,
            ]


def _sequential(g: _Gen, last_fault_ms: int) -> tuple[int, ...]:
    """SPEC section 0: start peers one by one; the first majority-1 stay LOOKING, the
    next makes a majority and leads; the rest start after it has settled and follow."""
    majority = len(g.peers) // 2 + 1
    gap = max(1_000, 10 * g.tick)
    settle = max(3_000, 30 * g.tick)
    g.state = PlanState.initial(g.peers, ())
    g.emit(Workload(on=False))
    for index, sid in enumerate(g.peers):
        if index > 0:
            g.t += settle if index == majority else gap
        g.emit(FirstStart(target=sid))
    g.t += gap
    g.emit(Workload(on=True))
    if g.t > last_fault_ms:
        need = g.t / 1000
        raise PlanError(
            f"too short: starting {len(g.peers)} peers one by one takes {need:.1f} s "
            "before the quiet period",
            field="duration_s",
        )
    return ()


def generate(
    profile: str, *, seed: int, peers: int, duration_s: float, timing_tick_ms: int = 100
) -> Plan:
    """Generate a valid plan from (profile, seed, peers, duration): the same inputs
    and GENERATOR_VERSION give the same plan, byte for byte. Every plan ends healed,
    with every peer running and the workload on, then a quiet period."""
    if profile not in PROFILES:
        raise PlanError(
            f"unknown profile {profile!r} (known: {', '.join(PROFILES)})", field="profile"
        )
    if isinstance(peers, bool) or not isinstance(peers, int) or not 1 <= peers <= MAX_PEERS:
        raise PlanError(f"expected 1..{MAX_PEERS} peers, got {peers!r}", field="peers")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PlanError(f"expected an integer, got {seed!r}", field="seed")
    if not isinstance(timing_tick_ms, int) or timing_tick_ms <= 0:
        raise PlanError(
            f"expected a positive integer, got {timing_tick_ms!r}", field="timing_tick_ms"
        )
    if not isinstance(duration_s, int | float) or not duration_s > 0:
        raise PlanError(
            f"expected a positive number of seconds, got {duration_s!r}", field="duration_s"
        )
    duration_ms = round(duration_s * 1000)
    quiet_ms = quiet_period_ms(timing_tick_ms)
    warmup_ms = max(2_000, 20 * timing_tick_ms)  # let the first election settle
    last_fault_ms = duration_ms - quiet_ms
    if last_fault_ms < warmup_ms:
        need = (warmup_ms + quiet_ms) / 1000
        raise PlanError(
            f"{duration_s} s is too short: at least {need:.1f} s (warm-up plus a "
            f"{quiet_ms / 1000:.1f} s quiet period)",
            field="duration_s",
        )
    sids = tuple(range(1, peers + 1))
    # A string seed is hashed with SHA-512 by random.seed: stable across runs and
    # processes (unlike hash()), and distinct per profile and generator version.
    g = _Gen(
        random.Random(f"quorum-chaos:{GENERATOR_VERSION}:{profile}:{seed}"), sids, timing_tick_ms
    )
    running = sids
    if profile == "sequential-start":
        running = _sequential(g, last_fault_ms)
    else:
        episodes = _episodes(profile, g)
        g.t = warmup_ms
        while True:
            saved_t, saved_state, saved_len = g.t, g.state, len(g.steps)
            g.rng.choice(episodes)()
            if g.t > last_fault_ms:  # the episode does not fit: drop it, stop here
                g.t, g.state = saved_t, saved_state
                del g.steps[saved_len:]
                break
            g.gap()
    g.t = last_fault_ms
    for step in settle_steps(g.state, last_fault_ms):
        g.emit(step.fault)
    plan = Plan(
        generator_version=GENERATOR_VERSION,
        profile=profile,
        seed=seed,
        peers=sids,
        duration_ms=duration_ms,
        quiet_ms=quiet_ms,
        initially_running=running,
        steps=tuple(g.steps),
    )
    validate_plan(plan)
    return plan
