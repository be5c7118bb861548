"""The run report: one self-contained HTML page with a Jepsen-style timeline of a run dir.

This module owns turning a run dir (`cluster.json`, `plan.json`, `seed`, the JSONL logs
and `verdict.json`) into `report.html`. It has three layers, and only the first touches
files: `load_report_data` reads the run dir (an adapter: file I/O, nothing else);
`build_timeline` folds the parsed events into a drawing model (pure: lanes of states,
fault bands, commit ticks, client operations, violation marks); `build_html` renders
that model as HTML + inline SVG (pure). It must not depend on the checker's Python API
(it reads `verdict.json` as plain JSON and the logs through `harness.events`), must not
fetch anything over the network (the page inlines its CSS, SVG and script), and must
escape every string that came from a log, so a hostile value cannot inject markup.

Theory of operation of the timeline. Time runs left to right in seconds since the run
start (`run_start`'s t, else the earliest event). One lane per peer is coloured by what
the peer was: its last `state` event (STARTING between `boot` and the first `state`),
overridden by *paused* (from the `paused` set in the harness's `fault` events, which
carry the full state after each step) and by *down* (from `exit` until the next `spawn`
or `boot`, or while the `fault` state lists the peer as down). Faults are drawn in their
own lane as bands (a partition while the `cut` set is non-empty, labelled with its
groups when the cut is a clean partition; link degradations such as latency until the
next heal) and as labelled ticks for every step. Anything that can be numerous (commits,
client operations, state flapping) is aggregated per pixel column, so a 60 s run with
thousands of events stays a bounded page.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeGuard, assert_never

from harness.errors import HarnessError
from harness.events import HARNESS_LOG, HISTORY_LOG, Event, LogRead, iter_run_logs, read_log
from peer.domain import format_zxid

REPORT_NAME = "report.html"

# Drawing constants (pixels). The plot width is fixed so the page size is bounded
# whatever the run's length: every aggregation happens per column of this width.
PLOT_WIDTH = 1200
LEFT = 120
RIGHT = 24
LANE_HEIGHT = 24
LANE_GAP = 8
FAULT_LABEL_ROWS = 3
LEADER_ROW_HEIGHT = 16
MAX_LEADER_ROWS = 4
LABEL_ROW_HEIGHT = 13
CHAR_WIDTH = 6.2  # rough width of one 11px sans-serif character, for label packing

# Caps on what the page lists in full (the rest is counted, not dropped silently).
MAX_VIOLATION_ROWS = 200
MAX_EVIDENCE_ROWS = 25
MAX_PROBLEM_LINES = 40
MAX_SUMMARY_ROWS = 60
MAX_FAULT_TICKS = 400
MAX_EXACT_SEGMENTS = PLOT_WIDTH  # beyond this a lane is rasterised per pixel column

_NS = 1_000_000_000


class ReportError(HarnessError):
    """The report cannot be made at all (e.g. the run dir does not exist)."""


class LaneState(StrEnum):
    """What a peer lane shows at an instant."""

    STARTING = "STARTING"
    LOOKING = "LOOKING"
    FOLLOWING = "FOLLOWING"
    LEADING = "LEADING"
    OBSERVING = "OBSERVING"
    PAUSED = "paused"
    DOWN = "down"


STATE_COLOURS: dict[LaneState, str] = {
    LaneState.STARTING: "#d9d9d9",
    LaneState.LOOKING: "#f6c343",
    LaneState.FOLLOWING: "#7fb2e5",
    LaneState.LEADING: "#2e8b57",
    LaneState.OBSERVING: "#b9a7df",
    LaneState.PAUSED: "url(#paused)",
    LaneState.DOWN: "#4a4a4a",
}


class BandKind(StrEnum):
    PARTITION = "partition"
    DEGRADED = "degraded"


class MarkKind(StrEnum):
    NETWORK = "network"
    PROCESS = "process"
    DISK = "disk"
    WORKLOAD = "workload"
    FAILED = "failed"
    OTHER = "other"


MARK_COLOURS: dict[MarkKind, str] = {
    MarkKind.NETWORK: "#c0392b",
    MarkKind.PROCESS: "#6c3483",
    MarkKind.DISK: "#b9770e",
    MarkKind.WORKLOAD: "#1f618d",
    MarkKind.FAILED: "#e74c3c",
    MarkKind.OTHER: "#555555",
}

# Fault kinds (the plan's names, with both '-' and '_' spellings) by family.
_DEGRADE_WORDS = ("latency", "bandwidth", "slicer", "slow", "jitter", "limit")
_DISK_WORDS = ("tear", "torn", "corrupt", "lose", "unsynced", "disk", "snapshot")
_PROCESS_WORDS = ("crash", "kill", "restart", "pause", "resume", "stop", "start")
_NETWORK_WORDS = ("partition", "one-way", "one_way", "oneway", "heal", "reset", "isolate")


# --------------------------------------------------------------------------- data in


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportData:
    """Everything read from a run dir, parsed but not interpreted."""

    run_name: str
    peer_logs: Mapping[int, LogRead]
    harness_log: LogRead | None
    history_log: LogRead | None
    cluster: Mapping[str, Any] | None = None
    plan: Mapping[str, Any] | None = None
    seed: str | None = None
    verdict: Mapping[str, Any] | None = None
    problems: tuple[str, ...] = ()  # what the reader found missing or unreadable


def _read_json(path: Path, problems: list[str]) -> Mapping[str, Any] | None:
    if not path.exists():
        problems.append(f"{path.name} missing")
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, json.JSONDecodeError) as exc:
        problems.append(f"{path.name} unreadable: {exc}")
        return None
    if not isinstance(value, dict):
        problems.append(f"{path.name} is not a JSON object")
        return None
    return value


def load_report_data(run_dir: Path) -> ReportData:
    """Read a run dir (adapter: the only function here that does I/O)."""
    if not run_dir.is_dir():
        raise ReportError("run dir does not exist or is not a directory", run_dir=str(run_dir))
    problems: list[str] = []
    peer_logs: dict[int, LogRead] = {}
    harness_log: LogRead | None = None
    history_log: LogRead | None = None
    for path in iter_run_logs(run_dir):
        try:
            log = read_log(path)
        except OSError as exc:
            problems.append(f"{path.name} unreadable: {exc}")
            continue
        if path.name == HARNESS_LOG:
            harness_log = log
        elif path.name == HISTORY_LOG:
            history_log = log
        else:
            try:
                sid = int(path.stem.split("-", 1)[1])
            except (IndexError, ValueError):
                problems.append(f"{path.name}: not a peer-<sid>.jsonl name, ignored")
                continue
            peer_logs[sid] = log
    if harness_log is None:
        problems.append(f"{HARNESS_LOG} missing")
    if history_log is None:
        problems.append(f"{HISTORY_LOG} missing")
    cluster = _read_json(run_dir / "cluster.json", problems)
    plan = _read_json(run_dir / "plan.json", problems)
    verdict = _read_json(run_dir / "verdict.json", problems)
    seed: str | None = None
    seed_path = run_dir / "seed"
    if seed_path.exists():
        seed = seed_path.read_text(encoding="utf-8", errors="replace").strip() or None
    return ReportData(
        run_name=run_dir.name,
        peer_logs=peer_logs,
        harness_log=harness_log,
        history_log=history_log,
        cluster=cluster,
        plan=plan,
        seed=seed,
        verdict=verdict,
        problems=tuple(problems),
    )


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    start: int
    end: int
    state: LaneState
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerMark:
    """A point event on a peer lane: an exit, a boot, a disk fault, a step down."""

    t: int
    label: str
    detail: str
    kind: MarkKind


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerLane:
    sid: int
    role: str
    segments: tuple[Segment, ...]
    commits: tuple[tuple[int, int | None], ...]  # (t, zxid)
    marks: tuple[PeerMark, ...]
    groups: tuple[tuple[int, int, int], ...]  # (start, end, group index) while partitioned


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultBand:
    start: int
    end: int
    kind: BandKind
    label: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultMark:
    t: int
    kind: MarkKind
    label: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaderSpan:
    sid: int
    epoch: int | None
    start: int
    end: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OpMark:
    t: int
    outcome: str  # ok | fail | info
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ViolationMark:
    index: int  # 1-based, as in the table
    prop: str
    message: str
    points: tuple[tuple[int, int | None], ...]  # (t, sid or None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    t0: int
    t1: int
    lanes: tuple[PeerLane, ...]
    bands: tuple[FaultBand, ...]
    marks: tuple[FaultMark, ...]
    leaders: tuple[LeaderSpan, ...]
    ops: tuple[OpMark, ...]
    violations: tuple[ViolationMark, ...]
    pending_ops: int = 0


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _all_events(data: ReportData) -> list[Event]:
    events: list[Event] = []
    for log in data.peer_logs.values():
        events.extend(log.events)
    for other in (data.harness_log, data.history_log):
        if other is not None:
            events.extend(other.events)
    return events


def _harness_events(data: ReportData) -> list[Event]:
    return sorted(data.harness_log.events, key=lambda e: e.t) if data.harness_log else []


def run_bounds(data: ReportData) -> tuple[int, int]:
    """(t0, t1): run_start (or the earliest event) to run_end (or the latest event)."""
    events = _all_events(data)
    if not events:
        return 0, _NS
    harness = _harness_events(data)
    starts = [e.t for e in harness if e.kind == "run_start"]
    ends = [e.t for e in harness if e.kind == "run_end"]
    t0 = min(starts) if starts else min(e.t for e in events)
    t1 = max([*ends, *(e.t for e in events)])
    # a zero-length run still needs a drawable axis
    return t0, max(t1, t0 + _NS // 1000)


def peer_roles(data: ReportData) -> dict[int, str]:
    """sid -> role, from cluster.json, run_start's peers, boot events and log names."""
    roles: dict[int, str] = {}
    members = data.cluster.get("members") if data.cluster else None
    if isinstance(members, list):
        for member in members:
            if isinstance(member, dict) and _is_int(member.get("sid")):
                roles[member["sid"]] = str(member.get("role", "voter"))
    for event in _harness_events(data):
        if event.kind == "run_start" and isinstance(event.get("peers"), list):
            for sid in event["peers"]:
                if _is_int(sid):
                    roles.setdefault(sid, "voter")
    for sid, log in data.peer_logs.items():
        role = next((str(e.get("role")) for e in log.events if e.kind == "boot"), None)
        if role and role != "None":
            roles[sid] = role
        roles.setdefault(sid, "voter")
    return dict(sorted(roles.items()))


