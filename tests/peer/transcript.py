"""Readable transcripts of the peer's pure cores: a tiny command language, its driver,
and the one canonical text form of every effect and message (etcd-io/raft's testdata).

This module owns the transcript file format, the command language, a deterministic
in-memory world around the real `Election` and `Replica` cores (FIFO links, armed
timers, a disk that remembers what was fsynced) and the text rendering of effects. It
reads no clock and draws no randomness (each replica gets `seed=sid`). It is not an
adapter: it never chains inputs by itself (a `Decided` does not call `lead()`, a
`GoLooking` does not restart the election), so every input a core receives is a line
of the transcript. It knows nothing of pytest; `test_transcripts.py` runs the files.

File format (etcd's datadriven style). Lines starting with `#` and blank lines between
cases are prose, kept verbatim. A case is one or more command lines, a `----` line,
then the expected output up to the next blank line. One file is one session: cases run
in order on the same world. With several commands in a case, each command's output is
headed by `> command`. A command whose input produced nothing prints `(no effects)`.

Commands (S, A, B are sids; Z a zxid written `0x<epoch>:<counter>` or a plain integer):
  cluster N [observers=S,S] [bug=NAME] [tick_ms= init_limit= sync_limit=
            finalize_wait_ms= min_notification_ms= max_notification_ms= snap_count=]
                           new world: N peers, all down, empty disks
  disk S [accepted=E] [current=E] [log=[Z k=v, Z k=v]]
                           show (or, while S is down, set) S's disk; a set log is fsynced
  boot S                   process S comes up: a Replica recovered from its disk and a
                           fresh Election (round 0); no election is started
  start S [epoch=E] [zxid=Z] [committed=Z]
                           Election.start (booting S first if it is down); the defaults
                           are the replica's current_epoch, last_zxid, committed_zxid
  lead S | follow S leader=L
                           Replica.lead() / Replica.follow(L) (what the node does on Decided)
  establish L [followers=S,S]
                           setup shortcut: boot, lead/follow, deliver-all with the output
                           hidden; prints the resulting status (the exchange itself is
                           shown in zab_discovery_diff_write.txt)
  deliver A->B [n=K]       deliver the K oldest (default: all) messages queued on A->B
  deliver-all              deliver everything, oldest first, until nothing is in flight
  drop A->B [n=K]          lose the K oldest (default: all) messages queued on A->B
  timer S NAME             fire S's armed timer NAME (election.* or zab.tick)
  tick S [S...] [n=K]      fire zab.tick on each listed peer, K rounds (one is tick/2)
  write S key=value        Replica.client_write with the next request number (#1, #2, ...)
  crash S                  S dies: its unsynced log tail is lost, messages to it are
                           dropped, its quorum connections close (the other end sees EOF)
  isolate S | cut A-B | heal
                           cut links (queued messages across them are dropped, later
                           sends are lost); `heal` restores every link
  status [S...]  queue     show peers / messages in flight

Network model: election traffic goes on per-direction links, delivered FIFO per link.
A vote sent to a peer that is down or across a cut is lost at once (shown as `[lost:
...]`). ZAB traffic needs the quorum connection: the learner's `ConnectLeader` queues a
`<dial>` on learner->leader; delivering it calls `connected()` on the learner (or
`disconnected()` when the leader is down). `CloseQuorum` and crashes queue a `<close>`
that calls `disconnected()` on the other end. A partition closes nothing: only the
tick limits notice it, as with real TCP.

Output: effects are printed `sid: effect` in the order the core returned them; the
effects of a delivered message are indented under its `A->B message` line. Mistakes in
a transcript (syntax, unknown peer, a timer that is not armed, nothing in flight)
raise `TranscriptError` naming file and line; errors raised by a core (`PeerError`)
are behaviour and print as `error: ...`. Every `Emit` is checked against the event
schema of `harness.events` as it is produced.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import assert_never

from harness.events import PEER_KINDS
from peer.domain import (
    Bug,
    Role,
    Timing,
    Txn,
    Vote,
    format_zxid,
    make_zxid,
    quorum_size,
)
from peer.effects import (
    AppendTxns,
    CancelTimer,
    ClientReply,
    CloseQuorum,
    ConnectLeader,
    Decided,
    Emit,
    GoLooking,
    InstallSnapshot,
    PersistAcceptedEpoch,
    PersistCurrentEpoch,
    Send,
    SetTimer,
    SyncLog,
    TruncateLog,
    WriteSnapshot,
    ZabEffect,
)
from peer.election import Effect as ElectionEffect
from peer.election import Election
from peer.errors import PeerError
from peer.messages import (
    Ack,
    AckEpoch,
    AckNewLeader,
    Commit,
    Diff,
    FollowerInfo,
    Inform,
    LeaderInfo,
    NewLeader,
    Notification,
    Ping,
    Proposal,
    Snap,
    Trunc,
    UpToDate,
    ZabMessage,
)
from peer.replication import TICK_TIMER, Phase, Replica

SEPARATOR = "----"
NO_EFFECTS = "(no effects)"
DELIVER_ALL_LIMIT = 10_000

AnyEffect = ElectionEffect | ZabEffect

_ZAB_TYPES = (
    FollowerInfo,
    LeaderInfo,
    AckEpoch,
    Diff,
    Trunc,
    Snap,
    NewLeader,
    AckNewLeader,
    UpToDate,
    Proposal,
    Ack,
    Commit,
    Inform,
    Ping,
)


class TranscriptError(Exception):
    """A transcript file is malformed or a command in it cannot be run as written."""

    def __init__(self, source: str, line: int, why: str) -> None:
        super().__init__(source, line, why)
        self.source = source
        self.line = line
        self.why = why

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.why}"


class CommandError(Exception):
    """A command is wrong as written; the runner adds file and line (TranscriptError)."""


# ---------------------------------------------------------------------------- format


def fmt_zxid(zxid: int) -> str:
    # An observer's sentinel vote carries -1: print it as such, not as a bit pattern.
    return format_zxid(zxid) if zxid >= 0 else str(zxid)


def fmt_vote(vote: Vote) -> str:
    """(peer_epoch,zxid,leader): the fields in FLE's comparison order."""
    return f"({vote.peer_epoch},{fmt_zxid(vote.zxid)},{vote.leader})"


