"""Applying one fault step, the part that is the same for the real nemesis and the
simulator: whether its targets need the leader, the per-target bookkeeping of a
process or disk fault, and the fields of the `fault` / `fault_failed` events.

This module owns those rules so that `faults.nemesis.Nemesis` (Toxiproxy and the
launcher) and `harness.sim.world.World` (the simulated cluster) log the same events for
the same step. It is pure apart from the `hit` and `failed` callbacks the caller passes
to `hit_each_target`, which do that caller's I/O; it never reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, assert_never

from faults.plan import (
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
    Reset,
    Resolution,
    Restart,
    Resume,
    Slicer,
    Start,
    Stop,
    Sym,
    TearLogTail,
    Workload,
    advance,
    apply_to_net,
    fault_to_json,
)
from faults.topology import NetState, Shape


def needs_leader(fault: Fault) -> bool:
    """Whether resolving this fault may need the leader (it is then asked for, and
    logged with the step as `leader`). Asking costs the real nemesis a status call per
    peer, so steps that do not need it skip it and stay on time."""
    match fault:
        case Partition(shape=shape, target=target):
            return shape is Shape.ISOLATE_LEADER or target in (Sym.LEADER, Sym.FOLLOWER)
        case OneWay(src=src, dst=dst):
            return any(t in (Sym.LEADER, Sym.FOLLOWER) for t in (src, dst))
        case Crash() | Restart() | Pause() | Resume() | Stop() | Start() | FirstStart():
            return fault.target in (Sym.LEADER, Sym.FOLLOWER)
        case TearLogTail() | CorruptSnapshot() | LoseUnsynced():
            return fault.target in (Sym.LEADER, Sym.FOLLOWER)
        case Heal() | Latency() | Bandwidth() | Slicer() | Reset() | Workload():
            return False
        case _:
            assert_never(fault)


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """A process or disk fault after its targets were hit: the resolution naming only
    the targets it was applied to, the view and net state after it, and the detail
    for the `fault` event."""

    resolution: Resolution
    view: ClusterView
    net: NetState
    detail: str


def hit_each_target(
    fault: Fault,
    resolution: Resolution,
    view: ClusterView,
    net: NetState,
    *,
    hit: Callable[[int], str],
    failed: Callable[[int, Exception], None],
    errors: tuple[type[Exception], ...] = (Exception,),
) -> Applied | None:
    """Hit each target in order (`hit(sid)` returns a detail, "" for none); a target
    whose `hit` raises one of `errors` is reported through `failed` at once and left
    out. None when every target failed (only `fault_failed` events are due); otherwise
    the state to adopt and log. A step with no eligible target still logs a `fault`."""
    done: list[int] = []
    details: list[str] = []
    for sid in resolution.targets:
        try:
            detail = hit(sid)
        except errors as exc:
            failed(sid, exc)
            continue
        done.append(sid)
        if detail:
            details.append(detail)
    applied = replace(resolution, targets=tuple(done))
    if resolution.targets and not done:
        return None
    if not resolution.targets:
        details.append("no eligible peer: nothing done")
    return Applied(
        resolution=applied,
        view=advance(view, fault, applied),
        net=apply_to_net(net, fault, applied),
        detail="; ".join(details),
    )


def fault_fields(
    step: int,
    what: str,
    resolution: Resolution,
    net: NetState,
    fault: Fault | None,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """The fields of a `fault` event: the step, its targets, the fault state after it,
    the groups and links it touched, its spec, then `extra` (at_ms, late_ms, leader,
    detail)."""
    fields: dict[str, Any] = {
        "step": step,
        "what": what,
        "targets": list(resolution.targets),
        **net.to_fields(),
    }
    if resolution.groups is not None:
        fields["groups"] = [sorted(g) for g in resolution.groups]
    if resolution.links and not isinstance(fault, Partition):
        fields["links"] = [list(link) for link in sorted(resolution.links)]
    if fault is not None:
        fields["spec"] = fault_to_json(fault)
    fields.update(extra)
    return fields


def failed_fields(step: int, what: str, why: str, target: int | None = None) -> dict[str, Any]:
    """The fields of a `fault_failed` event."""
    fields: dict[str, Any] = {"step": step, "what": what, "why": why}
    if target is not None:
        fields["target"] = target
    return fields
