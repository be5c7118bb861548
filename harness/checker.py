"""The checker: judges one run from its event logs and returns a verdict as data.

This module owns the meaning of the properties of SPEC.md section 5 as computed from
the JSONL events of `harness.events`: it takes a `RunLogs` (the cluster's members and
timing plus the `LogRead` of every log file) and returns a `Verdict` with one of three
outcomes (valid, invalid, unknown), the violations with their evidence, notes, the
liveness bounds it used and a summary of the run. It reads no file and no clock, draws
no randomness and never raises on bad input: a violation is data, a log it cannot
trust makes the verdict `unknown` with the reason. Loading a run dir is `runlog.py`.

Theory of operation. One pass over each peer log, in file order (a peer writes its
events in order, all boots appended), keeps a small per-peer state (boot, state, whom
it follows, the leadership it holds, its last fsynced zxid, its epochs) and collects
the facts the cross-peer properties need: established leaderships with their time
spans and commits, follower claims, the first proposal, delivery and commit of every
zxid, truncations. Per-peer properties (epoch monotonicity, per-boot delivery order,
recovery, proposals in the proposer's epoch) are decided during that pass. Cross-peer
safety properties are then decided over those maps; a second pass over deliveries
checks that no peer skips a zxid another peer delivered. The liveness properties
work on the network/process state timeline rebuilt from the harness log (each
`fault` event carries the full state after its step) against the leadership spans.
Everything is linear in the number of events except sorts of small collections
(leaderships, faults) and one sort of the distinct delivered zxids.

Soundness choices (documented so a reader can judge a verdict):
- A log with garbage before its last line, or a member's log missing, makes the
  outcome `unknown`; violations found anyway are still listed, as suspects.
- Prefix agreement compares the zxid -> (key, value) map of all deliveries, requires
  strictly increasing zxids within a boot, and requires no gap (a zxid some peer
  delivered, skipped by another between two of its deliveries) within one following
  period: a re-election, sync or trunc starts a new period because a SNAP sync
  legitimately replaces state without deliveries.
- Recovery: a peer's "last fsynced zxid" is the newest of its `logged` zxids, the
  zxid it `delivered` last (a correct peer delivers only what it has on disk), an
  installed snapshot's zxid, lowered by a `trunc`. A restarted peer must come back with
  at least that, and must start at all: exit code 2 with no `boot` after a spawn of a
  peer that ran before is a violation, unless a disk fault hit it since (noted).
- Durability: a zxid is durable from its first `commit` event or the `ok` of the
  client write that carries it. A leader established later than that must hold it;
  it is missing when the leader's last fsynced zxid at establishment is below it.
  A `trunc {from, to}` removes (to, from]; removing a durable zxid that peer had
  logged or delivered is a violation.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from harness.events import Event, LogRead
from peer.domain import Role, ServerState, Timing, epoch_of, format_zxid, quorum_size

NS_PER_MS = 1_000_000
FOREVER = 1 << 62

# Slack added to the liveness bounds: process start-up (a restarted Python peer needs
# most of a second) and scheduling noise on shared CI machines.
MAJORITY_SURVIVAL_SLACK_MS = 2_000
MINORITY_SILENCE_SLACK_MS = 1_000

# Planted disk faults (harness `fault` events, field `what`) that damage fsynced data,
# so a recovery shortfall right after them is explained. Not `lose-unsynced`: it cuts
# the log back to the last position the peer logged as fsynced, and a correct peer logs
# (`logged`) and delivers only what it has fsynced, so it cannot lose a zxid the checker
# counts as on disk; a shortfall after it is exactly the ack-before-fsync class of bug.
DISK_FAULTS_LOSING_DATA = frozenset({"torn-tail", "tear-log-tail"})
# Disk faults after which a peer may refuse to start (no snapshot validates): noted only.
DISK_FAULTS = DISK_FAULTS_LOSING_DATA | {"corrupt-snapshot", "lose-unsynced"}
# The exit code of a peer that refuses to start (bad config, unrecoverable data dir).
REFUSED_EXIT_CODE = 2

# Cap on how many events a violation carries as evidence (a report stays readable).
MAX_EVIDENCE = 6


class Outcome(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    UNKNOWN = "unknown"


class Property(StrEnum):
    """The properties of SPEC.md section 5, by the names used in verdict.json."""

    ELECTION_SAFETY = "election-safety"
    LEADER_AGREEMENT = "leader-agreement"
    EPOCH_MONOTONICITY = "epoch-monotonicity"
    ZXID_UNIQUENESS = "zxid-uniqueness"
    INTEGRITY = "integrity"
    PREFIX_AGREEMENT = "prefix-agreement"
    DURABILITY = "durability"
    RECOVERY = "recovery"
    MAJORITY_SURVIVAL = "majority-survival"
    MINORITY_SILENCE = "minority-silence"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunLogs:
    """Everything the checker looks at: members (voters and observers), the timing
    profile, and the read logs. `peer_logs` is keyed by the sid of the file name."""

    members: Mapping[int, Role]
    timing: Timing
    peer_logs: Mapping[int, LogRead]
    harness: LogRead | None = None
    history: LogRead | None = None

    @property
    def voters(self) -> tuple[int, ...]:
        return tuple(sorted(s for s, r in self.members.items() if r is Role.VOTER))

    @property
    def observers(self) -> tuple[int, ...]:
        return tuple(sorted(s for s, r in self.members.items() if r is Role.OBSERVER))


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """One event that proves (part of) a violation, and where it was read."""

    where: str
    event: Mapping[str, Any]

    @classmethod
    def of(cls, ev: Event) -> Evidence:
        record: dict[str, Any] = {"t": ev.t, "kind": ev.kind}
        if ev.sid is not None:
            record["sid"] = ev.sid
        if ev.boot is not None:
            record["boot"] = ev.boot
        record.update(ev.fields)
        return cls(where=ev.where(), event=record)

    def to_json(self) -> dict[str, Any]:
        return {"where": self.where, "kind": self.event.get("kind"), "event": dict(self.event)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    prop: Property
    peers: tuple[int, ...]
    message: str
    evidence: tuple[Evidence, ...]
    epoch: int | None = None
    zxid: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "property": self.prop.value,
            "peers": list(self.peers),
            "epoch": self.epoch,
            "zxid": self.zxid,
            "zxid_hex": None if self.zxid is None else format_zxid(self.zxid),
            "message": self.message,
            "evidence": [e.to_json() for e in self.evidence],
        }

    def __str__(self) -> str:
        return f"{self.prop}: {self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Bounds:
    """The liveness bounds derived from the timing profile (milliseconds)."""

    majority_survival_ms: int
    minority_silence_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "majority_survival_ms": self.majority_survival_ms,
            "majority_survival_formula": (
                "sync_limit*tick (followers notice) + finalize_wait + 2*max_notification"
                " (election rounds) + (init_limit+sync_limit)*tick (discovery+sync)"
                f" + {MAJORITY_SURVIVAL_SLACK_MS} ms slack"
            ),
            "minority_silence_ms": self.minority_silence_ms,
            "minority_silence_formula": (
                f"(sync_limit+1)*tick + {MINORITY_SILENCE_SLACK_MS} ms slack"
            ),
        }


def bounds_for(timing: Timing) -> Bounds:
    """B for majority survival and the step-down bound for minority silence."""
    tick = timing.tick_ms
    survival = (
        timing.sync_limit * tick
        + timing.finalize_wait_ms
        + 2 * timing.max_notification_ms
        + (timing.init_limit + timing.sync_limit) * tick
        + MAJORITY_SURVIVAL_SLACK_MS
    )
    silence = (timing.sync_limit + 1) * tick + MINORITY_SILENCE_SLACK_MS
    return Bounds(majority_survival_ms=survival, minority_silence_ms=silence)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    outcome: Outcome
    why: tuple[str, ...] = ()
    violations: tuple[Violation, ...] = ()
    notes: tuple[str, ...] = ()
    bounds: Bounds | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def unknown(cls, why: str) -> Verdict:
        return cls(outcome=Outcome.UNKNOWN, why=(why,))

    def properties_violated(self) -> set[Property]:
        return {v.prop for v in self.violations}

    def to_json(self) -> dict[str, Any]:
        """The content of verdict.json."""
        return {
            "verdict": self.outcome.value,
            "why": "; ".join(self.why) if self.why else None,
            "violations": [v.to_json() for v in self.violations],
            "notes": list(self.notes),
            "bounds": self.bounds.to_json() if self.bounds else {},
            "summary": dict(self.summary),
        }


# --------------------------------------------------------------------------- facts


@dataclass(slots=True, kw_only=True)
class _Lead:
    """One established leadership: from `established` to its end (step_down, a state
    change, a new boot, shutdown, or the log's end)."""

    sid: int
    epoch: int
    boot: int
    start: int
    event: Event
    last_zxid: int
    end: int = FOREVER
    end_reason: str = "still leading at the end of the log"
    end_event: Event | None = None
    commits: list[Event] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class _Peer:
    """Per-peer scan state (reset in part at every boot)."""

    sid: int
    boot: int | None = None
    boot_event: Event | None = None
    last_event: Event | None = None
    state: str | None = None
    following: int | None = None
    lead: _Lead | None = None
    last_zxid: int = 0  # last fsynced zxid of this boot
    last_zxid_event: Event | None = None
    accepted: int = -1
    accepted_event: Event | None = None
    current: int = -1
    current_event: Event | None = None
    last_deliver: Event | None = None
    held: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Net:
    """The network/process state between two harness events."""

    down: frozenset[int]
    paused: frozenset[int]
    cut: frozenset[tuple[int, int]]

    def running(self, sid: int) -> bool:
        return sid not in self.down and sid not in self.paused

    def linked(self, a: int, b: int) -> bool:
        # Both directions: ZAB needs pings one way and their answers the other.
        return (a, b) not in self.cut and (b, a) not in self.cut

    def clique(self, group: Iterable[int]) -> bool:
        return all(self.linked(a, b) for a, b in itertools.combinations(sorted(group), 2))


class _BadEvent(Exception):
    def __init__(self, ev: Event, why: str) -> None:
        super().__init__(f"{ev.where()}: {why}")


def _int(ev: Event, name: str) -> int:
    value = ev.fields.get(name)
    if type(value) is not int:
        raise _BadEvent(ev, f"{ev.kind} field {name!r} is not an integer: {value!r}")
    return value


def _sid_list(ev: Event, name: str) -> frozenset[int]:
    value = ev.fields.get(name, [])
    if not isinstance(value, list) or not all(type(x) is int for x in value):
        raise _BadEvent(ev, f"{ev.kind} field {name!r} is not a list of sids: {value!r}")
    return frozenset(value)


def _links(ev: Event) -> frozenset[tuple[int, int]]:
    value = ev.fields.get("cut", [])
    ok = isinstance(value, list) and all(
        isinstance(p, list) and len(p) == 2 and all(type(x) is int for x in p) for p in value
    )
    if not ok:
        raise _BadEvent(ev, f"fault field 'cut' is not a list of [i, j] links: {value!r}")
    return frozenset((p[0], p[1]) for p in value)


class _Checker:
    """Holds the facts of one check. Used once, by `check`."""

    def __init__(self, run: RunLogs) -> None:
        self.run = run
        self.voters = run.voters
        self.quorum = quorum_size(len(self.voters))
        self.bounds = bounds_for(run.timing)
        self.violations: list[Violation] = []
        self.problems: list[str] = []  # reasons for `unknown`
        self.notes: list[str] = []
        self.leads: list[_Lead] = []
        self.leader_of: dict[int, _Lead] = {}  # epoch -> first established leadership
        self.claims: list[tuple[int, int, int, Event]] = []  # follower, leader, epoch, ev
        self.proposals: dict[int, Event] = {}
        self.delivered: dict[int, Event] = {}
        self.commits: dict[int, Event] = {}
        self.truncs: list[tuple[int, Event, list[int]]] = []  # sid, event, zxids removed
        self.harness_events: list[Event] = []
        self.t_first = FOREVER
        self.t_last = 0
        self.event_count = 0
        self.leads_open_at_end: list[_Lead] = []
        self.exits: dict[int, list[Event]] = {}
        self.boot_events: dict[int, list[Event]] = {}
        self.clique_cache: dict[_Net, list[frozenset[int]]] = {}
        self.t0 = 0
        self.t_end = 0

    def violate(
        self,
        prop: Property,
        peers: Iterable[int],
        message: str,
        evidence: Iterable[Event | None],
        *,
        epoch: int | None = None,
        zxid: int | None = None,
    ) -> None:
        # Evidence in time order: it reads as the story of the violation.
        events = sorted({id(e): e for e in evidence if e is not None}.values(), key=lambda e: e.t)
        kept = [Evidence.of(e) for e in events[:MAX_EVIDENCE]]
        self.violations.append(
            Violation(
                prop=prop,
                peers=tuple(sorted(set(peers))),
                message=message,
                evidence=tuple(kept),
                epoch=epoch,
                zxid=zxid,
            )
        )

    # ------------------------------------------------------------------ inputs

    def check_inputs(self) -> None:
        logs: list[LogRead] = list(self.run.peer_logs.values())
        logs += [log for log in (self.run.harness, self.run.history) if log is not None]
        for log in logs:
            if log.torn_tail:
                self.notes.append(
                    f"{log.source}: torn last line (writer killed mid-write), ignored"
                )
            for err in log.errors[:3]:
                self.problems.append(f"garbage in {err}")
            if len(log.errors) > 3:
                self.problems.append(f"{log.source}: {len(log.errors) - 3} more bad lines")
        spawned: set[int] | None = None
        if self.run.harness is not None:
            spawned = {
                ev.sid
                for ev in self.run.harness.events
                if ev.kind == "spawn" and type(ev.sid) is int
            }
            if not any(ev.kind == "spawn" for ev in self.run.harness.events):
                spawned = None  # harness logs no spawns: assume every member ran
        for sid in sorted(self.run.members):
            if sid in self.run.peer_logs:
                continue
            if spawned is not None and sid not in spawned:
                self.notes.append(f"peer {sid} was never spawned (no log expected)")
            else:
                self.problems.append(f"peer log peer-{sid}.jsonl missing")
        for sid in sorted(set(self.run.peer_logs) - set(self.run.members)):
            self.notes.append(f"peer-{sid}.jsonl: sid {sid} is not a member of cluster.json")
        if self.run.harness is None:
            self.notes.append("no harness.jsonl: liveness properties not checked")
        if self.run.history is None:
            self.notes.append("no history.jsonl: no client operations checked")

    # ------------------------------------------------------------------ peers

    def scan_peers(self) -> None:
        for sid in sorted(self.run.peer_logs):
            log = self.run.peer_logs[sid]
            peer = _Peer(sid=sid)
            peer_event = self.peer_event
            for ev in log.events:
                if ev.sid != sid:
                    self.problems.append(
                        f"garbage in {ev.where()}: event of sid {ev.sid} in the log of peer {sid}"
                    )
                    continue
                try:
                    peer_event(peer, ev)
                except _BadEvent as exc:
                    self.problems.append(f"garbage in {exc}")
                peer.last_event = ev
            self.event_count += len(log.events)
            if log.events:
                self.t_first = min(self.t_first, log.events[0].t)
                self.t_last = max(self.t_last, log.events[-1].t)
            if peer.lead is not None:
                # The log ends while leading: the leadership lasts until the process's
                # exit (the harness log says when), else to the end of the run.
                self.leads_open_at_end.append(peer.lead)

    def close_lead(self, peer: _Peer, ev: Event | None, reason: str, end: int) -> None:
        lead = peer.lead
        if lead is None:
            return
        lead.end = end
        lead.end_reason = reason
        lead.end_event = ev
        peer.lead = None

    def peer_event(self, peer: _Peer, ev: Event) -> None:
        f = ev.fields
        kind = ev.kind
        sid = peer.sid
        # Hot kinds first: a run is mostly logged/ack/commit/deliver.
        if kind == "logged":
            z = _int(ev, "zxid")
            if z > peer.last_zxid:
                peer.last_zxid = z
                peer.last_zxid_event = ev
            peer.held.add(z)
        elif kind == "ack" or kind.startswith("vote_"):
            pass
        elif kind == "commit":
            z = _int(ev, "zxid")
            if z not in self.commits:
                self.commits[z] = ev
            if peer.lead is not None:
                peer.lead.commits.append(ev)
        elif kind == "deliver":
            z = _int(ev, "zxid")
            previous = peer.last_deliver
            if previous is not None and z <= previous.fields["zxid"]:
                self.violate(
                    Property.PREFIX_AGREEMENT,
                    [sid],
                    f"peer {sid} delivered {format_zxid(z)} after "
                    f"{format_zxid(previous.fields['zxid'])} in the same boot",
                    [previous, ev],
                    zxid=z,
                )
            peer.last_deliver = ev
            peer.held.add(z)
            if z > peer.last_zxid:
                # Delivered implies on this peer's disk in a correct peer (proposals are
                # fsynced before their ACK, synced txns before the NEWLEADER ACK, both
                # before any COMMIT/UPTODATE can deliver them): a restart must keep it.
                peer.last_zxid = z
                peer.last_zxid_event = ev
            first = self.delivered.get(z)
            if first is None:
                self.delivered[z] = ev
            elif (first.fields.get("key"), first.fields.get("value")) != (
                f.get("key"),
                f.get("value"),
            ):
                self.violate(
                    Property.PREFIX_AGREEMENT,
                    [first.sid or 0, sid],
                    f"zxid {format_zxid(z)} delivered as {first.fields.get('key')}="
                    f"{first.fields.get('value')!r} by peer {first.sid} but as "
                    f"{f.get('key')}={f.get('value')!r} by peer {sid}",
                    [first, ev],
                    epoch=epoch_of(z),
                    zxid=z,
                )
        elif kind == "propose":
            self.on_propose(peer, ev)
        elif kind == "boot":
            self.on_boot(peer, ev)
        elif kind == "recovered":
            peer.last_zxid = _int(ev, "last_zxid")
            peer.last_zxid_event = ev
        elif kind == "snapshot" and f.get("installed") is True:
            # A SNAP sync replaces the data dir with the leader's snapshot, fsynced:
            # the peer now durably holds everything up to its zxid (and nothing after).
            peer.last_zxid = _int(ev, "zxid")
            peer.last_zxid_event = ev
        elif kind == "state" or kind == "decided":
            state = f.get("state")
            if state != ServerState.LEADING:
                self.close_lead(peer, ev, f"{kind} {state}", ev.t)
            peer.state = state if isinstance(state, str) else None
            peer.following = None
            if kind == "decided" and state in (ServerState.FOLLOWING, ServerState.OBSERVING):
                peer.following = _int(ev, "leader")
            peer.last_deliver = None  # a new following period (see module docstring)
        elif kind == "epoch_accepted" or kind == "epoch_current":
            self.on_epoch(peer, ev)
        elif kind == "established":
            self.on_established(peer, ev)
        elif kind == "sync":
            if peer.lead is not None and type(f.get("peer")) is int:
                self.claims.append((f["peer"], sid, peer.lead.epoch, ev))
            peer.last_deliver = None
        elif kind == "trunc":
            frm, to = _int(ev, "from"), _int(ev, "to")
            # What this trunc removes from this peer's log (truncs are rare: O(held) is ok).
            removed = sorted(z for z in peer.held if to < z <= frm)
            peer.held.difference_update(removed)
            self.truncs.append((sid, ev, removed))
            if to < peer.last_zxid:
                peer.last_zxid = to
                peer.last_zxid_event = ev
            peer.last_deliver = None
        elif kind == "step_down" or kind == "shutdown":
            self.close_lead(peer, ev, f"{kind}: {f.get('reason')}", ev.t)

    def on_boot(self, peer: _Peer, ev: Event) -> None:
        sid = peer.sid
        self.boot_events.setdefault(sid, []).append(ev)
        last = _int(ev, "last_zxid")
        acc, cur = _int(ev, "accepted_epoch"), _int(ev, "current_epoch")
        if peer.boot_event is not None:
            before = peer.last_event
            end = before.t if before is not None else ev.t
            self.close_lead(peer, before, "process ended (new boot follows)", end)
            if last < peer.last_zxid:
                self.check_recovery(peer, ev, last)
        peer.boot = ev.boot
        peer.boot_event = ev
        peer.state = None
        peer.following = None
        peer.last_deliver = None
        peer.last_zxid = last
        peer.last_zxid_event = ev
        # Epochs as recovered from disk must not be older than what was persisted.
        if acc < peer.accepted:
            self.violate(
                Property.EPOCH_MONOTONICITY,
                [sid],
                f"peer {sid} rebooted with acceptedEpoch {acc} after persisting {peer.accepted}",
                [peer.accepted_event, ev],
                epoch=peer.accepted,
            )
        if cur < peer.current:
            self.violate(
                Property.EPOCH_MONOTONICITY,
                [sid],
                f"peer {sid} rebooted with currentEpoch {cur} after persisting {peer.current}",
                [peer.current_event, ev],
                epoch=peer.current,
            )
        if cur > acc:
            self.violate(
                Property.EPOCH_MONOTONICITY,
                [sid],
                f"peer {sid} booted with currentEpoch {cur} > acceptedEpoch {acc}",
                [ev],
                epoch=cur,
            )
        peer.accepted, peer.accepted_event = acc, ev
        peer.current, peer.current_event = cur, ev

    def check_recovery(self, peer: _Peer, ev: Event, last: int) -> None:
        before = peer.last_event
        t_from = before.t if before is not None else 0
        explained = (
            [
                h
                for h in self.run.harness.events
                if h.kind == "fault"
                and h.fields.get("what") in DISK_FAULTS_LOSING_DATA
                and peer.sid in (h.fields.get("targets") or [])
                and t_from <= h.t <= ev.t
            ]
            if self.run.harness is not None
            else []
        )
        lost = f"{format_zxid(last)} < last fsynced {format_zxid(peer.last_zxid)}"
        if explained:
            what = explained[-1].fields.get("what")
            self.notes.append(
                f"recovery: peer {peer.sid} boot {ev.boot} came back at {lost}, explained by "
                f"the planted disk fault {what!r} at {explained[-1].where()}"
            )
            return
        self.violate(
            Property.RECOVERY,
            [peer.sid],
            f"peer {peer.sid} restarted (boot {ev.boot}) with last zxid {lost} before the crash",
            [peer.last_zxid_event, ev],
            zxid=peer.last_zxid,
        )

    def on_epoch(self, peer: _Peer, ev: Event) -> None:
        sid = peer.sid
        epoch = _int(ev, "epoch")
        if ev.kind == "epoch_accepted":
            if epoch < peer.accepted:
                self.violate(
                    Property.EPOCH_MONOTONICITY,
                    [sid],
                    f"peer {sid} acceptedEpoch went down from {peer.accepted} to {epoch}",
                    [peer.accepted_event, ev],
                    epoch=epoch,
                )
            peer.accepted, peer.accepted_event = epoch, ev
            return
        if epoch < peer.current:
            self.violate(
                Property.EPOCH_MONOTONICITY,
                [sid],
                f"peer {sid} currentEpoch went down from {peer.current} to {epoch}",
                [peer.current_event, ev],
                epoch=epoch,
            )
        if epoch > peer.accepted:
            self.violate(
                Property.EPOCH_MONOTONICITY,
                [sid],
                f"peer {sid} set currentEpoch {epoch} above its acceptedEpoch {peer.accepted}",
                [peer.accepted_event, ev],
                epoch=epoch,
            )
        peer.current, peer.current_event = epoch, ev
        if peer.following is not None:
            self.claims.append((sid, peer.following, epoch, ev))

    def on_established(self, peer: _Peer, ev: Event) -> None:
        epoch = _int(ev, "epoch")
        self.close_lead(peer, ev, "re-established", ev.t)
        lead = _Lead(
            sid=peer.sid,
            epoch=epoch,
            boot=peer.boot or 0,
            start=ev.t,
            event=ev,
            last_zxid=peer.last_zxid,
        )
        peer.lead = lead
        self.leads.append(lead)
        other = self.leader_of.get(epoch)
        if other is None:
            self.leader_of[epoch] = lead
        elif other.sid != peer.sid:
            self.violate(
                Property.ELECTION_SAFETY,
                [other.sid, peer.sid],
                f"peers {other.sid} and {peer.sid} both established as leader of epoch {epoch}",
                [other.event, ev],
                epoch=epoch,
            )

    def on_propose(self, peer: _Peer, ev: Event) -> None:
        sid = peer.sid
        z = _int(ev, "zxid")
        lead = peer.lead
        if lead is None or epoch_of(z) != lead.epoch:
            held = "no established epoch" if lead is None else f"established epoch {lead.epoch}"
            self.violate(
                Property.ZXID_UNIQUENESS,
                [sid],
                f"peer {sid} proposed {format_zxid(z)} (epoch {epoch_of(z)}) holding {held}",
                [lead.event if lead else None, ev],
                epoch=epoch_of(z),
                zxid=z,
            )
        first = self.proposals.get(z)
        if first is None:
            self.proposals[z] = ev
        elif (first.fields["key"], first.fields["value"]) != (ev.fields["key"], ev.fields["value"]):
            self.violate(
                Property.ZXID_UNIQUENESS,
                [first.sid or 0, sid],
                f"zxid {format_zxid(z)} proposed as {first.fields['key']}="
                f"{first.fields['value']!r} by peer {first.sid} and as {ev.fields['key']}="
                f"{ev.fields['value']!r} by peer {sid}",
                [first, ev],
                epoch=epoch_of(z),
                zxid=z,
            )

    # ------------------------------------------------------------------ cross-peer safety

    def check_leader_agreement(self) -> None:
        seen: set[tuple[int, int]] = set()
        for follower, leader, epoch, ev in self.claims:
            lead = self.leader_of.get(epoch)
            if lead is None or lead.sid == leader or (follower, epoch) in seen:
                continue
            seen.add((follower, epoch))
            self.violate(
                Property.LEADER_AGREEMENT,
                [follower, leader, lead.sid],
                f"peer {follower} followed peer {leader} in epoch {epoch}, "
                f"whose established leader is peer {lead.sid}",
                [lead.event, ev],
                epoch=epoch,
            )

    def check_integrity(self) -> None:
        for z, dev in self.delivered.items():
            epoch = epoch_of(z)
            prop = self.proposals.get(z)
            if prop is None:
                self.violate(
                    Property.INTEGRITY,
                    [dev.sid or 0],
                    f"peer {dev.sid} delivered {format_zxid(z)}, which no peer proposed",
                    [dev],
                    epoch=epoch,
                    zxid=z,
                )
                continue
            lead = self.leader_of.get(epoch)
            if lead is None or lead.sid != prop.sid:
                who = "nobody" if lead is None else f"peer {lead.sid}"
                self.violate(
                    Property.INTEGRITY,
                    [prop.sid or 0, dev.sid or 0],
                    f"{format_zxid(z)} delivered by peer {dev.sid} was proposed by peer "
                    f"{prop.sid}, but epoch {epoch} was established by {who}",
                    [lead.event if lead else None, prop, dev],
                    epoch=epoch,
                    zxid=z,
                )
            elif (prop.fields["key"], prop.fields["value"]) != (
                dev.fields.get("key"),
                dev.fields.get("value"),
            ):
                self.violate(
                    Property.INTEGRITY,
                    [prop.sid or 0, dev.sid or 0],
                    f"peer {dev.sid} delivered {format_zxid(z)} as {dev.fields.get('key')}="
                    f"{dev.fields.get('value')!r}, proposed as {prop.fields['key']}="
                    f"{prop.fields['value']!r}",
                    [prop, dev],
                    epoch=epoch,
                    zxid=z,
                )

    def check_gaps(self) -> None:
        """No peer skips, within one following period, a zxid another peer delivered."""
        order = sorted(self.delivered)
        pos = {z: i for i, z in enumerate(order)}
        breaks = {"boot", "state", "decided", "sync", "trunc"}
        for sid in sorted(self.run.peer_logs):
            reported = 0
            last_i: int | None = None
            last_ev: Event | None = None
            for ev in self.run.peer_logs[sid].events:
                kind = ev.kind
                if kind == "deliver":
                    i = pos.get(ev.fields["zxid"])
                    if i is None:
                        continue  # a bad zxid, already reported as garbage
                    if last_i is not None and i > last_i + 1 and reported < 3:
                        reported += 1
                        missing = order[last_i + 1]
                        other = self.delivered[missing]
                        self.violate(
                            Property.PREFIX_AGREEMENT,
                            [sid, other.sid or 0],
                            f"peer {sid} delivered {format_zxid(ev.fields['zxid'])} right after "
                            f"{format_zxid(order[last_i])}, skipping {format_zxid(missing)} "
                            f"that peer {other.sid} delivered",
                            [last_ev, ev, other],
                            zxid=missing,
                        )
                    if last_i is None or i > last_i:
                        last_i, last_ev = i, ev
                elif kind in breaks:
                    last_i, last_ev = None, None

    def check_durability(self) -> None:
        durable: dict[int, Event] = dict(self.commits)
        if self.run.history is not None:
            for ev in self.run.history.events:
                z = ev.fields.get("zxid")
                if ev.kind != "ok" or ev.fields.get("op") != "write" or type(z) is not int:
                    continue
                prop = self.proposals.get(z)
                if prop is None and z not in self.delivered:
                    self.violate(
                        Property.DURABILITY,
                        [],
                        f"write {ev.fields.get('id')} acknowledged to client "
                        f"{ev.fields.get('process')} at {format_zxid(z)}, which no peer "
                        "proposed or delivered",
                        [ev],
                        epoch=epoch_of(z),
                        zxid=z,
                    )
                elif (
                    prop is not None
                    and "key" in ev.fields
                    and (prop.fields["key"], prop.fields["value"])
                    != (ev.fields.get("key"), ev.fields.get("value"))
                ):
                    self.violate(
                        Property.ZXID_UNIQUENESS,
                        [prop.sid or 0],
                        f"client write {ev.fields.get('id')} ({ev.fields.get('key')}="
                        f"{ev.fields.get('value')!r}) acknowledged at {format_zxid(z)}, which "
                        f"peer {prop.sid} proposed as {prop.fields['key']}="
                        f"{prop.fields['value']!r}",
                        [prop, ev],
                        epoch=epoch_of(z),
                        zxid=z,
                    )
                known = durable.get(z)
                if known is None or ev.t < known.t:
                    durable[z] = ev
        # Every later established leader holds every durable zxid: with a running
        # maximum over durable zxids by time, one look-up per leadership.
        by_time = sorted(durable.values(), key=lambda e: e.t)
        times = [e.t for e in by_time]
        best: list[Event] = []
        for ev in by_time:
            if not best or ev.fields["zxid"] > best[-1].fields["zxid"]:
                best.append(ev)
            else:
                best.append(best[-1])
        for lead in self.leads:
            i = bisect.bisect_left(times, lead.start)
            if i == 0:
                continue
            top = best[i - 1]
            z = top.fields["zxid"]
            if z > lead.last_zxid and epoch_of(z) < lead.epoch:
                self.violate(
                    Property.DURABILITY,
                    [lead.sid],
                    f"peer {lead.sid} established epoch {lead.epoch} holding up to "
                    f"{format_zxid(lead.last_zxid)}, without {format_zxid(z)} "
                    f"({'acknowledged' if top.kind == 'ok' else 'committed'} before)",
                    [top, lead.event],
                    epoch=lead.epoch,
                    zxid=z,
                )
        for sid, ev, removed in self.truncs:
            for z in removed:
                d = durable.get(z)
                if d is not None and d.t < ev.t:
                    self.violate(
                        Property.DURABILITY,
                        [sid],
                        f"peer {sid} truncated away {format_zxid(z)}, "
                        f"{'acknowledged' if d.kind == 'ok' else 'committed'} before",
                        [d, ev],
                        epoch=epoch_of(z),
                        zxid=z,
                    )
                    break

    # ------------------------------------------------------------------ harness timeline

    def build_timeline(self) -> list[tuple[int, _Net, Event | None]]:
        harness = self.run.harness
        assert harness is not None
        events = sorted(harness.events, key=lambda e: e.t)
        self.harness_events = events
        start = next((e for e in events if e.kind == "run_start"), None)
        t0 = start.t if start is not None else (events[0].t if events else self.t_first)
        spawns = any(e.kind == "spawn" and type(e.sid) is int for e in events)
        # Before its spawn a member is down; with no spawn events, all run from t0.
        down = set(self.run.members) if spawns else set()
        paused: set[int] = set()
        cut: frozenset[tuple[int, int]] = frozenset()
        pid_sid: dict[int, int] = {}
        timeline: list[tuple[int, _Net, Event | None]] = [
            (t0, _Net(down=frozenset(down), paused=frozenset(), cut=cut), start)
        ]
        for ev in events:
            f = ev.fields
            try:
                match ev.kind:
                    case "spawn":
                        sid = ev.sid
                        if type(sid) is not int:
                            continue
                        pid_sid[f["pid"]] = sid
                        down.discard(sid)
                    case "exit":
                        sid = ev.sid if ev.sid is not None else pid_sid.get(f["pid"])
                        if type(sid) is not int:
                            continue
                        down.add(sid)
                        self.exits.setdefault(sid, []).append(ev)
                    case "fault":
                        if "down" in f:
                            down = set(_sid_list(ev, "down"))
                        if "paused" in f:
                            paused = set(_sid_list(ev, "paused"))
                        if "cut" in f:
                            cut = _links(ev)
                    case _:
                        continue
            except _BadEvent as exc:
                self.problems.append(f"garbage in {exc}")
                continue
            net = _Net(down=frozenset(down), paused=frozenset(paused), cut=cut)
            if net != timeline[-1][1]:
                timeline.append((ev.t, net, ev))
        return timeline

    def check_refused_restarts(self) -> None:
        """Recovery: a peer that ran before and is restarted on its own data dir must
        start. A spawn followed by exit code 2 with no `boot` between them (the peer
        refused its data dir, e.g. acceptedEpoch < currentEpoch) is a violation, unless
        a disk fault hit that peer since its last boot (then it is noted)."""
        last_spawn: dict[int, Event] = {}
        last_disk: dict[int, Event] = {}
        # Nemesis steps that (re)started a peer: logged once done, after the exit.
        starts: dict[int, list[Event]] = {}
        for ev in self.harness_events:
            if ev.kind == "fault" and ev.fields.get("what") in ("restart", "start"):
                targets = ev.fields.get("targets")
                for sid in targets if isinstance(targets, list) else []:
                    starts.setdefault(sid, []).append(ev)
        for ev in self.harness_events:
            f = ev.fields
            kind = ev.kind
            if kind == "spawn" and type(ev.sid) is int:
                last_spawn[ev.sid] = ev
            elif kind == "fault" and f.get("what") in DISK_FAULTS:
                targets = f.get("targets")
                for sid in targets if isinstance(targets, list) else []:
                    last_disk[sid] = ev
            elif kind == "exit" and type(ev.sid) is int and f.get("code") == REFUSED_EXIT_CODE:
                self.judge_refusal(ev.sid, last_spawn.get(ev.sid), ev, last_disk, starts)

    def judge_refusal(
        self,
        sid: int,
        spawn: Event | None,
        exit_ev: Event,
        last_disk: Mapping[int, Event],
        starts: Mapping[int, list[Event]],
    ) -> None:
        if spawn is None or spawn.t > exit_ev.t:
            return
        boots = self.boot_events.get(sid, [])
        if any(spawn.t <= b.t <= exit_ev.t for b in boots):
            return  # it booted: this exit is something else
        earlier = [b for b in boots if b.t < spawn.t]
        if not earlier:
            return  # never ran: no data of its own to recover (a config problem)
        disk = last_disk.get(sid)
        if disk is not None and disk.t >= earlier[-1].t:
            self.notes.append(
                f"recovery: peer {sid} refused to start at {exit_ev.where()}, explained by "
                f"the planted disk fault {disk.fields.get('what')!r} at {disk.where()}"
            )
            return
        start = next((e for e in starts.get(sid, []) if e.t >= spawn.t), None)
        detail = start.fields.get("detail") if start is not None else None
        # A step on several peers joins their details with "; peer ": keep this peer's.
        why = ""
        if isinstance(detail, str) and f"peer {sid} " in detail:
            mine = detail[detail.index(f"peer {sid} ") :]
            why = f" ({mine.split('; peer ')[0]})"
        self.violate(
            Property.RECOVERY,
            [sid],
            f"peer {sid} refused to start after a restart (exit code {REFUSED_EXIT_CODE}, "
            f"no boot) with no disk fault planted since boot {earlier[-1].boot}{why}",
            [earlier[-1], spawn, exit_ev, start],
        )

    def close_open_leads(self) -> None:
        for lead in self.leads_open_at_end:
            for ev in self.exits.get(lead.sid, []):
                if ev.t >= lead.start:
                    lead.end, lead.end_reason, lead.end_event = ev.t, "process exited", ev
                    break

    def cliques(self, net: _Net) -> list[frozenset[int]]:
        """Maximal sets of >= quorum voters, all running and pairwise connected."""
        cached = self.clique_cache.get(net)
        if cached is not None:
            return cached
        running = [v for v in self.voters if net.running(v)]
        found: list[frozenset[int]] = []
        # Largest first, so a set contained in one already found is not maximal.
        for size in range(len(running), self.quorum - 1, -1):
            for combo in itertools.combinations(running, size):
                group = frozenset(combo)
                if any(group <= g for g in found):
                    continue
                if net.clique(group):
                    found.append(group)
        self.clique_cache[net] = found
        return found

    def check_majority_survival(self, timeline: list[tuple[int, _Net, Event | None]]) -> None:
        bound = self.bounds.majority_survival_ms * NS_PER_MS
        reported: dict[frozenset[int], int] = {}  # group -> end of the span reported
        for k, (t_k, net, ev) in enumerate(timeline):
            if t_k + bound >= self.t_end:
                break
            for group in self.cliques(net):
                if reported.get(group, -1) > t_k:
                    continue
                end = self.t_end
                for t_j, net_j, _ in timeline[k + 1 :]:
                    # The span ends when the group breaks up or grows into a larger
                    # healthy group (whose own span then carries the requirement).
                    if group not in self.cliques(net_j):
                        end = t_j
                        break
                if end - t_k <= bound:
                    continue
                if any(
                    lead.sid in group and lead.start <= t_k + bound and lead.end > t_k
                    for lead in self.leads
                ):
                    continue
                reported[group] = end
                members = ", ".join(map(str, sorted(group)))
                self.violate(
                    Property.MAJORITY_SURVIVAL,
                    group,
                    f"voters {members} were running and connected for "
                    f"{(end - t_k) / 1e9:.1f} s from t={self.sec(t_k)} s, but none was "
                    f"established leader within B={self.bounds.majority_survival_ms} ms",
                    [ev],
                )

    def check_minority_silence(self, timeline: list[tuple[int, _Net, Event | None]]) -> None:
        """A leader that lost its majority (as the harness state says) steps down within
        the bound and commits nothing after it. The clock runs only while the leader is
        itself running: a paused leader cannot act, and notices at once when resumed."""
        bound = self.bounds.minority_silence_ms * NS_PER_MS
        times = [t for t, _, _ in timeline]
        voters = self.voters
        for lead in self.leads:
            sid = lead.sid
            if sid not in voters:
                continue
            lead_end = min(lead.end, self.t_end)
            commit_times = [c.t for c in lead.commits]
            lost_at: int | None = None
            lost_ev: Event | None = None
            reported = False
            first = max(0, bisect.bisect_right(times, lead.start) - 1)
            for j in range(first, len(timeline)):
                _, net, ev = timeline[j]
                seg_start = max(times[j], lead.start)
                seg_end = min(times[j + 1] if j + 1 < len(times) else self.t_end, lead_end)
                if seg_start >= lead_end:
                    break
                peers = sum(1 for v in voters if v != sid and net.running(v) and net.linked(sid, v))
                if not net.running(sid) or 1 + peers >= self.quorum:
                    lost_at, lost_ev, reported = None, None, False
                    continue
                if lost_at is None:
                    lost_at, lost_ev = seg_start, ev
                deadline = lost_at + bound
                if reported or deadline >= seg_end:
                    continue
                # Commits after the deadline while still cut off: none is allowed.
                c = bisect.bisect_right(commit_times, max(deadline, seg_start))
                if c < len(commit_times) and commit_times[c] < seg_end:
                    commit = lead.commits[c]
                    reported = True
                    self.violate(
                        Property.MINORITY_SILENCE,
                        [sid],
                        f"leader {sid} of epoch {lead.epoch} committed "
                        f"{format_zxid(commit.fields['zxid'])} at t={self.sec(commit.t)} s, "
                        f"cut off from its majority since t={self.sec(lost_at)} s",
                        [lost_ev, commit],
                        epoch=lead.epoch,
                        zxid=commit.fields["zxid"],
                    )
                elif lead.end > deadline:
                    reported = True
                    self.violate(
                        Property.MINORITY_SILENCE,
                        [sid],
                        f"leader {sid} of epoch {lead.epoch} still leading "
                        f"{self.bounds.minority_silence_ms} ms after losing its majority at "
                        f"t={self.sec(lost_at)} s (ended: {lead.end_reason})",
                        [lead.event, lost_ev, lead.end_event],
                        epoch=lead.epoch,
                    )

    # ------------------------------------------------------------------ summary

    def sec(self, t: int) -> float:
        return round((t - self.t0) / 1e9, 3)

    def summary(self) -> dict[str, Any]:
        leads = sorted(self.leads, key=lambda lead: lead.start)
        leaders = [
            {
                "epoch": lead.epoch,
                "leader": lead.sid,
                "boot": lead.boot,
                "from": self.sec(lead.start),
                "to": self.sec(min(lead.end, self.t_end)),
                "end": lead.end_reason,
                "commits": len(lead.commits),
            }
            for lead in leads
        ]
        faults = [e for e in self.harness_events if e.kind == "fault"]
        disturbances = [e for e in self.harness_events if e.kind in ("fault", "exit")]
        elections: list[dict[str, Any]] = []
        previous: _Lead | None = None
        for lead in leads:
            since = self.t0 if previous is None else min(previous.end, lead.start)
            cause = "start of run" if previous is None else previous.end_reason
            # Faults or exits from shortly before the previous leadership ended up to
            # this establishment: what most likely set this election off.
            near = [
                _describe(e)
                for e in disturbances
                if since - 2 * self.bounds.minority_silence_ms * NS_PER_MS <= e.t <= lead.start
            ]
            elections.append(
                {
                    "epoch": lead.epoch,
                    "leader": lead.sid,
                    "at": self.sec(lead.start),
                    "duration_s": round((lead.start - since) / 1e9, 3),
                    "cause": cause,
                    "faults_near": near[-5:],
                }
            )
            previous = lead
        ops = {"invoke": 0, "ok": 0, "fail": 0, "info": 0}
        if self.run.history is not None:
            for ev in self.run.history.events:
                ops[ev.kind] = ops.get(ev.kind, 0) + 1
        return {
            "events": self.event_count,
            "duration_s": round((self.t_end - self.t0) / 1e9, 3),
            "leaders": leaders,
            "elections": elections,
            "commits": len(self.commits),
            "delivered_zxids": len(self.delivered),
            "faults_applied": len(faults),
            "faults_failed": sum(1 for e in self.harness_events if e.kind == "fault_failed"),
            "faults": [
                {
                    "at": self.sec(e.t),
                    "step": e.fields.get("step"),
                    "what": e.fields.get("what"),
                    "targets": e.fields.get("targets"),
                }
                for e in faults[:500]
            ],
            "client_ops": ops,
        }

    # ------------------------------------------------------------------ all

    def run_all(self) -> Verdict:
        self.check_inputs()
        self.scan_peers()
        harness = self.run.harness
        if harness is not None and harness.events:
            self.t_first = min(self.t_first, harness.events[0].t)
            self.t_last = max(self.t_last, max(e.t for e in harness.events))
            self.event_count += len(harness.events)
        if self.run.history is not None:
            self.event_count += len(self.run.history.events)
        if self.t_first == FOREVER:
            self.problems.append("no peer or harness events at all")
            self.t_first = 0
        self.t0 = self.t_first
        self.t_end = self.t_last
        timeline: list[tuple[int, _Net, Event | None]] = []
        if harness is not None:
            timeline = self.build_timeline()
            start = next((e for e in self.harness_events if e.kind == "run_start"), None)
            end = next((e for e in self.harness_events if e.kind == "run_end"), None)
            if start is not None:
                self.t0 = start.t
            if end is not None:
                self.t_end = end.t
        self.close_open_leads()
        if harness is not None:
            self.check_refused_restarts()
        self.check_leader_agreement()
        self.check_integrity()
        self.check_gaps()
        self.check_durability()
        if timeline:
            self.check_majority_survival(timeline)
            self.check_minority_silence(timeline)
        if self.problems:
            outcome = Outcome.UNKNOWN
            if self.violations:
                self.notes.append(
                    "violations were found but the logs are incomplete: they are suspects"
                )
        elif self.violations:
            outcome = Outcome.INVALID
        else:
            outcome = Outcome.VALID
        return Verdict(
            outcome=outcome,
            why=tuple(self.problems)
            if self.problems
            else tuple(sorted({str(v.prop) for v in self.violations})),
            violations=tuple(self.violations),
            notes=tuple(self.notes),
            bounds=self.bounds,
            summary=self.summary(),
        )


def _describe(ev: Event) -> str:
    if ev.kind == "fault":
        return f"fault {ev.fields.get('what')} {ev.fields.get('targets')} at {ev.where()}"
    return f"{ev.kind} of peer {ev.sid} at {ev.where()}"


def check(run: RunLogs) -> Verdict:
    """Judge one run (pure: no I/O, no clock). Never raises on bad logs: what cannot be
    trusted makes the outcome `unknown`, with the reason in `why`."""
    return _Checker(run).run_all()