def fmt_txn(txn: Txn) -> str:
    return f"{fmt_zxid(txn.zxid)} {txn.key}={txn.value}"


def fmt_txns(txns: Iterable[Txn]) -> str:
    return "[" + ", ".join(fmt_txn(t) for t in txns) + "]"


def fmt_data(state: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    pairs = state.items() if isinstance(state, Mapping) else state
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(pairs)) + "}"


def fmt_message(msg: object) -> str:
    """One message in canonical form; the sender is the link's, so it is left out."""
    match msg:
        case Notification():
            return f"Notification({msg.state} round={msg.round} vote={fmt_vote(msg.vote)})"
        case FollowerInfo():
            return (
                f"FollowerInfo(sid={msg.sid} accepted_epoch={msg.accepted_epoch} "
                f"last_zxid={fmt_zxid(msg.last_zxid)})"
            )
        case LeaderInfo():
            return f"LeaderInfo(epoch={msg.epoch})"
        case AckEpoch():
            return (
                f"AckEpoch(current_epoch={msg.current_epoch} last_zxid={fmt_zxid(msg.last_zxid)})"
            )
        case Diff():
            return f"Diff({fmt_txns(msg.txns)})"
        case Trunc():
            return f"Trunc(zxid={fmt_zxid(msg.zxid)} {fmt_txns(msg.txns)})"
        case Snap():
            return (
                f"Snap(zxid={fmt_zxid(msg.zxid)} state={fmt_data(msg.state)} {fmt_txns(msg.txns)})"
            )
        case NewLeader():
            return f"NewLeader(epoch={msg.epoch} zxid={fmt_zxid(msg.zxid)})"
        case AckNewLeader():
            return f"AckNewLeader(epoch={msg.epoch} zxid={fmt_zxid(msg.zxid)})"
        case UpToDate():
            return f"UpToDate(zxid={fmt_zxid(msg.zxid)})"
        case Proposal():
            return f"Proposal({fmt_txn(msg.txn)})"
        case Ack():
            return f"Ack(zxid={fmt_zxid(msg.zxid)})"
        case Commit():
            return f"Commit(zxid={fmt_zxid(msg.zxid)})"
        case Inform():
            return f"Inform({fmt_txn(msg.txn)})"
        case Ping():
            return f"Ping(zxid={fmt_zxid(msg.zxid)})"
        case _:
            raise TypeError(f"no transcript form for message {msg!r}")


# Event fields holding a zxid, printed as 0x<epoch>:<counter>. `from`/`to` are zxids
# in sync/trunc events but sids in ack/vote events, so the kind decides.
_ZXID_FIELDS = {"zxid", "last_zxid", "snapshot_zxid"}
_ZXID_RANGE_KINDS = {"sync", "trunc"}


def _fmt_field(kind: str, name: str, value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        is_zxid = name in _ZXID_FIELDS or (kind in _ZXID_RANGE_KINDS and name in ("from", "to"))
        return fmt_zxid(value) if is_zxid else str(value)
    if isinstance(value, str):
        # Bare when unambiguous; quoted (JSON) when it has spaces or is empty.
        return value if re.fullmatch(r"[^\s\"=,\[\]{}]+", value) else json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_fmt_field(kind, name, v) for v in value) + "]"
    return str(value)


def fmt_emit(emit: Emit) -> str:
    """`emit KIND [value of the field named KIND] name=value ...` in field order."""
    parts = ["emit", emit.kind]
    if emit.kind in emit.fields:
        parts.append(_fmt_field(emit.kind, emit.kind, emit.fields[emit.kind]))
    for name, value in emit.fields.items():
        if name != emit.kind:
            parts.append(f"{name}={_fmt_field(emit.kind, name, value)}")
    return " ".join(parts)


