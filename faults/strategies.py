"""Hypothesis strategies for fault plans: every plan drawn is valid and shrinks well.

This module owns `plans(...)`, used by property tests and by the simulator's
hypothesis runs. A plan is drawn as a list of small integer *intents* (a time gap, a
menu index, two choice numbers) which are then turned into valid steps by walking the
same abstract `PlanState` that validation uses: an intent that is impossible at its
point (restart when nobody is down) is dropped. Hypothesis shrinks lists toward fewer
elements and integers toward 0, and the menu is ordered simplest first, choices put
explicit sids before symbols, so a failing plan shrinks toward fewer, simpler, earlier
steps. Importing this module imports hypothesis; the rest of `faults` does not.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st

from faults.plan import (
    GENERATOR_VERSION,
    Bandwidth,
    CorruptSnapshot,
    Crash,
    Fault,
    FaultKind,
    FirstStart,
    Heal,
    Latency,
    Links,
    LoseUnsynced,
    OneWay,
    Partition,
    Pause,
    Plan,
    PlanState,
    Reset,
    Restart,
    Resume,
    Slicer,
    Start,
    Step,
    Stop,
    Sym,
    Target,
    TearLogTail,
    Workload,
    quiet_period_ms,
    settle_steps,
    symbols_for,
)
from faults.topology import Shape

__all__ = ["plans"]

Maker = Callable[[PlanState, tuple[int, ...], int, int], Fault | None]


def _target(state: PlanState, kind: FaultKind, choice: int) -> Target | None:
    # explicit sids first (they shrink to "peer 1"), then the symbols that could hit
    options: list[Target] = list(state.certain(kind))
    if state.maybe(kind):
        options += sorted(symbols_for(kind))
    return options[choice % len(options)] if options else None


def _process(build: Callable[[Target, int], Fault], kind: FaultKind) -> Maker:
    def make(state: PlanState, sids: tuple[int, ...], a: int, b: int) -> Fault | None:
        target = _target(state, kind, a)
        return None if target is None else build(target, b)

    return make


def _partition(state: PlanState, sids: tuple[int, ...], a: int, b: int) -> Fault:
    shapes = list(Shape)
    shape = shapes[a % len(shapes)]
    if shape is Shape.EXPLICIT:
        cut = b % len(sids)
        groups = tuple(g for g in (frozenset(sids[:cut]), frozenset(sids[cut:])) if g)
        return Partition(shape=shape, groups=groups)
    if shape is Shape.ISOLATE:
        targets: list[Target] = [*sids, Sym.LEADER, Sym.FOLLOWER, Sym.RANDOM]
        return Partition(shape=shape, target=targets[b % len(targets)])
    return Partition(shape=shape)


def _one_way(state: PlanState, sids: tuple[int, ...], a: int, b: int) -> Fault:
    src = sids[a % len(sids)]
    dst = sids[b % len(sids)]
    return OneWay(src=src, dst=Sym.ALL if dst == src else dst)


def _links(sids: tuple[int, ...], b: int) -> Links:
    if len(sids) < 2 or b % 2 == 0:
        return "all"
    return ((sids[0], sids[1]),)


def _latency(state: PlanState, sids: tuple[int, ...], a: int, b: int) -> Fault:
    links = _links(sids, b)
    return Latency(links=links, latency_ms=a * 10, jitter_ms=b)


def _bandwidth(state: PlanState, sids: tuple[int, ...], a: int, b: int) -> Fault:
    return Bandwidth(links=_links(sids, b), rate_kbps=a)


def _slicer(state: PlanState, sids: tuple[int, ...], a: int, b: int) -> Fault:
    return Slicer(average_size=a + 1, size_variation=b % (a + 1), delay_us=b)


def _workload(state: PlanState, sids: tuple[int, ...], a: int, b: int) -> Fault:
    return Workload(on=not state.workload_on)


# Simplest first: index 0 is what a failing plan's steps shrink toward.
_MENU: tuple[Maker, ...] = (
    lambda state, sids, a, b: Heal(),
    _process(lambda t, b: Crash(target=t), FaultKind.CRASH),
    _process(lambda t, b: Restart(target=t), FaultKind.RESTART),
    _partition,
    _process(lambda t, b: Pause(target=t), FaultKind.PAUSE),
    _process(lambda t, b: Resume(target=t), FaultKind.RESUME),
    _process(lambda t, b: Stop(target=t), FaultKind.STOP),
    _process(lambda t, b: Start(target=t), FaultKind.START),
    _process(lambda t, b: FirstStart(target=t), FaultKind.FIRST_START),
    _one_way,
    _latency,
    _bandwidth,
    _slicer,
    lambda state, sids, a, b: Reset(),
    _process(lambda t, b: TearLogTail(target=t, bytes=b + 1), FaultKind.TEAR_LOG_TAIL),
    _process(lambda t, b: CorruptSnapshot(target=t), FaultKind.CORRUPT_SNAPSHOT),
    _process(lambda t, b: LoseUnsynced(target=t), FaultKind.LOSE_UNSYNCED),
    _workload,
)

_intents = st.tuples(
    st.integers(min_value=0, max_value=3_000),  # ms since the previous step
    st.integers(min_value=0, max_value=len(_MENU) - 1),
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=0, max_value=255),
)


@st.composite
def plans(
    draw: st.DrawFn,
    peers: int = 5,
    max_steps: int = 8,
    *,
    settle: bool = True,
    tick_ms: int = 100,
    seed: int | None = None,
) -> Plan:
    """Valid plans over sids 1..peers with at most `max_steps` drawn steps (plus the
    settling steps when `settle`: heal, restart/resume/start everyone, workload on,
    so the plan ends in a state the liveness check can judge)."""
    if peers < 1:
        raise ValueError(f"plans(peers={peers}): need at least one peer")
    sids = tuple(range(1, peers + 1))
    never_started = draw(st.integers(min_value=0, max_value=peers - 1))
    running = sids[: peers - never_started]
    state = PlanState.initial(sids, running)
    steps: list[Step] = []
    t = 0
    for gap, index, a, b in draw(st.lists(_intents, max_size=max_steps)):
        fault = _MENU[index](state, sids, a, b)
        if fault is None:
            continue  # impossible here: dropped, which is also what shrinking wants
        t += gap
        state = state.after(fault)
        steps.append(Step(at_ms=t, fault=fault))
    if settle:
        steps += settle_steps(state, t)
    quiet = quiet_period_ms(tick_ms)
    return Plan(
        generator_version=GENERATOR_VERSION,
        profile="hypothesis",
        seed=seed,
        peers=sids,
        duration_ms=t + quiet,
        quiet_ms=quiet,
        initially_running=running,
        steps=tuple(steps),
    )
