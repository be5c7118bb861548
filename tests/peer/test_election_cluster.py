"""Several FLE cores wired by the in-test message pump: SPEC section 0's scenario and
hypothesis-driven delivery orders, drops and starts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from peer.domain import Bug, Role, ServerState, Vote
from peer.election import FINALIZE_TIMER, NOTIFICATION_TIMER
from tests.peer.test_election_support import Net, voters

L, F, LEAD = ServerState.LOOKING, ServerState.FOLLOWING, ServerState.LEADING


def fire_finalize(net: Net) -> None:
    for sid in net.armed(FINALIZE_TIMER):
        net.fire(sid, FINALIZE_TIMER)
        net.settle()


def test_five_servers_started_one_after_another() -> None:
    net = Net(voters(5))
    net.start(1)
    net.settle()
    assert net.state(1) is L and net.vote(1).leader == 1

    net.start(2)
    net.settle()
    assert [net.vote(s).leader for s in (1, 2)] == [2, 2]
    assert net.armed(FINALIZE_TIMER) == []  # 2 of 5 is no majority
    fire_finalize(net)
    assert net.state(1) is L and net.state(2) is L

    net.start(3)
    net.settle()
    assert net.armed(FINALIZE_TIMER) == [1, 2, 3]
    fire_finalize(net)
    assert [net.state(s) for s in (1, 2, 3)] == [F, F, LEAD]
    assert {net.vote(s).leader for s in (1, 2, 3)} == {3}

    for late in (4, 5):  # higher ids, but a leader is already established
        net.start(late)
        net.settle()
        assert net.state(late) is F and net.vote(late).leader == 3
    assert sorted(sid for sid, _ in net.decisions) == [1, 2, 3, 4, 5]
    assert all(d.vote.leader == 3 and d.round == 1 for _, d in net.decisions)
    assert net.armed(NOTIFICATION_TIMER) == []


def test_restarted_follower_learns_the_leader_without_an_election() -> None:
    net = Net(voters(3))
    for sid in (1, 2, 3):
        net.start(sid)
    net.settle()
    fire_finalize(net)
    net.fresh(1)  # process restart: round back to 0
    net.start(1)
    net.settle()
    assert net.state(1) is F and net.vote(1).leader == 3
    assert [net.state(s) for s in (2, 3)] == [F, LEAD]


def test_zookeeper_1419_order_never_settles() -> None:
    def run(bug: Bug | None) -> Net:
        net = Net(voters(3), bug=bug)
        net.start(1, peer_epoch=1)  # higher epoch, lower sid
        net.start(2, peer_epoch=0)
        # 3 is down: two peers must agree on their own
        for _ in range(2000):
            if not net.in_flight:
                break
            net.deliver(0)
        return net

    correct = run(None)
    assert not correct.in_flight
    assert correct.vote(1) == correct.vote(2) == Vote(peer_epoch=1, zxid=0, leader=1)
    buggy = run(Bug.ORDER_IGNORES_EPOCH)
    # each keeps adopting the other's vote: still chatting after 2000 deliveries
    assert buggy.in_flight and buggy.delivered == 2000


# -- hypothesis: random orders, drops, starts ---------------------------------------


@st.composite
def clusters(draw: st.DrawFn) -> tuple[dict[int, Role], dict[int, tuple[int, int]], set[int]]:
    n = draw(st.sampled_from([3, 5]))
    roles = voters(n)
    if draw(st.booleans()):
        roles[n + 1] = Role.OBSERVER
    data = {
        sid: (draw(st.integers(0, 2)), draw(st.integers(0, 3))) for sid in roles
    }  # (peer_epoch, zxid)
    late = set(draw(st.sets(st.sampled_from(sorted(roles)), max_size=n // 2)))
    return roles, data, late


@settings(max_examples=150, deadline=None)
@given(cluster=clusters(), data=st.data())
def test_random_schedules_agree_and_converge(
    cluster: tuple[dict[int, Role], dict[int, tuple[int, int]], set[int]], data: st.DataObject
) -> None:
    roles, votes, late = cluster
    net = Net(roles)

    def start(sid: int, *, again: bool = False) -> None:
        epoch, zxid = votes[sid]
        if again:
            net.reelect(sid, peer_epoch=epoch, zxid=zxid)
        else:
            net.start(sid, peer_epoch=epoch, zxid=zxid)

    # Chaos: any order of starts, re-elections, deliveries, drops and re-sends. No
    # finalize expires here: FLE assumes finalize_wait outlasts message delays, and
    # this phase has unbounded delays (see the report on what FLE alone guarantees).
    for _ in range(data.draw(st.integers(0, 60), label="chaos steps")):
        moves = ["start", "reelect"]
        if net.in_flight:
            moves += ["deliver", "deliver", "deliver", "drop"]
        if net.armed(NOTIFICATION_TIMER):
            moves.append("resend")
        move = data.draw(st.sampled_from(moves))
        if move == "start":
            sid = data.draw(st.sampled_from(sorted(roles)))
            if sid not in net.started:
                start(sid)
        elif move == "reelect":
            if net.started:
                start(data.draw(st.sampled_from(sorted(net.started))), again=True)
        elif move in ("deliver", "drop"):
            index = data.draw(st.integers(0, len(net.in_flight) - 1))
            (net.deliver if move == "deliver" else net.drop)(index)
        else:
            net.fire(data.draw(st.sampled_from(net.armed(NOTIFICATION_TIMER))), NOTIFICATION_TIMER)

    def settle() -> None:
        while net.in_flight:
            net.deliver(data.draw(st.integers(0, len(net.in_flight) - 1)))

    # Calm: no more drops, messages delivered in any order, timers expire only when
    # nothing is in flight, and every notification timer expires once before any
    # finalize wait does (finalize_wait outlasts the repair of dropped votes). Late
    # servers start after the first decisions.
    for sid in sorted(set(roles) - late - net.started):
        start(sid)
    for sid in net.armed(NOTIFICATION_TIMER):
        net.fire(sid, NOTIFICATION_TIMER)
    for _ in range(40):
        settle()
        if finalizing := net.armed(FINALIZE_TIMER):
            net.fire(data.draw(st.sampled_from(finalizing)), FINALIZE_TIMER)
        elif waiting := sorted(set(roles) - net.started):
            start(data.draw(st.sampled_from(waiting)))
        elif resending := net.armed(NOTIFICATION_TIMER):
            for sid in resending:
                net.fire(sid, NOTIFICATION_TIMER)
        else:
            break
    settle()

    # Same round, same leader, across every decision ever made.
    by_round: dict[int, set[int]] = {}
    for _, decision in net.decisions:
        by_round.setdefault(decision.round, set()).add(decision.vote.leader)
    trace = "\n".join(net.trace)
    assert all(len(leaders) == 1 for leaders in by_round.values()), f"{by_round}\n{trace}"
    # Everyone decided, on one leader, which leads and is a voter.
    states = {sid: net.state(sid) for sid in roles}
    assert L not in states.values(), states
    leaders = {net.vote(sid).leader for sid in roles}
    assert len(leaders) == 1, leaders
    [leader] = leaders
    assert roles[leader] is Role.VOTER and states[leader] is LEAD
    for sid, role in roles.items():
        if sid != leader:
            assert states[sid] is (F if role is Role.VOTER else ServerState.OBSERVING)
    if not late:
        # Everybody took part: the best vote of all voters wins (FLE's purpose).
        best = max(
            Vote(peer_epoch=e, zxid=z, leader=sid)
            for sid, (e, z) in votes.items()
            if roles[sid] is Role.VOTER
        )
        assert leader == best.leader
