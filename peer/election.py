"""Fast Leader Election (FLE) as a pure state machine: notifications in, effects out.

This module owns ZooKeeper's election rules (vote order, rounds, the termination
predicate, the finalize wait, joining an established ensemble, checkLeader) and the
planted election bugs. It must not do I/O, read a clock, draw randomness or log:
timers are `SetTimer` effects the adapter arms and calls back through `on_timer`,
messages are `Send` effects, protocol decisions are `Emit` effects.

Theory of operation
-------------------
A peer enters LOOKING with `start()`: its round (ZooKeeper's logicalclock,
`election_epoch`) goes up by one and it proposes itself, `(peer_epoch, last_zxid, sid)`.
`Vote`'s field order is FLE's total order, so "vote a beats vote b" is `a > b`.
The proposal is sent to every other member; the vote for itself is recorded directly
in `recv` (ZooKeeper sends it to itself over a loopback queue; we skip the trip).

Every notification from a LOOKING voter is judged by its round:
  * higher round: everything received so far is stale. Adopt the round, clear `recv`,
    propose the better of the sender's vote and my *initial* vote (not my current one:
    what I adopted in an older round may come from a peer that has since moved on),
    and re-send.
  * lower round: the sender is behind. It is not counted; I answer it with my vote so
    it catches up (it will then adopt my round).
  * same round: adopt the sender's vote if it beats mine, and re-send.
The sender's vote goes to `recv[sender]`. When a quorum of voters in `recv` holds
exactly my proposal, I do not decide at once: a better vote may still be in flight.
The finalize timer (`finalize_wait_ms`) is armed; anything that changes my proposal or
round cancels it, and its expiry decides: LEADING if the proposal names me, otherwise
FOLLOWING (OBSERVING for an observer).

Notifications from FOLLOWING/LEADING voters are answers from an ensemble that has
already decided. They are never adopted. They go to `out_of_election` (always) and to
`recv` (when in my round). I join their leader at once, without a finalize wait, when
a quorum of either map agrees on (leader, peer_epoch) *and* checkLeader holds: I hold a
LEADING notification from that leader itself, or the leader is me and the round
matches. The second half stops a peer from leading on the strength of stale
FOLLOWING votes from an older round (ZOOKEEPER-1514, planted as `no-round-check`).

A decided peer keeps answering LOOKING members with its decided vote and state, so a
restarted peer learns the leader without a new election. A notification timer
re-sends the proposal while LOOKING, backing off from `min_notification_ms` doubling to
`max_notification_ms`: the only way a dropped notification is ever repaired.

Observers: an observer runs the same loop but never proposes itself (its initial
vote is a sentinel that loses to every real vote, like ZooKeeper's Long.MIN_VALUE)
and never counts. Voters answer observers; observers answer nobody, because their
vote carries no information and two peers that always answer each other would
exchange notifications forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import assert_never

from peer.domain import Bug, Role, ServerState, Timing, Vote, quorum_size
from peer.effects import CancelTimer, Decided, Emit, Send, SetTimer
from peer.errors import PeerError
from peer.messages import Notification

NOTIFICATION_TIMER = "election.notification"
FINALIZE_TIMER = "election.finalize"

Effect = Send | SetTimer | CancelTimer | Emit | Decided

# An observer's proposal: loses to any real vote, so the observer adopts the first
# voter's vote it hears (ZooKeeper uses Long.MIN_VALUE for sid, zxid and epoch).
OBSERVER_VOTE = Vote(peer_epoch=-1, zxid=-1, leader=-1)


class ElectionError(PeerError):
    """The election core was misused by its adapter (bad config, unknown timer)."""

    def __init__(self, sid: int, why: str) -> None:
        super().__init__(f"election of sid {sid}: {why}")
        self.sid = sid
        self.why = why


@dataclass(frozen=True, slots=True, kw_only=True)
class _Ballot:
    """A received vote with the round and state it was sent in."""

    vote: Vote
    round: int
    state: ServerState


def beats(new: Vote, current: Vote, bug: Bug | None = None) -> bool:
    """FLE's totalOrderPredicate: does `new` win over `current`?

    Correct: lexicographic on (peer_epoch, zxid, leader), i.e. `new > current`.
    Under `Bug.ORDER_IGNORES_EPOCH` the pre-ZOOKEEPER-1419 predicate: the sid
    tie-break only requires equal zxids, not equal epochs, so a vote with a lower
    epoch but a higher sid can win, and two peers can each prefer the other's vote.
    """
    if bug is Bug.ORDER_IGNORES_EPOCH:
        return (
            new.peer_epoch > current.peer_epoch
            or (new.peer_epoch == current.peer_epoch and new.zxid > current.zxid)
            or (new.zxid == current.zxid and new.leader > current.leader)
        )
    return new > current


class Election:
    """One peer's FLE state machine. Feed it `start`, `receive`, `on_timer`, `stop`;
    perform the returned effects in order."""

    def __init__(
        self,
        *,
        sid: int,
        roles: Mapping[int, Role],
        timing: Timing,
        bug: Bug | None = None,
    ) -> None:
        if sid not in roles:
            raise ElectionError(sid, f"not a member of the ensemble {sorted(roles)}")
        voters = frozenset(member for member, role in roles.items() if role is Role.VOTER)
        if not voters:
            raise ElectionError(sid, "the ensemble has no voters")
        for member, role in roles.items():
            if not isinstance(role, Role):
                raise ElectionError(sid, f"member {member} has role {role!r}, not a Role")
        self._sid = sid
        self._roles: dict[int, Role] = dict(roles)
        self._voters = voters
        self._is_voter = sid in voters
        self._others = tuple(sorted(member for member in roles if member != sid))
        self._quorum = quorum_size(len(voters), bug)
        self._timing = timing
        self._bug = bug

        self._active = False  # between start() and stop()
        self._state = ServerState.LOOKING
        self._round = 0
        self._initial = self._own_vote(peer_epoch=0, zxid=0)
        self._proposal = self._initial
        self._recv: dict[int, _Ballot] = {}
        self._out_of_election: dict[int, _Ballot] = {}
        self._not_timeout = timing.min_notification_ms
        # (proposal, round) the armed finalize timer would decide, or None.
        self._finalizing: tuple[Vote, int] | None = None

    # -- read-only view -------------------------------------------------------------

    @property
    def sid(self) -> int:
        return self._sid

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def round(self) -> int:
        return self._round

    @property
    def vote(self) -> Vote:
        """The current proposal while LOOKING, the decided vote afterwards."""
        return self._proposal

    @property
    def active(self) -> bool:
        return self._active

    @property
    def notification_timeout_ms(self) -> int:
        """The delay the notification timer will be armed with next."""
        return self._not_timeout

    # -- inputs ---------------------------------------------------------------------

    def start(self, *, peer_epoch: int, last_zxid: int, committed_zxid: int) -> list[Effect]:
        """Enter LOOKING in a new round, proposing myself."""
        if peer_epoch < 0 or last_zxid < 0 or committed_zxid < 0:
            raise ElectionError(
                self._sid,
                f"start with negative peer_epoch={peer_epoch} last_zxid={last_zxid} "
                f"committed_zxid={committed_zxid}",
            )
        effects: list[Effect] = []
        if self._finalizing is not None:
            effects.append(CancelTimer(name=FINALIZE_TIMER))
            self._finalizing = None
        # The planted bug votes with what is committed, forgetting logged-but-uncommitted
        # txns a new leader must keep.
        zxid = committed_zxid if self._bug is Bug.VOTE_COMMITTED_ZXID else last_zxid
        self._active = True
        self._state = ServerState.LOOKING
        self._round += 1
        self._initial = self._own_vote(peer_epoch=peer_epoch, zxid=zxid)
        self._recv.clear()
        self._out_of_election.clear()
        self._not_timeout = self._timing.min_notification_ms
        effects.append(self._state_event())
        effects.extend(self._propose(self._initial))
        effects.append(SetTimer(name=NOTIFICATION_TIMER, delay_ms=self._not_timeout))
        return effects

    def receive(self, n: Notification) -> list[Effect]:
        """Handle one notification from a peer."""
        role = self._roles.get(n.sender)
        if role is None:
            return [_ignored(n.sender, f"sid {n.sender} is not a member")]
        if n.sender == self._sid:
            return [_ignored(n.sender, "notification claims to come from myself")]
        if not self._active:
            return [_ignored(n.sender, "not in an election (not started or stopped)")]
        match role:
            case Role.OBSERVER:
                # Observers never count. A voter answers them so they learn the vote;
                # an observer answers nobody (see the module docstring).
                return [self._answer(n.sender)] if self._is_voter else []
            case Role.VOTER:
                pass
            case _:
                assert_never(role)
        if n.vote.leader not in self._voters:
            return [_ignored(n.sender, f"vote for {n.vote.leader}, who is not a voter")]
        if self._state is not ServerState.LOOKING:
            # Decided: an established ensemble answers a LOOKING peer with its leader.
            if n.state is ServerState.LOOKING and self._is_voter:
                return [self._answer(n.sender)]
            return []
        match n.state:
            case ServerState.LOOKING:
                return self._from_looking(n)
            case ServerState.FOLLOWING | ServerState.LEADING:
                return self._from_decided(n)
            case ServerState.OBSERVING:
                # Only observers observe, and a voter claiming it is confused: not counted.
                return [_ignored(n.sender, "voter in state OBSERVING")]
            case _:
                assert_never(n.state)

    def on_timer(self, name: str) -> list[Effect]:
        """A timer this core armed has fired."""
        if name == NOTIFICATION_TIMER:
            return self._on_notification_timeout()
        if name == FINALIZE_TIMER:
            return self._on_finalize()
        raise ElectionError(self._sid, f"unknown timer {name!r}")

    def stop(self) -> list[Effect]:
        """Leave the election (shutting down, or the role ended): cancel timers."""
        self._active = False
        self._finalizing = None
        return [CancelTimer(name=NOTIFICATION_TIMER), CancelTimer(name=FINALIZE_TIMER)]

    # -- LOOKING sender -------------------------------------------------------------

    def _from_looking(self, n: Notification) -> list[Effect]:
        effects: list[Effect] = []
        if n.round > self._round:
            self._round = n.round
            self._recv.clear()
            best = n.vote if beats(n.vote, self._initial, self._bug) else self._initial
            effects.extend(self._propose(best))
        elif n.round < self._round:
            # Not counted; answered so the sender catches up with my round. Observers
            # stay silent: their answer would be worthless.
            return [self._answer(n.sender)] if self._is_voter else []
        elif beats(n.vote, self._proposal, self._bug):
            effects.extend(self._propose(n.vote))
        self._recv[n.sender] = _Ballot(vote=n.vote, round=n.round, state=n.state)
        effects.extend(self._check_finalize())
        return effects

    def _check_finalize(self) -> list[Effect]:
        """Arm (or keep, or cancel) the finalize wait for the current proposal."""
        target = (self._proposal, self._round)
        effects: list[Effect] = []
        if self._finalizing is not None and self._finalizing != target:
            # A better vote or a newer round arrived during the wait: no decision.
            effects.append(CancelTimer(name=FINALIZE_TIMER))
            self._finalizing = None
        if self._finalizing is None and self._count(self._recv, self._proposal) >= self._quorum:
            self._finalizing = target
            effects.append(SetTimer(name=FINALIZE_TIMER, delay_ms=self._timing.finalize_wait_ms))
        return effects

    def _on_finalize(self) -> list[Effect]:
        if self._finalizing != (self._proposal, self._round) or not self._active:
            return []  # stale expiry: the wait was cancelled after the adapter fired it
        self._finalizing = None
        if self._state is not ServerState.LOOKING:
            return []
        if self._count(self._recv, self._proposal) < self._quorum:
            return []
        return self._decide(self._proposal)

    # -- FOLLOWING / LEADING sender -------------------------------------------------

    def _from_decided(self, n: Notification) -> list[Effect]:
        ballot = _Ballot(vote=n.vote, round=n.round, state=n.state)
        if n.round == self._round:
            self._recv[n.sender] = ballot
            if self._agreed(self._recv, n.vote) and self._check_leader(n.vote.leader, n.round):
                return self._decide(n.vote)
        self._out_of_election[n.sender] = ballot
        if self._agreed(self._out_of_election, n.vote) and self._check_leader(
            n.vote.leader, n.round
        ):
            # The ensemble settled in another round: join it in its round.
            self._round = n.round
            return self._decide(n.vote)
        # recv may now hold a quorum for my own proposal (answers agree with me).
        return self._check_finalize()

    def _agreed(self, votes: Mapping[int, _Ballot], vote: Vote) -> bool:
        """A quorum of voters in `votes` names the same (leader, peer_epoch) as `vote`."""
        count = sum(
            1
            for sid, ballot in votes.items()
            if sid in self._voters
            and ballot.vote.leader == vote.leader
            and ballot.vote.peer_epoch == vote.peer_epoch
        )
        return count >= self._quorum

    def _check_leader(self, leader: int, round_: int) -> bool:
        """ZooKeeper's checkLeader: never follow a leader that has not said it leads."""
        if leader != self._sid:
            ballot = self._out_of_election.get(leader)
            return ballot is not None and ballot.state is ServerState.LEADING
        if self._bug is Bug.NO_ROUND_CHECK:
            return True
        return round_ == self._round

    # -- notification timer ---------------------------------------------------------

    def _on_notification_timeout(self) -> list[Effect]:
        if not self._active or self._state is not ServerState.LOOKING:
            return []
        # Re-send to everyone, not only the silent: a peer I heard from may have missed
        # my latest proposal, and nobody answers a same-round vote that does not win.
        effects = self._to_others()
        self._not_timeout = min(self._not_timeout * 2, self._timing.max_notification_ms)
        effects.append(SetTimer(name=NOTIFICATION_TIMER, delay_ms=self._not_timeout))
        return effects

    # -- helpers --------------------------------------------------------------------

    def _own_vote(self, *, peer_epoch: int, zxid: int) -> Vote:
        if not self._is_voter:
            return OBSERVER_VOTE
        return Vote(peer_epoch=peer_epoch, zxid=zxid, leader=self._sid)

    def _propose(self, vote: Vote) -> list[Effect]:
        """Make `vote` my proposal, record it as my own vote and send it to all."""
        self._proposal = vote
        if self._is_voter:
            self._recv[self._sid] = _Ballot(vote=vote, round=self._round, state=self._state)
        return self._to_others()

    def _count(self, votes: Mapping[int, _Ballot], vote: Vote) -> int:
        return sum(
            1
            for sid, ballot in votes.items()
            if sid in self._voters and ballot.vote == vote and ballot.round == self._round
        )

    def _notification(self, to: int) -> Send:
        return Send(to=to, message=self._current_notification())

    def _to_others(self) -> list[Effect]:
        # One immutable Notification serves every peer (a vote storm sends many).
        message = self._current_notification()
        return [Send(to=to, message=message) for to in self._others]

    def _current_notification(self) -> Notification:
        return Notification(
            sender=self._sid, state=self._state, vote=self._proposal, round=self._round
        )

    def _answer(self, to: int) -> Send:
        return self._notification(to)

    def _decide(self, vote: Vote) -> list[Effect]:
        self._proposal = vote
        if not self._is_voter:
            self._state = ServerState.OBSERVING
        elif vote.leader == self._sid:
            self._state = ServerState.LEADING
        else:
            self._state = ServerState.FOLLOWING
        effects: list[Effect] = [CancelTimer(name=NOTIFICATION_TIMER)]
        if self._finalizing is not None:
            effects.append(CancelTimer(name=FINALIZE_TIMER))
            self._finalizing = None
        effects.append(
            Emit(
                kind="decided",
                fields={
                    "leader": vote.leader,
                    "round": self._round,
                    "peer_epoch": vote.peer_epoch,
                    "state": str(self._state),
                    "zxid": vote.zxid,
                },
            )
        )
        effects.append(self._state_event())
        effects.append(Decided(state=self._state, vote=vote, round=self._round))
        return effects

    def _state_event(self) -> Emit:
        fields: dict[str, object] = {"state": str(self._state), "round": self._round}
        if self._state is not ServerState.LOOKING:
            fields["leader"] = self._proposal.leader
            fields["peer_epoch"] = self._proposal.peer_epoch
        return Emit(kind="state", fields=fields)


def _ignored(sender: int, why: str) -> Emit:
    return Emit(kind="vote_ignored", fields={"from": sender, "why": why})