def fmt_effect(effect: AnyEffect) -> str:
    match effect:
        case Send():
            return f"send->{effect.to} {fmt_message(effect.message)}"
        case SetTimer():
            return f"set-timer {effect.name} {effect.delay_ms}ms"
        case CancelTimer():
            return f"cancel-timer {effect.name}"
        case Emit():
            return fmt_emit(effect)
        case Decided():
            return f"decided {effect.state} vote={fmt_vote(effect.vote)} round={effect.round}"
        case ConnectLeader():
            return f"connect-leader {effect.leader}"
        case CloseQuorum():
            return f"close-quorum {effect.peer}"
        case PersistAcceptedEpoch():
            return f"persist accepted_epoch={effect.epoch}"
        case PersistCurrentEpoch():
            return f"persist current_epoch={effect.epoch}"
        case AppendTxns():
            return f"append {fmt_txns(effect.txns)} {'sync' if effect.sync else 'no-sync'}"
        case SyncLog():
            return "sync-log"
        case TruncateLog():
            return f"truncate-log after {fmt_zxid(effect.zxid)}"
        case WriteSnapshot():
            return f"write-snapshot {fmt_zxid(effect.zxid)} {fmt_data(effect.state)}"
        case InstallSnapshot():
            return f"install-snapshot {fmt_zxid(effect.zxid)} {fmt_data(effect.state)}"
        case ClientReply():
            if effect.ok:
                zxid = "none" if effect.zxid is None else fmt_zxid(effect.zxid)
                return f"reply #{effect.request} ok zxid={zxid}"
            leader = "none" if effect.leader is None else str(effect.leader)
            return f"reply #{effect.request} fail {effect.error} leader={leader}"
        case GoLooking():
            return f"go-looking {json.dumps(effect.reason)}"
        case _:
            assert_never(effect)


# ---------------------------------------------------------------------------- parse


def parse_zxid(text: str) -> int:
    """`0x<epoch hex>:<counter>` (the printed form) or a plain non-negative integer."""
    match = re.fullmatch(r"0x([0-9a-fA-F]+):(\d+)", text)
    if match:
        try:
            return make_zxid(int(match[1], 16), int(match[2]))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    if text.isdigit():
        return int(text)
    raise CommandError(f"bad zxid {text!r}: expected 0x<epoch>:<counter> or an integer")


def parse_txns(text: str) -> list[Txn]:
    """`[0x1:1 a=1, 0x1:2 b=2]`, the form `append` prints."""
    if not (text.startswith("[") and text.endswith("]")):
        raise CommandError(f"bad txn list {text!r}: expected [0x1:1 key=value, ...]")
    body = text[1:-1].strip()
    txns: list[Txn] = []
    for item in filter(None, (part.strip() for part in body.split(","))):
        match = re.fullmatch(r"(\S+)\s+([^=\s]+)=(\S*)", item)
        if not match:
            raise CommandError(f"bad txn {item!r}: expected '0x<epoch>:<counter> key=value'")
        txns.append(Txn(zxid=parse_zxid(match[1]), key=match[2], value=match[3]))
    return txns


def tokenize(command: str) -> list[str]:
    # A token is a run of non-blanks, except that `name=[...]` may hold blanks.
    return re.findall(r"[^\s\[]*\[[^\]]*\]|\S+", command)


@dataclass(frozen=True, slots=True, kw_only=True)
class Args:
    """A command's tokens split into positional words and `name=value` options."""

    words: tuple[str, ...]
    options: Mapping[str, str]

    @staticmethod
    def parse(tokens: Sequence[str], allowed: Iterable[str]) -> Args:
        known = set(allowed)
        words: list[str] = []
        options: dict[str, str] = {}
        for token in tokens:
            name, eq, value = token.partition("=")
            if eq and name in known:
                if name in options:
                    raise CommandError(f"option {name!r} given twice")
                options[name] = value
            elif eq and known:
                raise CommandError(f"unknown option {name!r} (allowed: {', '.join(sorted(known))})")
            else:
                words.append(token)
        return Args(words=tuple(words), options=options)

    def exactly(self, count: int, usage: str) -> tuple[str, ...]:
        if len(self.words) != count:
            raise CommandError(f"usage: {usage}")
        return self.words

    def int_option(self, name: str, default: int | None = None) -> int | None:
        text = self.options.get(name)
        if text is None:
            return default
        return parse_int(text, name)


def parse_int(text: str, what: str) -> int:
    if not re.fullmatch(r"-?\d+", text):
        raise CommandError(f"{what} must be an integer, got {text!r}")
    return int(text)


