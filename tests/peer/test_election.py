"""Unit tests of the FLE core: each rule of SPEC section 1, driven without sockets."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peer.domain import FAST, Bug, Role, ServerState, Timing, Vote
from peer.effects import CancelTimer, Decided, Emit, Send, SetTimer
from peer.election import (
    FINALIZE_TIMER,
    NOTIFICATION_TIMER,
    OBSERVER_VOTE,
    Effect,
    Election,
    ElectionError,
    beats,
)
from peer.messages import Notification
from tests.peer.test_election_support import check_event, voters

L, F = ServerState.LOOKING, ServerState.FOLLOWING


def v(leader: int, *, epoch: int = 0, zxid: int = 0) -> Vote:
    return Vote(peer_epoch=epoch, zxid=zxid, leader=leader)


def note(
    sender: int, leader: int, *, rnd: int = 1, state: ServerState = L, epoch: int = 0, zxid: int = 0
) -> Notification:
    return Notification(
        sender=sender, state=state, vote=v(leader, epoch=epoch, zxid=zxid), round=rnd
    )


def core(
    sid: int,
    n: int = 5,
    *,
    observers: Sequence[int] = (),
    bug: Bug | None = None,
    timing: Timing = FAST,
) -> Election:
    roles = voters(n) | {o: Role.OBSERVER for o in observers}
    return Election(sid=sid, roles=roles, timing=timing, bug=bug)


def started(
    sid: int, n: int = 5, *, observers: Sequence[int] = (), bug: Bug | None = None
) -> Election:
    e = core(sid, n, observers=observers, bug=bug)
    e.start(peer_epoch=0, last_zxid=0, committed_zxid=0)
    return e


def sends(effects: Sequence[Effect]) -> list[tuple[int, Notification]]:
    return [(e.to, e.message) for e in effects if isinstance(e, Send)]


def targets(effects: Sequence[Effect]) -> list[int]:
    return [to for to, _ in sends(effects)]


def timers_set(effects: Sequence[Effect]) -> list[tuple[str, int]]:
    return [(e.name, e.delay_ms) for e in effects if isinstance(e, SetTimer)]


def cancelled(effects: Sequence[Effect]) -> list[str]:
    return [e.name for e in effects if isinstance(e, CancelTimer)]


def emits(effects: Sequence[Effect], kind: str) -> list[Emit]:
    found = [e for e in effects if isinstance(e, Emit) and e.kind == kind]
    for e in found:
        check_event(e)
    return found


def decided(effects: Sequence[Effect]) -> Decided | None:
    found = [e for e in effects if isinstance(e, Decided)]
    assert len(found) <= 1
    return found[0] if found else None


# -- vote order ---------------------------------------------------------------------


votes = st.builds(
    Vote,
    peer_epoch=st.integers(0, 3),
    zxid=st.integers(0, 3),
    leader=st.integers(1, 4),
)


@given(votes, votes, votes)
def test_vote_order_is_a_strict_total_order(a: Vote, b: Vote, c: Vote) -> None:
    assert not beats(a, a)
    if a != b:
        assert beats(a, b) != beats(b, a)
    if beats(a, b) and beats(b, c):
        assert beats(a, c)
    expected = (a.peer_epoch, a.zxid, a.leader) > (b.peer_epoch, b.zxid, b.leader)
    assert beats(a, b) == expected


def test_vote_order_epoch_then_zxid_then_sid() -> None:
    assert beats(v(1, epoch=2), v(9, epoch=1, zxid=99))
    assert beats(v(1, zxid=5), v(9, zxid=4))
    assert beats(v(3), v(2))


def test_zookeeper_1419_predicate_is_not_antisymmetric() -> None:
    # Higher epoch, lower sid vs lower epoch, higher sid, equal zxid: under the bug
    # each beats the other, so peers can adopt each other's vote forever.
    high_epoch, high_sid = v(1, epoch=1), v(2, epoch=0)
    assert beats(high_epoch, high_sid) and not beats(high_sid, high_epoch)
    bug = Bug.ORDER_IGNORES_EPOCH
    assert beats(high_epoch, high_sid, bug) and beats(high_sid, high_epoch, bug)
    # Where it is not confused it agrees with the correct order.
    assert beats(v(1, epoch=0, zxid=2), v(2, epoch=0, zxid=1), bug)
    assert not beats(v(1), v(2), bug)


# -- start --------------------------------------------------------------------------


def test_start_proposes_self_to_every_other_member_and_arms_the_timer() -> None:
    e = core(2, 3, observers=[4])
    effects = e.start(peer_epoch=3, last_zxid=7, committed_zxid=5)
    assert e.state is L and e.round == 1
    assert e.vote == v(2, epoch=3, zxid=7)
    [state] = emits(effects, "state")
    assert state.fields == {"state": "LOOKING", "round": 1}
    assert targets(effects) == [1, 3, 4]  # voters and observers, never myself
    assert all(
        m == Notification(sender=2, state=L, vote=e.vote, round=1) for _, m in sends(effects)
    )
    assert timers_set(effects) == [(NOTIFICATION_TIMER, FAST.min_notification_ms)]
    assert e.start(peer_epoch=3, last_zxid=7, committed_zxid=5) and e.round == 2


def test_vote_committed_zxid_bug_proposes_the_committed_zxid() -> None:
    e = core(2, 3, bug=Bug.VOTE_COMMITTED_ZXID)
    e.start(peer_epoch=3, last_zxid=7, committed_zxid=5)
    assert e.vote == v(2, epoch=3, zxid=5)


# -- rounds -------------------------------------------------------------------------


def test_same_round_better_vote_is_adopted_and_resent() -> None:
    e = started(3)
    effects = e.receive(note(5, 5))
    assert e.vote == v(5)
    assert targets(effects) == [1, 2, 4, 5]
    assert all(m.vote == v(5) and m.round == 1 for _, m in sends(effects))


def test_same_round_worse_vote_is_recorded_but_not_answered() -> None:
    e = started(3, 3)
    assert e.receive(note(1, 1)) == []
    assert e.vote == v(3)
    # recorded: once 2 also says 3, the two of {2, 3} are a quorum of 3 for my vote
    assert timers_set(e.receive(note(2, 3))) == [(FINALIZE_TIMER, FAST.finalize_wait_ms)]


def test_higher_round_adopts_round_clears_recv_and_prefers_my_initial_vote() -> None:
    e = started(3)
    e.receive(note(5, 5))  # adopted in round 1
    e.receive(note(4, 5))
    assert e.vote == v(5)
    effects = e.receive(note(1, 1, rnd=4))
    # better of the sender's vote (1) and my *initial* vote (3), not of my current (5)
    assert (e.round, e.vote) == (4, v(3))
    assert targets(effects) == [1, 2, 4, 5]
    assert all(m.round == 4 and m.vote == v(3) for _, m in sends(effects))
    # recv was cleared: round-1 votes for 5 no longer count. Votes for 3 from 2 and 4
    # plus mine make the quorum; without the clear, 4's old vote would still say 5.
    assert not timers_set(e.receive(note(2, 3, rnd=4)))
    assert timers_set(e.receive(note(4, 3, rnd=4))) == [(FINALIZE_TIMER, 200)]


def test_higher_round_with_a_better_vote_adopts_it() -> None:
    e = started(3)
    e.receive(note(4, 4, rnd=2))
    assert (e.round, e.vote) == (2, v(4))


def test_lower_round_is_answered_not_counted() -> None:
    e = started(3, 3)
    e.start(peer_epoch=0, last_zxid=0, committed_zxid=0)  # round 2
    effects = e.receive(note(1, 3, rnd=1))
    assert sends(effects) == [(1, Notification(sender=3, state=L, vote=v(3), round=2))]
    assert not timers_set(effects)  # 1's vote for me was not counted
    assert timers_set(e.receive(note(1, 3, rnd=2))) == [(FINALIZE_TIMER, 200)]


# -- finalize -----------------------------------------------------------------------


def test_quorum_then_finalize_decides() -> None:
    e = started(3)
    assert not timers_set(e.receive(note(1, 3)))
    assert timers_set(e.receive(note(2, 3))) == [(FINALIZE_TIMER, 200)]
    assert e.state is L  # not yet: a better vote may be in flight
    effects = e.on_timer(FINALIZE_TIMER)
    assert decided(effects) == Decided(state=ServerState.LEADING, vote=v(3), round=1)
    [event] = emits(effects, "decided")
    assert event.fields == {
        "leader": 3,
        "round": 1,
        "peer_epoch": 0,
        "state": "LEADING",
        "zxid": 0,
    }
    [state] = emits(effects, "state")
    assert state.fields == {"state": "LEADING", "round": 1, "leader": 3, "peer_epoch": 0}
    assert NOTIFICATION_TIMER in cancelled(effects)
    assert e.state is ServerState.LEADING


def test_follower_decides_following() -> None:
    e = started(1, 3)
    e.receive(note(2, 2))
    e.receive(note(3, 2))
    assert decided(e.on_timer(FINALIZE_TIMER)) == Decided(state=F, vote=v(2), round=1)


def test_better_vote_during_finalize_wait_cancels_the_decision() -> None:
    e = started(3)
    e.receive(note(1, 3))
    e.receive(note(2, 3))
    effects = e.receive(note(4, 4))
    assert FINALIZE_TIMER in cancelled(effects)
    assert e.vote == v(4) and targets(effects) == [1, 2, 4, 5]
    # if the adapter fired the old timer anyway, nothing is decided
    assert e.on_timer(FINALIZE_TIMER) == []
    assert e.state is L
    # 4 (its own vote), 3 (me) and now 1 are a quorum for 4
    assert timers_set(e.receive(note(1, 4))) == [(FINALIZE_TIMER, 200)]
    assert decided(e.on_timer(FINALIZE_TIMER)) == Decided(state=F, vote=v(4), round=1)


def test_worse_vote_during_finalize_wait_keeps_it() -> None:
    e = started(3)
    e.receive(note(1, 3))
    e.receive(note(2, 3))
    assert e.receive(note(4, 2)) == []  # no cancel, no re-arm
    assert decided(e.on_timer(FINALIZE_TIMER)) is not None


# -- joining an established ensemble ------------------------------------------------


def test_join_via_out_of_election_in_another_round() -> None:
    e = started(5)  # round 1; the ensemble decided leader 3 in round 7
    assert decided(e.receive(note(1, 3, rnd=7, state=F))) is None
    assert decided(e.receive(note(2, 3, rnd=7, state=F))) is None
    effects = e.receive(note(3, 3, rnd=7, state=ServerState.LEADING))
    assert decided(effects) == Decided(state=F, vote=v(3), round=7)
    assert e.round == 7 and e.vote == v(3)
    assert emits(effects, "decided")[0].fields["round"] == 7


def test_no_join_without_the_leaders_own_leading_vote() -> None:
    e = started(5)
    for sender in (1, 2, 4):
        assert decided(e.receive(note(sender, 3, rnd=7, state=F))) is None
    assert e.state is L  # checkLeader: 3 never said it leads


def test_join_in_the_same_round_via_recv() -> None:
    e = started(5)
    e.receive(note(3, 3, state=ServerState.LEADING))
    e.receive(note(1, 3, state=F))
    effects = e.receive(note(2, 3, state=F))
    assert decided(effects) == Decided(state=F, vote=v(3), round=1)


def test_decided_votes_are_never_adopted() -> None:
    e = started(3)
    assert e.receive(note(5, 5, rnd=9, state=F)) == []
    assert (e.round, e.vote) == (1, v(3))


def test_check_leader_for_myself_requires_my_round() -> None:
    # Peer 3 restarted (round 1) while 1, 2, 4 still follow the old 3 of round 5.
    e = started(3)
    for sender in (1, 2, 4):
        assert decided(e.receive(note(sender, 3, rnd=5, state=F))) is None
    assert e.state is L


def test_check_leader_for_myself_in_my_round_leads() -> None:
    e = started(3)
    e.receive(note(1, 3, state=F))
    effects = e.receive(note(2, 3, state=F))
    assert decided(effects) == Decided(state=ServerState.LEADING, vote=v(3), round=1)


def test_zookeeper_1514_no_round_check_leads_on_stale_votes() -> None:
    e = started(3, bug=Bug.NO_ROUND_CHECK)
    e.receive(note(1, 3, rnd=5, state=F))
    e.receive(note(2, 3, rnd=5, state=F))
    effects = e.receive(note(4, 3, rnd=5, state=F))
    assert decided(effects) == Decided(state=ServerState.LEADING, vote=v(3), round=5)


# -- decided peers answer -----------------------------------------------------------


def test_decided_peer_answers_looking_members_with_its_decision() -> None:
    e = started(1, 3)
    e.receive(note(2, 3))
    e.receive(note(3, 3))
    e.on_timer(FINALIZE_TIMER)
    assert e.state is F
    effects = e.receive(note(2, 2, rnd=9))
    assert sends(effects) == [(2, Notification(sender=1, state=F, vote=v(3), round=1))]
    assert (e.round, e.vote, e.state) == (1, v(3), F)
    assert e.receive(note(3, 3, state=ServerState.LEADING)) == []


# -- observers ----------------------------------------------------------------------


def test_observer_senders_are_answered_never_counted() -> None:
    e = started(1, 3, observers=[4])
    effects = e.receive(note(4, 1))
    assert sends(effects) == [(4, Notification(sender=1, state=L, vote=v(1), round=1))]
    assert not timers_set(effects)  # 4 voting for me does not make a quorum with me
    assert e.state is L


def test_observer_never_proposes_itself_and_ends_observing() -> None:
    e = core(4, 3, observers=[4])
    effects = e.start(peer_epoch=9, last_zxid=99, committed_zxid=99)
    assert e.vote == OBSERVER_VOTE
    assert targets(effects) == [1, 2, 3]
    adopt = e.receive(note(1, 1))
    assert e.vote == v(1) and targets(adopt) == [1, 2, 3]
    assert not timers_set(adopt)  # the observer's own vote never counts
    assert timers_set(e.receive(note(2, 1))) == [(FINALIZE_TIMER, 200)]
    effects = e.on_timer(FINALIZE_TIMER)
    assert decided(effects) == Decided(state=ServerState.OBSERVING, vote=v(1), round=1)
    assert emits(effects, "decided")[0].fields["state"] == "OBSERVING"


def test_observer_answers_nobody() -> None:
    e = core(4, 3, observers=[4, 5])
    e.start(peer_epoch=0, last_zxid=0, committed_zxid=0)
    e.start(peer_epoch=0, last_zxid=0, committed_zxid=0)  # round 2
    assert e.receive(note(1, 1, rnd=1)) == []  # lower round: no answer
    assert e.receive(note(5, 1, rnd=2)) == []  # another observer


# -- non-members and bad votes ------------------------------------------------------


def test_non_members_are_ignored_and_logged() -> None:
    e = started(1, 3)
    effects = e.receive(note(9, 9, rnd=5))
    assert len(effects) == 1
    [event] = emits(effects, "vote_ignored")
    assert event.fields["from"] == 9 and "not a member" in event.fields["why"]
    assert (e.round, e.vote) == (1, v(1))


def test_votes_for_non_voters_are_ignored() -> None:
    e = started(1, 3, observers=[4])
    [event] = emits(e.receive(note(2, 4)), "vote_ignored")
    assert event.fields["from"] == 2 and "4" in event.fields["why"]
    assert e.vote == v(1)


# -- notification timer ---------------------------------------------------------------


def test_notification_backoff_doubles_up_to_the_cap() -> None:
    timing = Timing(min_notification_ms=100, max_notification_ms=1000)
    e = core(1, 3, observers=[4], timing=timing)
    assert timers_set(e.start(peer_epoch=0, last_zxid=0, committed_zxid=0)) == [
        (NOTIFICATION_TIMER, 100)
    ]
    delays = []
    for _ in range(6):
        effects = e.on_timer(NOTIFICATION_TIMER)
        assert targets(effects) == [2, 3, 4]  # re-sent to every other member
        assert all(m.vote == v(1) and m.round == 1 for _, m in sends(effects))
        [(name, delay)] = timers_set(effects)
        assert name == NOTIFICATION_TIMER
        delays.append(delay)
    assert delays == [200, 400, 800, 1000, 1000, 1000]
    # a new election starts the backoff over
    assert timers_set(e.start(peer_epoch=0, last_zxid=0, committed_zxid=0)) == [
        (NOTIFICATION_TIMER, 100)
    ]


def test_notification_timer_after_decision_does_nothing() -> None:
    e = started(3, 3)
    e.receive(note(1, 3))
    e.on_timer(FINALIZE_TIMER)
    assert e.on_timer(NOTIFICATION_TIMER) == []


# -- planted minority quorum ----------------------------------------------------------


def test_minority_quorum_bug_decides_with_n_over_2() -> None:
    correct, buggy = started(3), started(3, bug=Bug.MINORITY_QUORUM)
    for e in (correct, buggy):
        e.receive(note(2, 3))  # 2 of 5 for 3: me and 2
    assert correct.on_timer(FINALIZE_TIMER) == [] and correct.state is L
    assert decided(buggy.on_timer(FINALIZE_TIMER)) == Decided(
        state=ServerState.LEADING, vote=v(3), round=1
    )


# -- lifecycle and misuse -----------------------------------------------------------


def test_stop_cancels_timers_and_leaves_the_election() -> None:
    e = started(1, 3)
    e.receive(note(2, 3))
    e.receive(note(3, 3))
    effects = e.stop()
    assert set(cancelled(effects)) == {NOTIFICATION_TIMER, FINALIZE_TIMER}
    assert e.on_timer(FINALIZE_TIMER) == [] and e.state is L
    [event] = emits(e.receive(note(2, 3)), "vote_ignored")
    assert "not in an election" in event.fields["why"]


def test_misuse_is_a_clear_error() -> None:
    with pytest.raises(ElectionError, match="sid 7: not a member"):
        Election(sid=7, roles=voters(3), timing=FAST)
    with pytest.raises(ElectionError, match="no voters"):
        Election(sid=1, roles={1: Role.OBSERVER}, timing=FAST)
    with pytest.raises(ElectionError, match="unknown timer 'bogus'"):
        started(1).on_timer("bogus")
    with pytest.raises(ElectionError, match="negative"):
        core(1).start(peer_epoch=-1, last_zxid=0, committed_zxid=0)