def _intervals(
    changes: Iterable[tuple[int, bool]], t1: int, initially: bool = False
) -> list[tuple[int, int]]:
    """Turn (t, on/off) changes (sorted by t) into [start, end) intervals where on."""
    out: list[tuple[int, int]] = []
    on_since: int | None = None
    if initially:
        on_since = -(1 << 62)
    for t, on in changes:
        if on and on_since is None:
            on_since = t
        elif not on and on_since is not None:
            out.append((on_since, t))
            on_since = None
    if on_since is not None:
        out.append((on_since, t1))
    return out


def _covering(intervals: Sequence[tuple[int, int]], t: int) -> bool:
    return any(a <= t < b for a, b in intervals)


def _partition_groups(peers: Sequence[int], cut: frozenset[tuple[int, int]]) -> list[list[int]]:
    """Groups of a clean partition (every cross-group link cut both ways, none inside a
    group), or [] when the cut set is not such a partition (one-way cuts, bridges)."""
    remaining = list(peers)
    groups: list[list[int]] = []
    while remaining:
        seed = remaining.pop(0)
        group = [seed]
        for other in list(remaining):
            if (seed, other) not in cut and (other, seed) not in cut:
                group.append(other)
                remaining.remove(other)
        groups.append(group)
    everyone = set(peers)
    expected = {
        (i, j) for g in groups for i in g for j in everyone - set(g)
    }  # a clean partition cuts exactly the cross-group pairs
    involved = {p for link in cut for p in link}
    if len(groups) < 2 or expected != set(cut) or not involved <= everyone:
        return []
    return groups


def _describe_cut(cut: frozenset[tuple[int, int]], limit: int = 6) -> str:
    parts: list[str] = []
    done: set[tuple[int, int]] = set()
    for i, j in sorted(cut):
        if (i, j) in done:
            continue
        if (j, i) in cut:
            parts.append(f"{i}\u2194{j}")  # both ways
            done.add((j, i))
        else:
            parts.append(f"{i}\u2192{j}")
        done.add((i, j))
    shown = ", ".join(parts[:limit])
    if len(parts) > limit:
        shown += f", +{len(parts) - limit} more"
    return f"cut {shown}"


def _fault_family(what: str) -> MarkKind:
    name = what.lower()
    if any(w in name for w in _DISK_WORDS):
        return MarkKind.DISK
    if any(w in name for w in _DEGRADE_WORDS) or any(w in name for w in _NETWORK_WORDS):
        return MarkKind.NETWORK
    if name.startswith("workload") or name in ("client", "clients"):
        return MarkKind.WORKLOAD
    if any(w in name for w in _PROCESS_WORDS):
        return MarkKind.PROCESS
    return MarkKind.OTHER


def _fault_extra(event: Event) -> str:
    """The fault's own parameters (latency_ms, jitter, links...) as `k=v` for titles."""
    skip = {"step", "what", "targets", "cut", "down", "paused"}
    return ", ".join(f"{k}={v}" for k, v in event.fields.items() if k not in skip)


def _targets_text(event: Event) -> str:
    targets = event.get("targets")
    if isinstance(targets, list):
        return ",".join(str(t) for t in targets)
    return "" if targets is None else str(targets)


def _sid_set(value: object) -> frozenset[int]:
    if isinstance(value, list):
        return frozenset(v for v in value if _is_int(v))
    return frozenset()