def parse_sids(text: str, what: str) -> list[int]:
    return [parse_int(part, what) for part in text.split(",") if part]


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One case: its raw command lines (comments allowed), the expected output."""

    line: int  # 1-based line of the first command
    lines: tuple[str, ...]
    expected: tuple[str, ...]

    @property
    def commands(self) -> list[tuple[int, str]]:
        return [
            (self.line + offset, text.strip())
            for offset, text in enumerate(self.lines)
            if not text.lstrip().startswith("#")
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Prose:
    lines: tuple[str, ...]


Block = Case | Prose


def parse(text: str, source: str) -> list[Block]:
    lines = text.splitlines()
    blocks: list[Block] = []
    prose: list[str] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip() or lines[i].lstrip().startswith("#"):
            prose.append(lines[i])
            i += 1
            continue
        if prose:
            blocks.append(Prose(lines=tuple(prose)))
            prose = []
        start = i
        while i < len(lines) and lines[i] != SEPARATOR:
            if not lines[i].strip():
                raise TranscriptError(
                    source,
                    i + 1,
                    f"blank line before {SEPARATOR!r} in the case at line {start + 1}",
                )
            i += 1
        if i == len(lines):
            raise TranscriptError(source, start + 1, f"case has no {SEPARATOR!r} line")
        commands = tuple(lines[start:i])
        i += 1
        out_start = i
        while i < len(lines) and lines[i].strip():
            i += 1
        blocks.append(Case(line=start + 1, lines=commands, expected=tuple(lines[out_start:i])))
        i += 1  # the blank line that ends the case
    if prose:
        blocks.append(Prose(lines=tuple(prose)))
    return blocks


def render(blocks: Sequence[Block], outputs: Mapping[int, Sequence[str]] | None = None) -> str:
    """The file text for `blocks`, with `outputs[i]` replacing case i's expected output."""
    out: list[str] = []
    for index, block in enumerate(blocks):
        match block:
            case Prose():
                out.extend(block.lines)
            case Case():
                out.extend(block.lines)
                out.append(SEPARATOR)
                out.extend(block.expected if outputs is None else outputs[index])
                if index != len(blocks) - 1:
                    out.append("")
            case _:
                assert_never(block)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- world


@dataclass(frozen=True, slots=True)
class Dial:
    """The learner's dial reaching the leader's quorum port."""


@dataclass(frozen=True, slots=True)
class Closed:
    """EOF on a quorum connection: the sender's end was closed."""


Payload = Notification | Dial | Closed | ZabMessage


def fmt_payload(payload: Payload) -> str:
    match payload:
        case Dial():
            return "<dial>"
        case Closed():
            return "<close>"
        case _:
            return fmt_message(payload)


@dataclass(frozen=True, slots=True, kw_only=True)
class Flight:
    src: int
    dst: int
    payload: Payload

    def describe(self) -> str:
        return f"{self.src}->{self.dst} {fmt_payload(self.payload)}"


@dataclass
class Disk:
    """What a peer's storage holds; `fsynced` counts the log entries surely on disk."""

    snapshot_zxid: int = 0
    snapshot_state: dict[str, str] = field(default_factory=dict)
    log: list[Txn] = field(default_factory=list)
    fsynced: int = 0
    accepted_epoch: int = 0
    current_epoch: int = 0

    def describe(self) -> str:
        text = (
            f"snapshot={fmt_zxid(self.snapshot_zxid)} {fmt_data(self.snapshot_state)} "
            f"log={fmt_txns(self.log)} accepted_epoch={self.accepted_epoch} "
            f"current_epoch={self.current_epoch}"
        )
        if self.fsynced < len(self.log):
            text += f" not-fsynced={fmt_txns(self.log[self.fsynced :])}"
        return text


@dataclass
class Peer:
    sid: int
    disk: Disk = field(default_factory=Disk)
    election: Election | None = None
    replica: Replica | None = None
    timers: dict[str, int] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        return self.election is not None


def _indent(lines: Iterable[str]) -> list[str]:
    return ["  " + line for line in lines]


