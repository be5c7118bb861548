"""Support for the election tests (no tests here): a deterministic message pump over cores.

Messages sit in an in-flight list until the test delivers or drops them (FIFO per
link, like the one TCP connection per pair of peers); timers are a
set of armed names per core that the test fires by hand. Every Emit is checked against
the event schema as it is produced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from harness.events import PEER_KINDS
from peer.domain import FAST, Bug, Role, ServerState, Timing, Vote
from peer.effects import CancelTimer, Decided, Emit, Send, SetTimer
from peer.election import Effect, Election
from peer.messages import Notification


def check_event(effect: Emit) -> None:
    """An Emit must be a peer event kind carrying every required field."""
    required = PEER_KINDS.get(effect.kind)
    assert required is not None, f"unknown event kind {effect.kind!r}"
    missing = [name for name in required if name not in effect.fields]
    assert not missing, f"{effect.kind} lacks {missing}"
    assert effect.kind not in ("vote_sent", "vote_recv"), "the adapter logs those"


@dataclass
class Net:
    roles: Mapping[int, Role]
    timing: Timing = FAST
    bug: Bug | None = None
    cores: dict[int, Election] = field(default_factory=dict)
    started: set[int] = field(default_factory=set)
    in_flight: list[tuple[int, Notification]] = field(default_factory=list)
    timers: dict[int, set[str]] = field(default_factory=dict)
    decisions: list[tuple[int, Decided]] = field(default_factory=list)
    events: list[tuple[int, Emit]] = field(default_factory=list)
    delivered: int = 0
    trace: list[str] = field(default_factory=list)  # what happened, for failure messages

    def __post_init__(self) -> None:
        for sid in self.roles:
            self.fresh(sid)

    def fresh(self, sid: int) -> None:
        """A new core for `sid`, as after a process restart (round back to 0)."""
        self.cores[sid] = Election(sid=sid, roles=self.roles, timing=self.timing, bug=self.bug)
        self.timers[sid] = set()
        self.started.discard(sid)

    def apply(self, sid: int, effects: Iterable[Effect]) -> None:
        for effect in effects:
            match effect:
                case Send(to=to, message=message):
                    assert to != sid, "a core never sends to itself"
                    assert isinstance(message, Notification)
                    self.in_flight.append((to, message))
                case SetTimer(name=name):
                    self.timers[sid].add(name)
                case CancelTimer(name=name):
                    self.timers[sid].discard(name)
                case Emit():
                    check_event(effect)
                    self.events.append((sid, effect))
                case Decided():
                    self.decisions.append((sid, effect))
                    self.trace.append(
                        f"  {sid} decided {effect.state} {effect.vote} r{effect.round}"
                    )

    def start(self, sid: int, *, peer_epoch: int = 0, zxid: int = 0) -> None:
        self.trace.append(f"start {sid} epoch={peer_epoch} zxid={zxid}")
        self.started.add(sid)
        self.apply(
            sid, self.cores[sid].start(peer_epoch=peer_epoch, last_zxid=zxid, committed_zxid=zxid)
        )

    def reelect(self, sid: int, *, peer_epoch: int = 0, zxid: int = 0) -> None:
        """The node's role ended: stop, then a new election round on the same core."""
        self.apply(sid, self.cores[sid].stop())
        self.start(sid, peer_epoch=peer_epoch, zxid=zxid)

    def deliver(self, index: int = 0) -> None:
        """Deliver the oldest message on the link of `in_flight[index]`: links are FIFO
        (one TCP connection per pair of peers), only different links interleave."""
        to, message = self.in_flight[index]
        index = next(
            i for i, (t, m) in enumerate(self.in_flight) if t == to and m.sender == message.sender
        )
        to, message = self.in_flight.pop(index)
        self.delivered += 1
        self.trace.append(
            f"deliver {message.sender}->{to} {message.state} {message.vote} r{message.round}"
            + ("" if to in self.started else " (lost: not running)")
        )
        if to in self.started:  # a peer that is not running loses the message
            self.apply(to, self.cores[to].receive(message))

    def drop(self, index: int) -> None:
        to, message = self.in_flight.pop(index)
        self.trace.append(f"drop {message.sender}->{to}")

    def fire(self, sid: int, name: str) -> None:
        self.trace.append(f"fire {sid} {name}")
        self.timers[sid].discard(name)
        self.apply(sid, self.cores[sid].on_timer(name))

    def settle(self, limit: int = 10_000) -> None:
        """Deliver in FIFO order until nothing is in flight."""
        for _ in range(limit):
            if not self.in_flight:
                return
            self.deliver(0)
        raise AssertionError(f"not quiescent after {limit} deliveries")

    def armed(self, name: str) -> list[int]:
        return sorted(sid for sid, names in self.timers.items() if name in names)

    def state(self, sid: int) -> ServerState:
        return self.cores[sid].state

    def vote(self, sid: int) -> Vote:
        return self.cores[sid].vote


def voters(n: int) -> dict[int, Role]:
    return {sid: Role.VOTER for sid in range(1, n + 1)}