def _cut_set(value: object) -> frozenset[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    if isinstance(value, list):
        for pair in value:
            if isinstance(pair, list | tuple) and len(pair) == 2 and all(map(_is_int, pair)):
                out.add((pair[0], pair[1]))
    return frozenset(out)


def _build_faults(
    data: ReportData, peers: Sequence[int], t1: int
) -> tuple[
    list[FaultBand],
    list[FaultMark],
    dict[int, list[tuple[int, int]]],
    dict[int, list[tuple[int, int]]],
    dict[int, list[tuple[int, int, int]]],
    dict[int, list[PeerMark]],
]:
    """Fault bands and ticks, plus per peer: down and paused intervals (from the fault
    state), partition group strips, and disk-fault marks."""
    bands: list[FaultBand] = []
    marks: list[FaultMark] = []
    down_changes: dict[int, list[tuple[int, bool]]] = defaultdict(list)
    pause_changes: dict[int, list[tuple[int, bool]]] = defaultdict(list)
    group_strips: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    peer_marks: dict[int, list[PeerMark]] = defaultdict(list)
    cut: frozenset[tuple[int, int]] = frozenset()
    cut_since = 0
    degraded: tuple[int, str, str] | None = None  # (since, label, detail)

    def close_partition(t: int) -> None:
        if not cut:
            return
        groups = _partition_groups(peers, cut)
        if groups:
            label = " | ".join("{" + ",".join(map(str, g)) + "}" for g in groups)
            for index, group in enumerate(groups):
                for sid in group:
                    group_strips[sid].append((cut_since, t, index))
        else:
            label = _describe_cut(cut)
        detail = f"partition: {label}; directed links cut: " + ", ".join(
            f"{i}\u2192{j}" for i, j in sorted(cut)
        )
        bands.append(
            FaultBand(start=cut_since, end=t, kind=BandKind.PARTITION, label=label, detail=detail)
        )

    for event in _harness_events(data):
        if event.kind == "fault_failed":
            what = str(event.get("what"))
            marks.append(
                FaultMark(
                    t=event.t,
                    kind=MarkKind.FAILED,
                    label=f"\u2717 {what}",
                    detail=f"step {event.get('step')} {what} FAILED: {event.get('why')}",
                )
            )
            continue
        if event.kind != "fault":
            continue
        what = str(event.get("what"))
        family = _fault_family(what)
        targets = _targets_text(event)
        extra = _fault_extra(event)
        detail = f"step {event.get('step')}: {what}" + (f" on {targets}" if targets else "")
        if extra:
            detail += f" ({extra})"
        marks.append(
            FaultMark(
                t=event.t,
                kind=family,
                label=f"{what} {targets}".strip(),
                detail=detail,
            )
        )
        if family is MarkKind.DISK:
            for sid in _sid_set(event.get("targets")):
                peer_marks[sid].append(
                    PeerMark(t=event.t, label="\u26a0", detail=detail, kind=MarkKind.DISK)
                )
        # The fault event carries the full state after the step: diff it.
        if "cut" in event.fields:
            new_cut = _cut_set(event.get("cut"))
            if new_cut != cut:
                close_partition(event.t)
                cut, cut_since = new_cut, event.t
        if "down" in event.fields:
            now_down = _sid_set(event.get("down"))
            for sid in peers:
                down_changes[sid].append((event.t, sid in now_down))
        if "paused" in event.fields:
            now_paused = _sid_set(event.get("paused"))
            for sid in peers:
                pause_changes[sid].append((event.t, sid in now_paused))
        name = what.lower()
        if any(w in name for w in _DEGRADE_WORDS):
            if degraded is not None:
                bands.append(
                    FaultBand(
                        start=degraded[0],
                        end=event.t,
                        kind=BandKind.DEGRADED,
                        label=degraded[1],
                        detail=degraded[2],
                    )
                )
            degraded = (event.t, f"{what} {targets}".strip(), detail)
        elif ("heal" in name or "clear" in name) and degraded is not None:
            bands.append(
                FaultBand(
                    start=degraded[0],
                    end=event.t,
                    kind=BandKind.DEGRADED,
                    label=degraded[1],
                    detail=degraded[2],
                )
            )
            degraded = None
    close_partition(t1)
    if degraded is not None:
        bands.append(
            FaultBand(
                start=degraded[0],
                end=t1,
                kind=BandKind.DEGRADED,
                label=degraded[1],
                detail=degraded[2],
            )
        )
    down = {sid: _intervals(ch, t1) for sid, ch in down_changes.items()}
    paused = {sid: _intervals(ch, t1) for sid, ch in pause_changes.items()}
    return bands, marks, down, paused, dict(group_strips), dict(peer_marks)


def _peer_lane(
    sid: int,
    role: str,
    log: LogRead | None,
    harness: Sequence[Event],
    fault_down: Sequence[tuple[int, int]],
    fault_paused: Sequence[tuple[int, int]],
    groups: Sequence[tuple[int, int, int]],
    extra_marks: Sequence[PeerMark],
    t1: int,
) -> tuple[PeerLane, list[LeaderSpan]]:
    events = sorted(log.events, key=lambda e: e.t) if log else []
    # Base state from the peer's own log: (t, state or None, detail).
    base: list[tuple[int, LaneState | None, str]] = []
    marks: list[PeerMark] = list(extra_marks)
    commits: list[tuple[int, int | None]] = []
    leaders: list[LeaderSpan] = []
    leading: tuple[int, int | None] | None = None  # (since, epoch) once established

    def end_leading(t: int) -> None:
        nonlocal leading
        if leading is not None:
            leaders.append(LeaderSpan(sid=sid, epoch=leading[1], start=leading[0], end=t))
            leading = None

    for event in events:
        match event.kind:
            case "boot":
                end_leading(event.t)
                base.append((event.t, LaneState.STARTING, f"boot {event.boot}"))
                marks.append(
                    PeerMark(
                        t=event.t,
                        label="\u25b2",
                        detail=(
                            f"peer {sid} boot {event.boot}: last_zxid "
                            f"{_zxid_text(event.get('last_zxid'))}, current_epoch "
                            f"{event.get('current_epoch')}, accepted_epoch "
                            f"{event.get('accepted_epoch')}"
                        ),
                        kind=MarkKind.PROCESS,
                    )
                )
            case "state":
                raw = str(event.get("state"))
                try:
                    shown = LaneState(raw)
                except ValueError:
                    shown = LaneState.STARTING
                if shown is not LaneState.LEADING:
                    end_leading(event.t)
                leader = event.get("leader")
                detail = f"{raw} round {event.get('round')}" + (
                    f", leader {leader}" if leader is not None else ""
                )
                base.append((event.t, shown, detail))
            case "established":
                epoch = event.get("epoch")
                end_leading(event.t)
                leading = (event.t, epoch if _is_int(epoch) else None)
            case "step_down":
                end_leading(event.t)
                marks.append(
                    PeerMark(
                        t=event.t,
                        label="\u25bc",
                        detail=f"peer {sid} stepped down: {event.get('reason')}",
                        kind=MarkKind.NETWORK,
                    )
                )
            case "shutdown":
                end_leading(event.t)
            case "commit":
                zxid = event.get("zxid")
                commits.append((event.t, zxid if _is_int(zxid) else None))
            case _:
                pass
    # Down: from a harness exit of this sid to its next spawn (or the peer's next boot).
    changes: list[tuple[int, bool]] = []
    for event in harness:
        if event.sid != sid:
            continue
        if event.kind == "exit":
            changes.append((event.t, True))
            marks.append(
                PeerMark(
                    t=event.t,
                    label="\u2715",
                    detail=f"peer {sid} exited, code {event.get('code')} (pid {event.get('pid')})",
                    kind=MarkKind.PROCESS,
                )
            )
        elif event.kind == "spawn":
            changes.append((event.t, False))
            # a fresh process knows nothing yet, whatever its previous boot was
            base.append((event.t, LaneState.STARTING, f"spawned, pid {event.get('pid')}"))
    base.sort(key=lambda b: b[0])
    changes.extend((e.t, False) for e in events if e.kind == "boot")
    changes.sort(key=lambda c: c[0])
    exit_down = _intervals(changes, t1)
    spawned = [e.t for e in harness if e.kind == "spawn" and e.sid == sid]
    booted = [e.t for e in events if e.kind == "boot"]
    first_up = min([*spawned, *booted], default=None)
    # The leader span ends where the peer went down, if it did while leading.
    if leading is not None:
        since = leading[0]
        ends = [a for a, _ in [*exit_down, *fault_down] if a >= since]
        end_leading(min(ends, default=t1))

    cuts = sorted(
        {t for t, _, _ in base}
        | {p for iv in (*exit_down, *fault_down, *fault_paused) for p in iv}
        | ({first_up} if first_up is not None else set())
    )
    cuts = [c for c in cuts if c < t1]
    segments: list[Segment] = []
    base_index = -1
    for index, start in enumerate(cuts):
        end = cuts[index + 1] if index + 1 < len(cuts) else t1
        while base_index + 1 < len(base) and base[base_index + 1][0] <= start:
            base_index += 1
        if _covering(exit_down, start) or _covering(fault_down, start):
            state: LaneState | None = LaneState.DOWN
            detail = "down"
        elif _covering(fault_paused, start):
            state, detail = LaneState.PAUSED, "paused (SIGSTOP)"
        elif base_index >= 0:
            state, detail = base[base_index][1], base[base_index][2]
        elif first_up is not None and start >= first_up:
            state, detail = LaneState.STARTING, "started, no state yet"
        else:
            state, detail = None, ""  # not started yet: nothing drawn
        if state is None or end <= start:
            continue
        last = segments[-1] if segments else None
        if last is not None and last.end == start and last.state is state:
            segments[-1] = Segment(start=last.start, end=end, state=state, detail=last.detail)
        else:
            segments.append(Segment(start=start, end=end, state=state, detail=detail))
    lane = PeerLane(
        sid=sid,
        role=role,
        segments=tuple(segments),
        commits=tuple(commits),
        marks=tuple(sorted(marks, key=lambda m: m.t)),
        groups=tuple(groups),
    )
    return lane, leaders


def _zxid_text(value: object) -> str:
    if _is_int(value) and value >= 0:
        return f"{format_zxid(value)} ({value})"
    return "-" if value is None else str(value)


def _violation_marks(verdict: Mapping[str, Any] | None) -> list[ViolationMark]:
    if not verdict or not isinstance(verdict.get("violations"), list):
        return []
    out: list[ViolationMark] = []
    for index, violation in enumerate(verdict["violations"], start=1):
        if not isinstance(violation, dict):
            continue
        points: list[tuple[int, int | None]] = []
        evidence = violation.get("evidence")
        if isinstance(evidence, list):
            for item in evidence:
                if isinstance(item, dict) and _is_int(item.get("t")):
                    sid = item.get("sid")
                    points.append((item["t"], sid if _is_int(sid) else None))
        out.append(
            ViolationMark(
                index=index,
                prop=str(violation.get("property", "?")),
                message=str(violation.get("message", "")),
                points=tuple(points),
            )
        )
    return out


def build_timeline(data: ReportData) -> Timeline:
    """Fold the run's events into the drawing model (pure)."""
    t0, t1 = run_bounds(data)
    roles = peer_roles(data)
    peers = list(roles)
    harness = _harness_events(data)
    bands, marks, down, paused, groups, disk_marks = _build_faults(data, peers, t1)
    lanes: list[PeerLane] = []
    leaders: list[LeaderSpan] = []
    for sid, role in roles.items():
        lane, spans = _peer_lane(
            sid,
            role,
            data.peer_logs.get(sid),
            harness,
            down.get(sid, []),
            paused.get(sid, []),
            groups.get(sid, []),
            disk_marks.get(sid, []),
            t1,
        )
        lanes.append(lane)
        leaders.extend(spans)
    ops: list[OpMark] = []
    pending: set[tuple[str, str]] = set()
    if data.history_log is not None:
        for event in sorted(data.history_log.events, key=lambda e: e.t):
            key = (str(event.get("process")), str(event.get("id")))
            if event.kind == "invoke":
                pending.add(key)
                continue
            pending.discard(key)
            detail = (
                f"{event.kind}: process {event.get('process')} {event.get('op')} "
                f"{event.get('key', '')}={event.get('value', '')}"
            )
            if event.get("zxid") is not None:
                detail += f" zxid {_zxid_text(event.get('zxid'))}"
            if event.get("error") is not None:
                detail += f" error {event.get('error')}"
            ops.append(OpMark(t=event.t, outcome=event.kind, detail=detail))
    return Timeline(
        t0=t0,
        t1=t1,
        lanes=tuple(lanes),
        bands=tuple(sorted(bands, key=lambda b: b.start)),
        marks=tuple(marks),
        leaders=tuple(sorted(leaders, key=lambda s: s.start)),
        ops=tuple(ops),
        violations=tuple(_violation_marks(data.verdict)),
        pending_ops=len(pending),
    )


# --------------------------------------------------------------------------- rendering


def _e(value: object) -> str:
    """Escape anything for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def _secs(t: int, t0: int) -> str:
    return f"{(t - t0) / _NS:.3f}s"


@dataclass(slots=True)
class _Svg:
    """Accumulates SVG elements with the time -> x mapping of the plot."""

    t0: int
    t1: int
    parts: list[str] = field(default_factory=list)

    def x(self, t: int) -> float:
        span = self.t1 - self.t0
        return LEFT + PLOT_WIDTH * min(max((t - self.t0) / span, 0.0), 1.0)

    def column(self, t: int) -> int:
        return min(int(self.x(t) - LEFT), PLOT_WIDTH - 1)

    def add(self, text: str) -> None:
        self.parts.append(text)

    def rect(
        self, x: float, y: float, w: float, h: float, fill: str, title: str, extra: str = ""
    ) -> None:
        self.add(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.8):.1f}" height="{h:.1f}" '
            f'fill="{fill}"{extra}><title>{_e(title)}</title></rect>'
        )

    def text(self, x: float, y: float, body: str, cls: str = "", anchor: str = "start") -> None:
        klass = f' class="{cls}"' if cls else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{klass}>{_e(body)}</text>')


def _nice_step(span_s: float) -> float:
    raw = span_s / 12
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for mult in (1, 2, 5, 10):
        if raw <= mult * power:
            return float(mult * power)
    return float(10 * power)


def _pack_labels(items: Sequence[tuple[float, str]], rows: int) -> list[int | None]:
    """Greedy row assignment for labels at x so they do not overlap; None = no room."""
    ends = [-1e9] * rows
    out: list[int | None] = []
    for x, label in items:
        width = len(label) * CHAR_WIDTH + 6
        for row in range(rows):
            if ends[row] <= x:
                ends[row] = x + width
                out.append(row)
                break
        else:
            out.append(None)
    return out


def _stack_spans(spans: Sequence[tuple[int, int]], max_rows: int) -> list[int]:
    """Row for each span (sorted by start) so overlapping spans do not share a row;
    past max_rows, the last row is shared."""
    ends: list[int] = []
    out: list[int] = []
    for start, end in spans:
        for row, row_end in enumerate(ends):
            if row_end <= start:
                ends[row] = end
                out.append(row)
                break
        else:
            if len(ends) < max_rows:
                ends.append(end)
                out.append(len(ends) - 1)
            else:
                ends[-1] = max(ends[-1], end)
                out.append(max_rows - 1)
    return out


def _rasterise(segments: Sequence[Segment], svg: _Svg) -> list[Segment]:
    """Too many segments for one lane: keep, per pixel column, the state that covers
    most of it, then merge equal neighbours (a bounded number of rectangles)."""
    span = svg.t1 - svg.t0
    cover: list[dict[LaneState, float]] = [defaultdict(float) for _ in range(PLOT_WIDTH)]
    for seg in segments:
        a, b = svg.x(seg.start) - LEFT, svg.x(seg.end) - LEFT
        col = int(a)
        while col < PLOT_WIDTH and col < b:
            cover[col][seg.state] += min(b, col + 1) - max(a, col)
            col += 1
    out: list[Segment] = []
    for col, counter in enumerate(cover):
        if not counter:
            continue
        state = max(counter, key=lambda s: counter[s])
        start = svg.t0 + span * col // PLOT_WIDTH
        end = svg.t0 + span * (col + 1) // PLOT_WIDTH
        changes = len(counter)
        if out and out[-1].state is state and out[-1].end == start:
            out[-1] = Segment(start=out[-1].start, end=end, state=state, detail=out[-1].detail)
        else:
            detail = f"{state} (mostly; {changes} states in this pixel)" if changes > 1 else ""
            out.append(Segment(start=start, end=end, state=state, detail=detail or str(state)))
    return out


def _render_lane(svg: _Svg, lane: PeerLane, y: float) -> None:
    t0 = svg.t0
    segments = list(lane.segments)
    if len(segments) > MAX_EXACT_SEGMENTS:
        segments = _rasterise(segments, svg)
    for seg in segments:
        x0, x1 = svg.x(seg.start), svg.x(seg.end)
        title = (
            f"peer {lane.sid}: {seg.detail or seg.state} "
            f"from {_secs(seg.start, t0)} to {_secs(seg.end, t0)}"
        )
        svg.rect(x0, y, x1 - x0, LANE_HEIGHT, STATE_COLOURS[seg.state], title)
    # Partition groups: a thin strip on top of the lane, one colour per group.
    for start, end, group in lane.groups:
        x0, x1 = svg.x(start), svg.x(end)
        colour = GROUP_COLOURS[group % len(GROUP_COLOURS)]
        svg.rect(
            x0,
            y - 3,
            x1 - x0,
            3,
            colour,
            f"peer {lane.sid} in partition group {chr(65 + group % 26)} "
            f"{_secs(start, t0)}..{_secs(end, t0)}",
        )
    # Commits, aggregated per pixel column: a tick whose height grows with the count.
    per_col: dict[int, list[tuple[int, int | None]]] = defaultdict(list)
    for t, zxid in lane.commits:
        per_col[svg.column(t)].append((t, zxid))
    densest = max((len(items) for items in per_col.values()), default=1)
    for col, items in sorted(per_col.items()):
        # Short ticks whose darkness grows with the count, so a busy run shows a
        # density strip without hiding the lane's state colour.
        height = 5 if len(items) == 1 else 8
        opacity = 0.45 + 0.5 * math.log1p(len(items)) / math.log1p(densest)
        zxids = [z for _, z in items if z is not None]
        zrange = f", zxid {_zxid_text(min(zxids))} .. {_zxid_text(max(zxids))}" if zxids else ""
        svg.rect(
            LEFT + col,
            y + LANE_HEIGHT - height,
            1,
            height,
            "#111",
            f"peer {lane.sid}: {len(items)} commit(s) at ~{_secs(items[0][0], t0)}{zrange}",
            f' class="commit" opacity="{min(opacity, 1.0):.2f}"',
        )
    for mark in lane.marks:
        x = svg.x(mark.t)
        svg.add(
            f'<text x="{x:.1f}" y="{y + LANE_HEIGHT / 2 + 4:.1f}" text-anchor="middle" '
            f'class="pmark" fill="{MARK_COLOURS[mark.kind]}">{_e(mark.label)}'
            f"<title>{_e(mark.detail)} at {_secs(mark.t, t0)}</title></text>"
        )


GROUP_COLOURS = ("#e67e22", "#16a085", "#8e44ad", "#c0392b", "#2c3e50")


def _band_class(kind: BandKind) -> str:
    match kind:
        case BandKind.PARTITION:
            return "band-part"
        case BandKind.DEGRADED:
            return "band-degr"
        case _:
            assert_never(kind)


def render_svg(tl: Timeline) -> str:
    """The timeline as an inline SVG element (pure)."""
    svg = _Svg(t0=tl.t0, t1=tl.t1)
    t0 = tl.t0
    y = 28.0
    axis_top = y
    # Fault lane: bands on a strip, tick labels packed in rows above it.
    fault_y = y + FAULT_LABEL_ROWS * LABEL_ROW_HEIGHT + 4
    rows_of_lanes: list[tuple[str, float, str]] = [("faults", fault_y, "fault bands and steps")]
    leader_y = fault_y + LANE_HEIGHT + LANE_GAP
    rows_of_lanes.append(("leader", leader_y, "established leader per epoch"))
    # Overlapping leader spans (two leaders at once is what a report must show) go
    # to separate rows of the leader lane.
    leader_rows = _stack_spans([(s.start, s.end) for s in tl.leaders], MAX_LEADER_ROWS)
    leader_h = LEADER_ROW_HEIGHT * (max(leader_rows, default=0) + 1)
    badge_y = leader_y + leader_h + 3  # a row for violation badges
    peer_y0 = badge_y + 14 + LANE_GAP
    lane_ys = [peer_y0 + i * (LANE_HEIGHT + LANE_GAP) for i in range(len(tl.lanes))]
    client_y = peer_y0 + len(tl.lanes) * (LANE_HEIGHT + LANE_GAP)
    bottom = client_y + 3 * 9 + 10
    height = bottom + 24

    # Grid and axis.
    span_s = (tl.t1 - tl.t0) / _NS
    step = _nice_step(span_s)
    k = 0
    while k * step <= span_s + 1e-9:
        x = LEFT + PLOT_WIDTH * (k * step / span_s)
        svg.add(
            f'<line x1="{x:.1f}" y1="{axis_top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" class="grid"/>'
        )
        label = f"{k * step:g}s"
        svg.text(x, axis_top - 6, label, "axis", "middle")
        svg.text(x, bottom + 14, label, "axis", "middle")
        k += 1

    # Fault bands, also shaded faintly across all lanes below.
    for band in tl.bands:
        x0, x1 = svg.x(band.start), svg.x(band.end)
        cls = _band_class(band.kind)
        title = f"{band.detail} from {_secs(band.start, t0)} to {_secs(band.end, t0)}"
        svg.add(
            f'<rect x="{x0:.1f}" y="{fault_y:.1f}" width="{max(x1 - x0, 1):.1f}" '
            f'height="{LANE_HEIGHT:.1f}" class="{cls}"><title>{_e(title)}</title></rect>'
        )
        svg.add(
            f'<rect x="{x0:.1f}" y="{fault_y + LANE_HEIGHT:.1f}" width="{max(x1 - x0, 1):.1f}" '
            f'height="{bottom - fault_y - LANE_HEIGHT:.1f}" class="{cls}-shade"/>'
        )
        if x1 - x0 > len(band.label) * CHAR_WIDTH + 4:
            yy = fault_y + (9 if band.kind is BandKind.PARTITION else 20)
            svg.text(x0 + 3, yy, band.label, "bandlabel")
    marks = sorted(tl.marks, key=lambda m: m.t)
    shown_marks = marks[:MAX_FAULT_TICKS]
    rows = _pack_labels([(svg.x(m.t), m.label) for m in shown_marks], FAULT_LABEL_ROWS)
    for mark, row in zip(shown_marks, rows, strict=True):
        x = svg.x(mark.t)
        colour = MARK_COLOURS[mark.kind]
        title = _e(f"{mark.detail} at {_secs(mark.t, t0)}")
        svg.add(
            f'<line x1="{x:.1f}" y1="{fault_y:.1f}" x2="{x:.1f}" y2="{fault_y + LANE_HEIGHT:.1f}" '
            f'stroke="{colour}" stroke-width="2"><title>{title}</title></line>'
        )
        if row is not None:
            ly = axis_top + 10 + row * LABEL_ROW_HEIGHT
            svg.add(
                f'<text x="{x:.1f}" y="{ly:.1f}" class="flabel" fill="{colour}">'
                f"{_e(mark.label)}<title>{title}</title></text>"
            )

    # Leader lane: one box per (leader, epoch) span.
    for span, row in zip(tl.leaders, leader_rows, strict=True):
        x0, x1 = svg.x(span.start), svg.x(span.end)
        row_y = leader_y + row * LEADER_ROW_HEIGHT
        epoch = "?" if span.epoch is None else str(span.epoch)
        label = f"e{epoch}: {span.sid}"
        title = (
            f"peer {span.sid} established leader of epoch {epoch}, "
            f"{_secs(span.start, t0)} to {_secs(span.end, t0)}"
        )
        svg.rect(x0, row_y, x1 - x0, LEADER_ROW_HEIGHT - 2, "#cfe8d7", title, ' stroke="#2e8b57"')
        if x1 - x0 > len(label) * CHAR_WIDTH + 4:
            svg.text(x0 + 3, row_y + LEADER_ROW_HEIGHT - 5, label, "leaderlabel")

    for lane, ly in zip(tl.lanes, lane_ys, strict=True):
        _render_lane(svg, lane, ly)

    # Client operations: three sub-rows (ok, fail, info), aggregated per pixel column.
    per_col: dict[tuple[str, int], list[OpMark]] = defaultdict(list)
    for op in tl.ops:
        per_col[(op.outcome, svg.column(op.t))].append(op)
    op_rows = {"ok": 0, "fail": 1, "info": 2}
    op_colours = {"ok": "#27ae60", "fail": "#c0392b", "info": "#e67e22"}
    for (outcome, col), items in sorted(per_col.items()):
        row = op_rows.get(outcome, 2)
        opacity = min(1.0, 0.35 + 0.15 * len(items))
        first = items[0].detail if len(items) == 1 else f"{len(items)} {outcome}"
        svg.rect(
            LEFT + col,
            client_y + row * 9,
            1.5,
            8,
            op_colours.get(outcome, "#999"),
            f"{first} at ~{_secs(items[0].t, t0)}",
            f' opacity="{opacity:.2f}"',
        )

    # Violations: a red line across every lane at the first evidence, a dot per
    # evidence point on the lane of its peer, and a numbered badge linking to the table.
    sid_y = {lane.sid: ly for lane, ly in zip(tl.lanes, lane_ys, strict=True)}
    for v in tl.violations:
        if not v.points:
            continue
        first_t = min(t for t, _ in v.points)
        x = svg.x(first_t)
        title = _e(f"V{v.index} {v.prop}: {v.message} (at {_secs(first_t, t0)})")
        svg.add(
            f'<g class="viol" id="vmark-{v.index}" data-v="{v.index}">'
            f'<line x1="{x:.1f}" y1="{fault_y:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" '
            f'class="vline"><title>{title}</title></line>'
        )
        for t, sid in v.points:
            if sid in sid_y:
                svg.add(
                    f'<circle cx="{svg.x(t):.1f}" cy="{sid_y[sid] + LANE_HEIGHT / 2:.1f}" r="5" '
                    f'class="vdot"><title>{title}</title></circle>'
                )
        svg.add(
            f'<a href="#viol-{v.index}"><rect x="{x - 11:.1f}" y="{badge_y:.1f}" width="22" '
            f'height="12" rx="3" class="vbadge"><title>{title}</title></rect>'
            f'<text x="{x:.1f}" y="{badge_y + 9.5:.1f}" text-anchor="middle" class="vbadgetext">'
            f"V{v.index}</text></a></g>"
        )

    # Lane names on the left (drawn last so nothing covers them).
    for name, ly, title in rows_of_lanes:
        svg.add(
            f'<text x="{LEFT - 8}" y="{ly + 14:.1f}" text-anchor="end" class="lanename">'
            f"{_e(name)}<title>{_e(title)}</title></text>"
        )
    for lane, ly in zip(tl.lanes, lane_ys, strict=True):
        suffix = "" if lane.role == "voter" else f" ({lane.role})"
        svg.add(
            f'<text x="{LEFT - 8}" y="{ly + 16:.1f}" text-anchor="end" class="lanename">'
            f"peer {lane.sid}{_e(suffix)}</text>"
        )
    svg.add(
        f'<text x="{LEFT - 8}" y="{client_y + 16:.1f}" text-anchor="end" class="lanename">'
        f"clients<title>ok / fail / info completions (rows top to bottom)</title></text>"
    )
    defs = (
        '<defs><pattern id="paused" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#f4d7d7"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#a33" stroke-width="3"/></pattern></defs>'
    )
    width = LEFT + PLOT_WIDTH + RIGHT
    return (
        f'<svg class="timeline" width="{width}" height="{height:.0f}" '
        f'viewBox="0 0 {width} {height:.0f}" role="img" aria-label="run timeline">'
        + defs
        + "".join(svg.parts)
        + "</svg>"
    )


def _legend() -> str:
    items = [
        f'<span class="sw" style="background:{STATE_COLOURS[s]}"></span>{_e(s)}'
        for s in LaneState
        if s is not LaneState.PAUSED
    ]
    items.append('<span class="sw paused"></span>paused')
    items.append('<span class="sw band-part-sw"></span>partition')
    items.append('<span class="sw band-degr-sw"></span>latency / degraded links')
    items.append('<span class="sw" style="background:#111;width:3px"></span>commits')
    items.append("\u25b2 boot \u2715 exit \u25bc step down \u26a0 disk fault")
    items.append('<span class="sw" style="background:#c0392b"></span>violation')
    return '<div class="legend">' + " ".join(f"<span>{i}</span>" for i in items) + "</div>"


def _render_value(value: Any, depth: int = 0) -> str:
    """Render any JSON value as escaped HTML: dicts as key/value tables, lists of
    dicts as tables with a column per key, scalars as text (capped)."""
    if isinstance(value, dict):
        if not value:
            return "<i>none</i>"
        rows = "".join(
            f"<tr><th>{_e(k)}</th><td>{_render_value(v, depth + 1)}</td></tr>"
            for k, v in list(value.items())[:MAX_SUMMARY_ROWS]
        )
        return f'<table class="kv">{rows}</table>'
    if isinstance(value, list):
        if not value:
            return "<i>none</i>"
        more = (
            f'<div class="more">+{len(value) - MAX_SUMMARY_ROWS} more</div>'
            if len(value) > MAX_SUMMARY_ROWS
            else ""
        )
        shown = value[:MAX_SUMMARY_ROWS]
        if all(isinstance(v, dict) for v in shown) and depth < 3:
            keys: list[str] = []
            for item in shown:
                keys.extend(k for k in item if k not in keys)
            head = "".join(f"<th>{_e(k)}</th>" for k in keys)
            body = "".join(
                "<tr>"
                + "".join(f"<td>{_render_value(item.get(k, ''), depth + 1)}</td>" for k in keys)
                + "</tr>"
                for item in shown
            )
            return f'<table class="grid"><tr>{head}</tr>{body}</table>{more}'
        return _e(", ".join(json.dumps(v) if not isinstance(v, str) else v for v in shown)) + more
    text = str(value)
    if len(text) > 300:
        text = text[:300] + "\u2026"
    return _e(text)


def _evidence_rows(evidence: object, t0: int) -> str:
    if not isinstance(evidence, list) or not evidence:
        return "<i>no evidence lines</i>"
    rows: list[str] = []
    for item in evidence[:MAX_EVIDENCE_ROWS]:
        if not isinstance(item, dict):
            rows.append(f"<tr><td colspan=4>{_e(item)}</td></tr>")
            continue
        t = item.get("t")
        when = _secs(t, t0) if _is_int(t) else "-"
        fields = {k: v for k, v in item.items() if k not in ("where", "t", "kind")}
        rows.append(
            f"<tr><td><code>{_e(item.get('where', ''))}</code></td><td>{_e(when)}</td>"
            f"<td>{_e(item.get('kind', ''))}</td>"
            f"<td><code>{_e(json.dumps(fields, sort_keys=True, default=str))}</code></td></tr>"
        )
    more = ""
    if len(evidence) > MAX_EVIDENCE_ROWS:
        more = f'<div class="more">+{len(evidence) - MAX_EVIDENCE_ROWS} more evidence lines</div>'
    return f'<table class="ev">{"".join(rows)}</table>{more}'


def _violations_html(verdict: Mapping[str, Any] | None, t0: int) -> str:
    if verdict is None:
        return "<p><i>No verdict: violations unknown.</i></p>"
    violations = verdict.get("violations")
    if not isinstance(violations, list) or not violations:
        return "<p>No violations.</p>"
    rows: list[str] = []
    for index, v in enumerate(violations[:MAX_VIOLATION_ROWS], start=1):
        if not isinstance(v, dict):
            rows.append(f'<tr id="viol-{index}"><td>V{index}</td><td colspan=5>{_e(v)}</td></tr>')
            continue
        peers = v.get("peers")
        peers_text = ", ".join(map(str, peers)) if isinstance(peers, list) else str(peers or "")
        epoch = v.get("epoch")
        zxid = v.get("zxid")
        ez = []
        if epoch is not None:
            ez.append(f"epoch {epoch}")
        if zxid is not None:
            ez.append(f"zxid {_zxid_text(zxid)}")
        rows.append(
            f'<tr id="viol-{index}" class="vrow" data-v="{index}"><td>V{index}</td>'
            f"<td><b>{_e(v.get('property', '?'))}</b></td><td>{_e(peers_text)}</td>"
            f"<td>{_e('; '.join(ez) or '-')}</td><td>{_e(v.get('message', ''))}</td>"
            f"<td>{_evidence_rows(v.get('evidence'), t0)}</td></tr>"
        )
    more = ""
    if len(violations) > MAX_VIOLATION_ROWS:
        more = f'<p class="more">+{len(violations) - MAX_VIOLATION_ROWS} more violations</p>'
    head = (
        "<tr><th>#</th><th>property</th><th>peers</th><th>epoch / zxid</th>"
        "<th>message</th><th>evidence</th></tr>"
    )
    return f'<table class="violations">{head}{"".join(rows)}</table>{more}'


def report_problems(data: ReportData) -> list[str]:
    """What makes this report partial: missing files, torn tails, garbage lines."""
    out = list(data.problems)
    logs = [*data.peer_logs.values(), data.harness_log, data.history_log]
    for log in logs:
        if log is None:
            continue
        if log.torn_tail:
            out.append(f"{log.source}: last line torn (writer killed mid-write), ignored")
        for error in log.errors:
            out.append(f"{error}")
    if not data.peer_logs:
        out.append("no peer logs (peer-<sid>.jsonl) in the run dir")
    return out


def _facts(data: ReportData, tl: Timeline) -> list[tuple[str, str]]:
    """Header facts: seed, profile, peers, duration, bug(s)."""
    harness = _harness_events(data)
    seed = data.seed
    if seed is None:
        seed = next((str(e.get("seed")) for e in harness if e.kind == "run_start"), None)
    if seed is None and data.plan is not None and "seed" in data.plan:
        seed = str(data.plan["seed"])
    profile_parts: list[str] = []
    if data.plan is not None and data.plan.get("profile") is not None:
        profile_parts.append(f"plan {data.plan['profile']}")
    if data.cluster is not None:
        if data.cluster.get("profile") is not None:
            profile_parts.append(f"timing {data.cluster['profile']}")
        elif isinstance(data.cluster.get("timing"), dict):
            timing = data.cluster["timing"]
            profile_parts.append(
                "timing " + ", ".join(f"{k}={v}" for k, v in sorted(timing.items()))
            )
    bugs = sorted(
        {
            str(e.get("bug"))
            for log in data.peer_logs.values()
            for e in log.events
            if e.kind == "boot" and e.get("bug") not in (None, "", "none")
        }
    )
    roles = Counter(lane.role for lane in tl.lanes)
    peers = ", ".join(str(lane.sid) for lane in tl.lanes) or "none"
    peers += " (" + ", ".join(f"{n} {r}s" for r, n in sorted(roles.items())) + ")" if roles else ""
    end_reason = next((str(e.get("reason")) for e in harness if e.kind == "run_end"), None)
    duration = f"{(tl.t1 - tl.t0) / _NS:.2f}s"
    if end_reason:
        duration += f" (ended: {end_reason})"
    facts = [
        ("seed", seed or "unknown"),
        ("profile", "; ".join(profile_parts) or "unknown"),
        ("peers", peers),
        ("duration", duration),
        ("bug", ", ".join(bugs) if bugs else "none (peers ran without a planted bug)"),
    ]
    return facts


def _glance(data: ReportData, tl: Timeline) -> list[tuple[str, str]]:
    """Counts read straight from the logs, useful even without a verdict."""
    outcomes = Counter(op.outcome for op in tl.ops)
    epochs = sorted({s.epoch for s in tl.leaders if s.epoch is not None})
    commits = max((len(lane.commits) for lane in tl.lanes), default=0)
    events = sum(len(log.events) for log in data.peer_logs.values())
    faults = sum(1 for m in tl.marks if m.kind is not MarkKind.FAILED)
    failed = sum(1 for m in tl.marks if m.kind is MarkKind.FAILED)
    return [
        ("peer events", str(events)),
        ("leaders established", f"{len(tl.leaders)} (epochs {', '.join(map(str, epochs)) or '-'})"),
        ("commits (most by one peer)", str(commits)),
        (
            "client ops",
            f"{outcomes['ok']} ok, {outcomes['fail']} fail, {outcomes['info']} info, "
            f"{tl.pending_ops} never completed",
        ),
        ("fault steps", f"{faults} applied, {failed} failed"),
    ]


_CSS = """
body{font:13px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px;color:#222;
background:#fff}
h1{font-size:18px;margin:0 0 8px}h2{font-size:15px;margin:18px 0 6px}
.badge{display:inline-block;padding:3px 10px;border-radius:4px;color:#fff;font-weight:700;
letter-spacing:.05em;margin-right:8px}
.valid{background:#2e8b57}.invalid{background:#c0392b}.unknown{background:#d68910}
.unchecked{background:#7f8c8d}
.why{color:#444}
table{border-collapse:collapse}
table.facts td,table.facts th,table.kv td,table.kv th,table.grid td,table.grid th{
border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
table.facts th,table.kv th{background:#f5f5f5;font-weight:600}
table.violations{width:100%}
table.violations td,table.violations th{border:1px solid #ccc;padding:4px 6px;
vertical-align:top;text-align:left}
table.violations th{background:#fbeaea}
table.ev td{border:none;border-bottom:1px solid #eee;padding:1px 4px;font-size:12px}
tr.vrow.hl{background:#fff3c4}
code{font-size:12px;word-break:break-all}
.problems{background:#fff8e1;border:1px solid #f0c36d;padding:6px 10px;margin:8px 0}
.problems li{font-family:monospace;font-size:12px}
.more{color:#777;font-style:italic}
.cols{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
.legend{margin:6px 0;font-size:12px}.legend>span{margin-right:12px;white-space:nowrap}
.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle;
border:1px solid #999}
.sw.paused{background:repeating-linear-gradient(45deg,#f4d7d7 0 3px,#a33 3px 5px)}
.band-part-sw{background:#f5b7b1}.band-degr-sw{background:#fad7a0}
.scroll{overflow-x:auto;border:1px solid #eee}
svg.timeline text{font:11px system-ui,sans-serif}
svg.timeline .axis{fill:#555}
svg.timeline .grid{stroke:#eee}
svg.timeline .lanename{font-weight:600;fill:#333}
svg.timeline .band-part{fill:#f5b7b1}
svg.timeline .band-degr{fill:#fad7a0;opacity:.8}
svg.timeline .band-part-shade{fill:#f5b7b1;opacity:.18}
svg.timeline .band-degr-shade{fill:#fad7a0;opacity:.15}
svg.timeline .bandlabel{fill:#641e16;font-size:10px}
svg.timeline .flabel{font-size:10px}
svg.timeline .leaderlabel{fill:#145a32;font-weight:600;font-size:10px}
svg.timeline .pmark{font-size:12px;font-weight:700;cursor:default}
svg.timeline .vline{stroke:#c0392b;stroke-width:1.5;stroke-dasharray:4 3}
svg.timeline .vdot{fill:none;stroke:#c0392b;stroke-width:2}
svg.timeline .vbadge{fill:#c0392b}
svg.timeline .vbadgetext{fill:#fff;font-size:9px;font-weight:700;pointer-events:none}
svg.timeline g.viol.hl .vline{stroke-width:3;stroke-dasharray:none}
"""

# Hovering a violation row highlights its mark on the timeline, and the reverse.
_JS = """
(function(){
  function hl(v,on){
    document.querySelectorAll('[data-v="'+v+'"]').forEach(function(el){
      el.classList.toggle('hl',on);});
  }
  document.querySelectorAll('[data-v]').forEach(function(el){
    var v=el.getAttribute('data-v');
    el.addEventListener('mouseenter',function(){hl(v,true);});
    el.addEventListener('mouseleave',function(){hl(v,false);});
  });
})();
"""


def build_html(data: ReportData) -> str:
    """The whole report page (pure: a function of the parsed run dir only)."""
    tl = build_timeline(data)
    verdict = data.verdict
    if verdict is None:
        badge = '<span class="badge unchecked">NOT CHECKED</span>'
        why = "verdict.json is missing or unreadable: this run has not been checked."
    else:
        value = str(verdict.get("verdict", "unknown"))
        cls = value if value in ("valid", "invalid", "unknown") else "unknown"
        badge = f'<span class="badge {cls}">{_e(value.upper())}</span>'
        why = str(verdict.get("why") or "")
    problems = report_problems(data)
    problems_html = ""
    if problems:
        shown = "".join(f"<li>{_e(p)}</li>" for p in problems[:MAX_PROBLEM_LINES])
        if len(problems) > MAX_PROBLEM_LINES:
            shown += f"<li>+{len(problems) - MAX_PROBLEM_LINES} more</li>"
        problems_html = (
            '<div class="problems"><b>This report is partial or the logs are damaged:</b>'
            f"<ul>{shown}</ul></div>"
        )
    facts = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in _facts(data, tl))
    glance = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in _glance(data, tl))
    sections: list[str] = []
    if verdict is not None:
        if verdict.get("summary"):
            sections.append(f"<h2>Summary</h2>{_render_value(verdict['summary'])}")
        if verdict.get("bounds"):
            sections.append(f"<h2>Bounds</h2>{_render_value(verdict['bounds'])}")
        if verdict.get("notes"):
            sections.append(f"<h2>Checker notes</h2>{_render_value(verdict['notes'])}")
    title = f"quorum-chaos run {data.run_name}"
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{badge}{_e(title)}</h1>",
            f'<p class="why">{_e(why)}</p>' if why else "",
            problems_html,
            '<div class="cols">',
            f'<table class="facts">{facts}</table>',
            f'<table class="facts">{glance}</table>',
            "</div>",
            "<h2>Timeline</h2>",
            _legend(),
            f'<div class="scroll">{render_svg(tl)}</div>',
            "<h2>Violations</h2>",
            _violations_html(verdict, tl.t0),
            *sections,
            f"<script>{_JS}</script>",
            "</body></html>\n",
        ]
    )


def render_report(run_dir: Path) -> str:
    """Read a run dir and return its report page."""
    return build_html(load_report_data(run_dir))


def write_report(run_dir: Path) -> Path:
    """Write `report.html` into the run dir (tmp + rename, so a reader never sees half
    a page) and return its path."""
    page = render_report(run_dir)
    path = run_dir / REPORT_NAME
    tmp = path.with_suffix(".html.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ReportError("cannot write the report", path=str(path), why=str(exc)) from exc
    return path