class World:
    """N peers with real cores, a FIFO network, timers and disks; see the module doc."""

    def __init__(self) -> None:
        self._reset(Timing(), None, {})

    def _reset(self, timing: Timing, bug: Bug | None, roles: dict[int, Role]) -> None:
        self.roles = roles
        self.timing = timing
        self.bug = bug
        self.peers: dict[int, Peer] = {sid: Peer(sid=sid) for sid in roles}
        self.queue: deque[Flight] = deque()
        self.cuts: set[frozenset[int]] = set()
        self.links: set[frozenset[int]] = set()  # quorum connections that are up
        self.next_request = 1

    # -------------------------------------------------------------- dispatch
    def execute(self, command: str) -> list[str]:
        tokens = tokenize(command)
        name, rest = tokens[0], tokens[1:]
        if name != "cluster" and not self.peers:
            raise CommandError("no cluster yet: the first command must be `cluster N`")
        match name:
            case "cluster":
                return self._cluster(rest)
            case "disk":
                return self._disk(rest)
            case "boot":
                (sid,) = self._sids(Args.parse(rest, ()).exactly(1, "boot S"))
                return self._boot(sid)
            case "start":
                return self._start(rest)
            case "lead":
                (sid,) = self._sids(Args.parse(rest, ()).exactly(1, "lead S"))
                return self._input(sid, lambda p: self._replica(p).lead())
            case "follow":
                return self._follow(rest)
            case "establish":
                return self._establish(rest)
            case "deliver":
                return self._deliver_link(rest, drop=False)
            case "drop":
                return self._deliver_link(rest, drop=True)
            case "deliver-all":
                Args.parse(rest, ()).exactly(0, "deliver-all")
                return self._deliver_all()
            case "timer":
                return self._timer(rest)
            case "tick":
                return self._tick(rest)
            case "write":
                return self._write(rest)
            case "crash":
                (sid,) = self._sids(Args.parse(rest, ()).exactly(1, "crash S"))
                return self._crash(sid)
            case "isolate":
                (sid,) = self._sids(Args.parse(rest, ()).exactly(1, "isolate S"))
                return self._cut([frozenset((sid, o)) for o in self.peers if o != sid])
            case "cut":
                (pair,) = Args.parse(rest, ()).exactly(1, "cut A-B")
                a, b = self._pair(pair, "-")
                return self._cut([frozenset((a, b))])
            case "heal":
                Args.parse(rest, ()).exactly(0, "heal")
                healed = sorted("-".join(map(str, sorted(c))) for c in self.cuts)
                self.cuts.clear()
                return [f"healed {' '.join(healed)}" if healed else "nothing was cut"]
            case "status":
                sids = self._sids(Args.parse(rest, ()).words) or sorted(self.peers)
                return [self._status(sid) for sid in sids]
            case "queue":
                Args.parse(rest, ()).exactly(0, "queue")
                return [f.describe() for f in self.queue] or ["(nothing in flight)"]
            case _:
                raise CommandError(f"unknown command {name!r}")

    # -------------------------------------------------------------- argument helpers
    def _sid(self, text: str) -> int:
        sid = parse_int(text, "a sid")
        if sid not in self.peers:
            raise CommandError(f"no peer {sid} (peers are {sorted(self.peers)})")
        return sid

    def _sids(self, words: Iterable[str]) -> list[int]:
        return [self._sid(w) for w in words]

    def _pair(self, text: str, sep: str) -> tuple[int, int]:
        a, found, b = text.partition(sep)
        if not found:
            raise CommandError(f"expected A{sep}B, got {text!r}")
        first, second = self._sid(a), self._sid(b)
        if first == second:
            raise CommandError(f"{text!r} links a peer to itself")
        return first, second

    def _up(self, sid: int) -> Peer:
        peer = self.peers[sid]
        if not peer.up:
            raise CommandError(f"peer {sid} is down (boot or start it first)")
        return peer

    @staticmethod
    def _election(peer: Peer) -> Election:
        assert peer.election is not None
        return peer.election

    @staticmethod
    def _replica(peer: Peer) -> Replica:
        assert peer.replica is not None
        return peer.replica

    # -------------------------------------------------------------- commands
    def _cluster(self, tokens: list[str]) -> list[str]:
        timing_names = (
            "tick_ms",
            "init_limit",
            "sync_limit",
            "finalize_wait_ms",
            "min_notification_ms",
            "max_notification_ms",
            "snap_count",
        )
        args = Args.parse(tokens, ("observers", "bug", *timing_names))
        (count_text,) = args.exactly(1, "cluster N [observers=S,S] [bug=NAME] [timing=...]")
        count = parse_int(count_text, "the peer count")
        if not 1 <= count <= 9:
            raise CommandError(f"cluster size must be 1..9, got {count}")
        observers = set(parse_sids(args.options.get("observers", ""), "an observer sid"))
        if not observers <= set(range(1, count + 1)):
            raise CommandError(f"observers {sorted(observers)} are not all in 1..{count}")
        bug_name = args.options.get("bug")
        try:
            bug = None if bug_name is None else Bug(bug_name)
        except ValueError:
            raise CommandError(
                f"unknown bug {bug_name!r} (known: {', '.join(b.value for b in Bug)})"
            ) from None
        changes = {
            name: parse_int(text, name)
            for name, text in args.options.items()
            if name in timing_names
        }
        try:
            timing = replace(Timing(), **changes)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        roles = {
            sid: Role.OBSERVER if sid in observers else Role.VOTER for sid in range(1, count + 1)
        }
        self._reset(timing, bug, roles)
        voters = [sid for sid, role in self.roles.items() if role is Role.VOTER]
        timing_text = " ".join(f"{name}={getattr(timing, name)}" for name in timing_names)
        return [
            f"voters={voters} observers={sorted(observers)} "
            f"quorum={quorum_size(len(voters), bug)} bug={bug or 'none'}",
            timing_text,
        ]

    def _disk(self, tokens: list[str]) -> list[str]:
        args = Args.parse(tokens, ("accepted", "current", "log"))
        (sid,) = self._sids(args.exactly(1, "disk S [accepted=E] [current=E] [log=[...]]"))
        peer = self.peers[sid]
        if args.options:
            if peer.up:
                raise CommandError(f"peer {sid} is up: set its disk while it is down")
            disk = peer.disk
            if "log" in args.options:
                disk.log = parse_txns(args.options["log"])
                disk.fsynced = len(disk.log)
            disk.accepted_epoch = args.int_option("accepted", disk.accepted_epoch) or 0
            disk.current_epoch = args.int_option("current", disk.current_epoch) or 0
        return [f"{sid}: disk {peer.disk.describe()}"]

    def _boot(self, sid: int) -> list[str]:
        peer = self.peers[sid]
        if peer.up:
            raise CommandError(f"peer {sid} is already up")
        disk = peer.disk
        try:
            replica = Replica(
                sid=sid,
                roles=self.roles,
                timing=self.timing,
                bug=self.bug,
                snapshot_zxid=disk.snapshot_zxid,
                state=disk.snapshot_state,
                txns=[t for t in disk.log if t.zxid > disk.snapshot_zxid],
                accepted_epoch=disk.accepted_epoch,
                current_epoch=disk.current_epoch,
                seed=sid,
            )
            election = Election(sid=sid, roles=self.roles, timing=self.timing, bug=self.bug)
        except PeerError as exc:
            return [f"error: {exc}"]
        peer.replica, peer.election = replica, election
        return [
            f"{sid}: boot last_zxid={fmt_zxid(replica.last_zxid)} "
            f"accepted_epoch={replica.accepted_epoch} current_epoch={replica.current_epoch}"
        ]

    def _start(self, tokens: list[str]) -> list[str]:
        args = Args.parse(tokens, ("epoch", "zxid", "committed"))
        (sid,) = self._sids(args.exactly(1, "start S [epoch=E] [zxid=Z] [committed=Z]"))
        lines = [] if self.peers[sid].up else self._boot(sid)
        peer = self._up(sid)
        replica = self._replica(peer)
        epoch = args.int_option("epoch", replica.current_epoch)
        zxid = parse_zxid(args.options["zxid"]) if "zxid" in args.options else replica.last_zxid
        committed = (
            parse_zxid(args.options["committed"])
            if "committed" in args.options
            else (zxid if "zxid" in args.options else replica.committed_zxid)
        )
        assert epoch is not None
        return lines + self._input(
            sid,
            lambda p: self._election(p).start(
                peer_epoch=epoch, last_zxid=zxid, committed_zxid=committed
            ),
        )

    def _follow(self, tokens: list[str]) -> list[str]:
        args = Args.parse(tokens, ("leader",))
        (sid,) = self._sids(args.exactly(1, "follow S leader=L"))
        if "leader" not in args.options:
            raise CommandError("usage: follow S leader=L")
        leader = self._sid(args.options["leader"])
        return self._input(sid, lambda p: self._replica(p).follow(leader))

    def _establish(self, tokens: list[str]) -> list[str]:
        args = Args.parse(tokens, ("followers",))
        (leader,) = self._sids(args.exactly(1, "establish L [followers=S,S]"))
        followers = [
            self._sid(str(s)) for s in parse_sids(args.options.get("followers", ""), "a sid")
        ] or [sid for sid in self.peers if sid != leader]
        for sid in [leader, *followers]:
            if not self.peers[sid].up:
                self._boot(sid)
        self._input(leader, lambda p: self._replica(p).lead())
        for sid in followers:
            self._input(sid, lambda p: self._replica(p).follow(leader))
        self._deliver_all()
        return [self._status(sid) for sid in sorted([leader, *followers])]

    def _write(self, tokens: list[str]) -> list[str]:
        words = Args.parse(tokens, ()).exactly(2, "write S key=value")
        sid = self._sid(words[0])
        key, eq, value = words[1].partition("=")
        if not eq or not key:
            raise CommandError(f"expected key=value, got {words[1]!r}")
        request, self.next_request = self.next_request, self.next_request + 1
        return self._input(sid, lambda p: self._replica(p).client_write(request, key, value))

    def _timer(self, tokens: list[str]) -> list[str]:
        words = Args.parse(tokens, ()).exactly(2, "timer S NAME")
        return self._fire(self._sid(words[0]), words[1])

    def _fire(self, sid: int, name: str) -> list[str]:
        peer = self._up(sid)
        if name not in peer.timers:
            armed = ", ".join(sorted(peer.timers)) or "none"
            raise CommandError(f"timer {name} is not armed on {sid} (armed: {armed})")
        del peer.timers[name]
        if name == TICK_TIMER:
            return self._input(sid, lambda p: self._replica(p).on_timer(name))
        return self._input(sid, lambda p: self._election(p).on_timer(name))

    def _tick(self, tokens: list[str]) -> list[str]:
        args = Args.parse(tokens, ("n",))
        sids = self._sids(args.words)
        rounds = args.int_option("n", 1) or 0
        if not sids or rounds < 1:
            raise CommandError("usage: tick S [S...] [n=K] with K >= 1")
        lines: list[str] = []
        for k in range(1, rounds + 1):
            if rounds > 1:
                lines.append(f"~ tick {k}/{rounds}")
            for sid in sids:
                if TICK_TIMER in self._up(sid).timers:
                    lines += self._fire(sid, TICK_TIMER)
                else:
                    lines.append(f"{sid}: {TICK_TIMER} not armed")
        return lines

    def _crash(self, sid: int) -> list[str]:
        peer = self._up(sid)
        lines = [f"{sid}: crashed"]
        disk = peer.disk
        if disk.fsynced < len(disk.log):
            lines.append(f"{sid}: disk loses not-fsynced {fmt_txns(disk.log[disk.fsynced :])}")
            del disk.log[disk.fsynced :]
        peer.election = peer.replica = None
        peer.timers.clear()
        # What it already sent is on the wire, except a dial that dies with its process;
        # what was on its way to it is lost.
        for flight in list(self.queue):
            if flight.dst == sid or (flight.src == sid and isinstance(flight.payload, Dial)):
                self.queue.remove(flight)
                lines.append(f"dropped {flight.describe()}")
        for link in sorted(self.links, key=sorted):
            if sid in link:
                self.links.discard(link)
                (other,) = link - {sid}
                if self._close(sid, other):
                    lines.append(f"queued {sid}->{other} <close> (the kernel closes its socket)")
        return lines

    def _cut(self, pairs: Sequence[frozenset[int]]) -> list[str]:
        self.cuts.update(pairs)
        lines = ["cut " + " ".join("-".join(map(str, sorted(p))) for p in pairs)]
        for flight in [f for f in self.queue if frozenset((f.src, f.dst)) in self.cuts]:
            self.queue.remove(flight)
            lines.append(f"dropped {flight.describe()}")
        return lines

    # -------------------------------------------------------------- network
    def _deliver_link(self, tokens: list[str], *, drop: bool) -> list[str]:
        verb = "drop" if drop else "deliver"
        args = Args.parse(tokens, ("n",))
        (link,) = args.exactly(1, f"{verb} A->B [n=K]")
        src, dst = self._pair(link, "->")
        on_link = [f for f in self.queue if f.src == src and f.dst == dst]
        if not on_link:
            raise CommandError(f"nothing in flight on {src}->{dst}")
        count = args.int_option("n", len(on_link)) or 0
        if not 1 <= count <= len(on_link):
            raise CommandError(f"n={count}, but {len(on_link)} message(s) are on {src}->{dst}")
        lines: list[str] = []
        for flight in on_link[:count]:  # oldest first; what delivery adds waits its turn
            self.queue.remove(flight)
            lines += [f"dropped {flight.describe()}"] if drop else self._deliver(flight)
        return lines

    def _deliver_all(self) -> list[str]:
        lines: list[str] = []
        for _ in range(DELIVER_ALL_LIMIT):
            if not self.queue:
                return lines
            lines += self._deliver(self.queue.popleft())
        raise CommandError(f"still busy after {DELIVER_ALL_LIMIT} deliveries")

    def _deliver(self, flight: Flight) -> list[str]:
        head = flight.describe()
        src, dst, payload = flight.src, flight.dst, flight.payload
        link = frozenset((src, dst))
        match payload:
            case Dial():
                if not self.peers[src].up:
                    return [f"{head} [lost: {src} is down]"]
                if not self.peers[dst].up:
                    # Refused: the learner's core hears of a failed dial.
                    refused = self._input(src, lambda p: self._replica(p).disconnected(dst))
                    return [f"{head} [refused: {dst} is down]", *_indent(refused)]
                self.links.add(link)
                return [head, *_indent(self._input(src, lambda p: self._replica(p).connected(dst)))]
            case Closed():
                if not self.peers[dst].up:
                    return [f"{head} [lost: {dst} is down]"]
                if link in self.links:
                    return [f"{head} [stale: the link was opened again]"]
                effects = self._input(dst, lambda p: self._replica(p).disconnected(src))
                return [head, *_indent(effects)]
            case Notification():
                if not self.peers[dst].up:
                    return [f"{head} [lost: {dst} is down]"]
                note = payload
                return [head, *_indent(self._input(dst, lambda p: self._election(p).receive(note)))]
            case _:
                if not self.peers[dst].up or link not in self.links:
                    return [f"{head} [lost: no quorum connection]"]
                zab = payload
                effects = self._input(dst, lambda p: self._replica(p).receive(src, zab))
                return [head, *_indent(effects)]

    def _close(self, src: int, dst: int) -> bool:
        """Queue EOF for the other end of a closed quorum connection, if it can arrive."""
        if self.peers[dst].up and frozenset((src, dst)) not in self.cuts:
            self.queue.append(Flight(src=src, dst=dst, payload=Closed()))
            return True
        return False

    # -------------------------------------------------------------- effects
    def _input(self, sid: int, call: Callable[[Peer], Sequence[AnyEffect]]) -> list[str]:
        """Feed one input to a core of `sid`, perform its effects, return their lines."""
        peer = self._up(sid)
        try:
            effects = call(peer)
        except PeerError as exc:
            return [f"{sid}: error: {exc}"]
        lines = [self._perform(peer, effect) for effect in effects]
        return lines or [f"{sid}: {NO_EFFECTS}"]

    def _perform(self, peer: Peer, effect: AnyEffect) -> str:
        sid, disk = peer.sid, peer.disk
        line = f"{sid}: {fmt_effect(effect)}"
        match effect:
            case Send(to=to, message=message):
                if not isinstance(message, (Notification, *_ZAB_TYPES)):
                    raise TypeError(f"peer {sid} sent an unknown message {message!r}")
                if frozenset((sid, to)) in self.cuts:
                    return f"{line} [lost: cut]"
                if not isinstance(message, Notification) and frozenset((sid, to)) not in self.links:
                    return f"{line} [lost: no quorum connection]"
                if not self.peers[to].up:
                    return f"{line} [lost: {to} is down]"
                self.queue.append(Flight(src=sid, dst=to, payload=message))
            case SetTimer(name=name, delay_ms=delay):
                peer.timers[name] = delay
            case CancelTimer(name=name):
                peer.timers.pop(name, None)
            case Emit():
                _check_event(effect)
            case Decided() | ClientReply() | GoLooking():
                pass  # visible in the transcript; the next input is the transcript's call
            case ConnectLeader(leader=leader):
                if frozenset((sid, leader)) in self.cuts:
                    return f"{line} [lost: cut]"
                self.queue.append(Flight(src=sid, dst=leader, payload=Dial()))
            case CloseQuorum(peer=other):
                link = frozenset((sid, other))
                if link in self.links:
                    self.links.discard(link)
                    self._close(sid, other)
            case PersistAcceptedEpoch(epoch=epoch):
                disk.accepted_epoch = epoch
            case PersistCurrentEpoch(epoch=epoch):
                disk.current_epoch = epoch
            case AppendTxns(txns=txns, sync=sync):
                disk.log.extend(txns)
                if sync:
                    disk.fsynced = len(disk.log)
            case SyncLog():
                disk.fsynced = len(disk.log)
            case TruncateLog(zxid=zxid):
                disk.log = [t for t in disk.log if t.zxid <= zxid]
                disk.fsynced = min(disk.fsynced, len(disk.log))
            case WriteSnapshot(zxid=zxid, state=state):
                disk.snapshot_zxid, disk.snapshot_state = zxid, dict(state)
            case InstallSnapshot(zxid=zxid, state=state):
                disk.snapshot_zxid, disk.snapshot_state = zxid, dict(state)
                disk.log, disk.fsynced = [], 0
            case _:
                assert_never(effect)
        return line

    # -------------------------------------------------------------- views
    def _status(self, sid: int) -> str:
        peer = self.peers[sid]
        if not peer.up:
            return f"{sid}: down disk: {peer.disk.describe()}"
        election, replica = self._election(peer), self._replica(peer)
        if election.active or election.round:
            fle = f"{election.state} round={election.round} vote={fmt_vote(election.vote)}"
        else:
            fle = "idle"
        parts = [f"{sid}: election {fle}"]
        if replica.phase is not Phase.LOOKING:
            parts.append(f"zab {replica.server_state}/{replica.phase} leader={replica.leader}")
        store = (
            replica.accepted_epoch,
            replica.current_epoch,
            replica.last_zxid,
            replica.committed_zxid,
            dict(replica.state),
        )
        if store != (0, 0, 0, 0, {}):  # a fresh, empty peer: nothing worth a column
            parts.append(
                f"accepted_epoch={replica.accepted_epoch} current_epoch={replica.current_epoch} "
                f"last={fmt_zxid(replica.last_zxid)} committed={fmt_zxid(replica.committed_zxid)}"
                f" data={fmt_data(replica.state)}"
            )
        parts.append(f"timers={','.join(sorted(peer.timers)) or '-'}")
        return " | ".join(parts)


def _check_event(emit: Emit) -> None:
    """Every Emit is a peer event of the schema, carrying its required fields."""
    required = PEER_KINDS.get(emit.kind)
    if required is None:
        raise CommandError(f"core emitted an unknown event kind {emit.kind!r}")
    missing = [name for name in required if name not in emit.fields]
    if missing:
        raise CommandError(f"core emitted {emit.kind} without {missing}")


# ---------------------------------------------------------------------------- runner


def run(blocks: Sequence[Block], source: str) -> dict[int, list[str]]:
    """Run every case on one world; the actual output per case index."""
    world = World()
    outputs: dict[int, list[str]] = {}
    for index, block in enumerate(blocks):
        if not isinstance(block, Case):
            continue
        commands = block.commands
        if not commands:
            raise TranscriptError(source, block.line, "case has only comments, no command")
        out: list[str] = []
        for line, command in commands:
            try:
                lines = world.execute(command)
            except CommandError as exc:
                raise TranscriptError(source, line, f"{command!r}: {exc}") from None
            if len(commands) > 1:
                out.append(f"> {command}")
            out += lines or [NO_EFFECTS]
        outputs[index] = out
    return outputs


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """A transcript file's text as written and as produced by running it."""

    path: Path
    expected: str
    actual: str

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


def check_file(path: Path) -> Outcome:
    text = path.read_text(encoding="utf-8")
    blocks = parse(text, str(path))
    return Outcome(path=path, expected=text, actual=render(blocks, run(blocks, str(path))))
