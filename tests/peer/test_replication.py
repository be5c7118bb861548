"""Replication core (ZAB) without sockets: discovery, sync modes, broadcast, failure
detection, observers, and the effect order each planted bug changes."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import pytest

from peer.domain import Bug, Role, Txn, make_zxid
from peer.effects import (
    AppendTxns,
    ClientFailure,
    ClientReply,
    Emit,
    GoLooking,
    InstallSnapshot,
    PersistAcceptedEpoch,
    PersistCurrentEpoch,
    Send,
    SetTimer,
    SyncLog,
    WriteSnapshot,
)
from peer.messages import (
    Ack,
    AckEpoch,
    AckNewLeader,
    Commit,
    FollowerInfo,
    Inform,
    LeaderInfo,
    NewLeader,
    Proposal,
    Snap,
    UpToDate,
    ZabMessage,
)
from peer.replication import TICK_TIMER, Phase, Replica, ReplicationError, SyncMode
from tests.peer.test_replication_pump import TIMING, Disk, Pump


def txn(epoch: int, counter: int, value: str = "") -> Txn:
    return Txn(
        zxid=make_zxid(epoch, counter), key=f"k{counter}", value=value or f"v{epoch}.{counter}"
    )


def history(epoch: int, count: int) -> list[Txn]:
    return [txn(epoch, c) for c in range(1, count + 1)]


def disk(log: list[Txn], accepted: int = 0, current: int | None = None) -> Disk:
    epoch = max([accepted, *(t.zxid >> 32 for t in log)])
    return Disk(
        log=list(log), accepted_epoch=epoch, current_epoch=epoch if current is None else current
    )


T = TypeVar("T")
M = TypeVar("M", bound=ZabMessage)


def index_of(effects: Sequence[object], predicate: Callable[[object], bool]) -> int:
    for i, effect in enumerate(effects):
        if predicate(effect):
            return i
    raise AssertionError(f"no matching effect in {effects}")


def is_send(kind: type[ZabMessage]) -> Callable[[object], bool]:
    return lambda e: isinstance(e, Send) and isinstance(e.message, kind)


def narrow(value: object, kind: type[T]) -> T:
    """`value`, asserted to be a `kind` (fails the test otherwise), typed as one."""
    assert isinstance(value, kind), f"expected a {kind.__name__}, got {value!r}"
    return value


def sent(effects: Iterable[object], kind: type[M], *, to: int | None = None) -> list[M]:
    """The `kind` messages of the `Send` effects (to peer `to` only, if given), in order."""
    return [
        e.message
        for e in effects
        if isinstance(e, Send) and isinstance(e.message, kind) and (to is None or e.to == to)
    ]


# ---------------------------------------------------------------- discovery
def test_discovery_picks_max_accepted_epoch_plus_one_and_persists_before_sending() -> None:
    disks = {1: Disk(accepted_epoch=3), 2: Disk(accepted_epoch=5), 3: Disk(accepted_epoch=1)}
    pump = Pump(3, disks=disks)
    pump.elect(1)
    for sid in (1, 2, 3):
        assert pump.peers[sid].disk.accepted_epoch == 6
        assert pump.peers[sid].disk.current_epoch == 6
        assert pump.peers[sid].replica.serving or pump.peers[sid].replica.phase is Phase.BROADCAST
    leader = pump.peers[1]
    assert leader.kinds("established") and leader.kinds("established")[0]["epoch"] == 6
    # acceptedEpoch is on disk before the first LEADERINFO leaves
    persist = index_of(leader.effects, lambda e: isinstance(e, PersistAcceptedEpoch))
    assert persist < index_of(leader.effects, is_send(LeaderInfo))
    # and currentEpoch before the leader syncs anyone
    current = index_of(leader.effects, lambda e: isinstance(e, PersistCurrentEpoch))
    assert current < index_of(leader.effects, is_send(NewLeader))


def test_leader_waits_for_a_quorum_of_followerinfo() -> None:
    pump = Pump(5)
    pump.run(1, pump.peers[1].replica.lead())
    pump.run(2, pump.peers[2].replica.follow(1))
    pump.deliver_all()
    assert not pump.peers[1].kinds("epoch_accepted")  # 2 of 5
    pump.run(3, pump.peers[3].replica.follow(1))
    pump.deliver_all()
    assert pump.peers[1].kinds("established") == [
        {"epoch": 1, "leader": 1, "zxid": 0, "acked": [2, 3]}
    ]
    assert pump.peers[1].replica.serving
    # late joiners are synced by the established leader
    pump.run(4, pump.peers[4].replica.follow(1))
    pump.deliver_all()
    assert pump.peers[4].replica.phase is Phase.BROADCAST
    assert pump.peers[4].disk.current_epoch == 1


def test_follower_ahead_of_leader_makes_it_give_up() -> None:
    disks = {1: disk(history(1, 2)), 2: disk(history(1, 4)), 3: disk(history(1, 2))}
    pump = Pump(3, disks=disks)
    pump.elect(1, members=(1, 2))
    leader = pump.peers[1]
    assert leader.looking and "ahead" in leader.looking[0]
    assert leader.kinds("step_down")
    assert not leader.kinds("established")


def test_follower_refuses_an_older_epoch() -> None:
    pump = Pump(3, disks={2: Disk(accepted_epoch=9, current_epoch=9)})
    follower = pump.peers[2].replica
    pump.run(2, follower.follow(1))
    effects = follower.receive(1, LeaderInfo(epoch=4))
    assert isinstance(effects[-1], GoLooking) and "4 < my accepted epoch 9" in effects[-1].reason
    assert follower.phase is Phase.LOOKING


# ---------------------------------------------------------------- synchronisation
def test_sync_diff_sends_missing_txns_and_commits_at_uptodate() -> None:
    disks = {1: disk(history(1, 5)), 2: disk(history(1, 2)), 3: disk([])}
    pump = Pump(3, disks=disks)
    pump.elect(1)
    modes = {f["peer"]: (f["mode"], f["from"], f["to"]) for f in pump.peers[1].kinds("sync")}
    last = make_zxid(1, 5)
    assert modes == {2: ("DIFF", make_zxid(1, 2), last), 3: ("DIFF", 0, last)}
    for sid in (2, 3):
        assert pump.peers[sid].disk.log == history(1, 5)
        assert pump.peers[sid].replica.committed_zxid == last
        assert pump.peers[sid].replica.state == {f"k{c}": f"v1.{c}" for c in range(1, 6)}
    assert pump.peers[3].delivered() == [make_zxid(1, c) for c in range(1, 6)]
    assert pump.peers[2].delivered() == [make_zxid(1, c) for c in range(3, 6)]


def test_sync_trunc_removes_txns_the_leader_never_had() -> None:
    # 3 logged 1.1..1.3 as a follower of epoch 1; the epoch-2 quorum never saw 1.3.
    base = history(1, 2)
    disks = {
        1: disk([*base, txn(2, 1)]),
        2: disk(base, accepted=2, current=2),
        3: disk([*history(1, 3)], accepted=1, current=1),
    }
    pump = Pump(3, disks=disks)
    pump.elect(1)
    leader_sync = {f["peer"]: f["mode"] for f in pump.peers[1].kinds("sync")}
    assert leader_sync[3] == "TRUNC"
    follower = pump.peers[3]
    assert follower.kinds("trunc") == [{"from": make_zxid(1, 3), "to": make_zxid(1, 2)}]
    assert follower.disk.log == [*base, txn(2, 1)]
    # the replayed 1.3 was applied at recovery; truncation rebuilt the data without it
    assert follower.replica.state == {"k1": "v2.1", "k2": "v1.2"}


def test_sync_mode_choice() -> None:
    log = [txn(1, 1), txn(1, 2), txn(2, 1), txn(2, 2)]
    leader = Replica(
        sid=1,
        roles={1: Role.VOTER, 2: Role.VOTER, 3: Role.VOTER},
        timing=TIMING,
        bug=None,
        snapshot_zxid=make_zxid(1, 1),
        state={"k0": "x"},
        txns=log[1:],
        accepted_epoch=2,
        current_epoch=2,
        seed=0,
    )
    assert leader.sync_mode(make_zxid(2, 2)) == (SyncMode.DIFF, make_zxid(2, 2))
    assert leader.sync_mode(make_zxid(1, 2)) == (SyncMode.DIFF, make_zxid(1, 2))
    assert leader.sync_mode(make_zxid(1, 1)) == (SyncMode.DIFF, make_zxid(1, 1))
    assert leader.sync_mode(make_zxid(3, 7)) == (SyncMode.TRUNC, make_zxid(2, 2))
    # 1.5 was never in my history: cut back to my newest txn before it, then DIFF
    assert leader.sync_mode(make_zxid(1, 5)) == (SyncMode.TRUNC, make_zxid(1, 2))
    assert leader.sync_mode(0) == (SyncMode.SNAP, make_zxid(2, 2))


def test_sync_snap_installs_the_leaders_state() -> None:
    leader_disk = Disk(
        log=[txn(1, 4), txn(1, 5)],
        accepted_epoch=1,
        current_epoch=1,
        snapshot_zxid=make_zxid(1, 3),
        snapshot_state={"k1": "v1.1", "k2": "v1.2", "k3": "v1.3"},
    )
    pump = Pump(3, disks={1: leader_disk, 2: disk(history(1, 1)), 3: disk(history(1, 5))})
    pump.elect(1)
    assert {f["peer"]: f["mode"] for f in pump.peers[1].kinds("sync")} == {2: "SNAP", 3: "DIFF"}
    follower = pump.peers[2]
    installs = [e for e in follower.effects if isinstance(e, InstallSnapshot)]
    assert [i.zxid for i in installs] == [make_zxid(1, 5)]
    assert follower.replica.state == pump.peers[1].replica.state
    assert len(follower.replica.state) == 5
    assert follower.replica.last_zxid == make_zxid(1, 5)


def test_newleader_ack_only_after_sync_fsync_and_current_epoch() -> None:
    pump = Pump(3, disks={1: disk(history(1, 3))})
    pump.elect(1)
    follower = pump.peers[2]
    ack = index_of(follower.effects, is_send(AckNewLeader))
    assert index_of(follower.effects, lambda e: isinstance(e, AppendTxns)) < ack
    assert index_of(follower.effects, lambda e: isinstance(e, SyncLog)) < ack
    assert index_of(follower.effects, lambda e: isinstance(e, PersistCurrentEpoch)) < ack


def test_no_uptodate_without_a_quorum_of_newleader_acks() -> None:
    pump = Pump(5, disks={1: disk(history(1, 2))})
    pump.run(1, pump.peers[1].replica.lead())
    for sid in (2, 3):
        pump.run(sid, pump.peers[sid].replica.follow(1))
    # deliver everything but the NEWLEADER acks of 3
    while pump.queue:
        sender, to, msg = pump.queue[0]
        if sender == 3 and isinstance(msg, AckNewLeader):
            pump.queue.popleft()
            held = (sender, to, msg)
            continue
        pump.step()
    assert pump.peers[1].replica.phase is Phase.SYNC
    assert not any(is_send(UpToDate)(e) for e in pump.peers[1].effects)
    assert pump.peers[1].replica.committed_zxid == make_zxid(1, 2)  # replayed, not new
    assert not pump.peers[1].kinds("commit")
    pump.queue.append(held)
    pump.deliver_all()
    assert pump.peers[1].replica.serving
    assert pump.peers[2].replica.phase is Phase.BROADCAST


# ---------------------------------------------------------------- broadcast
def test_write_commits_everywhere_in_order_and_replies() -> None:
    pump = Pump(3)
    pump.elect(1)
    for i in range(5):
        pump.write(1, i, f"key{i % 2}", f"val{i}")
    pump.deliver_all()
    zxids = [make_zxid(1, c) for c in range(1, 6)]
    assert [r.zxid for r in pump.peers[1].replies] == zxids
    assert all(r.ok for r in pump.peers[1].replies)
    for sid in (1, 2, 3):
        assert pump.peers[sid].delivered() == zxids
        assert pump.peers[sid].replica.state == {"key0": "val4", "key1": "val3"}
    assert [f["zxid"] for f in pump.peers[1].kinds("commit")] == zxids
    assert [f["zxid"] for f in pump.peers[1].kinds("propose")] == zxids


def test_commit_strictly_in_zxid_order_when_acks_arrive_reversed() -> None:
    pump = Pump(3)
    pump.elect(1)
    pump.isolate(3)
    leader = pump.peers[1].replica
    pump.write(1, 1, "a", "1")
    pump.write(1, 2, "b", "2")
    # hand-feed the follower's ACKs in reverse order
    pump.queue.clear()
    first, second = make_zxid(1, 1), make_zxid(1, 2)
    effects = leader.receive(2, Ack(zxid=second))
    assert not [e for e in effects if isinstance(e, Emit) and e.kind == "commit"]
    assert leader.committed_zxid == 0
    effects = leader.receive(2, Ack(zxid=first))
    commits = [e.fields["zxid"] for e in effects if isinstance(e, Emit) and e.kind == "commit"]
    assert commits == [first, second]
    sends = [commit.zxid for commit in sent(effects, Commit, to=2)]
    assert sends == [first, second]


def test_write_not_committed_without_a_majority() -> None:
    pump = Pump(5)
    pump.elect(1)
    for sid in (3, 4, 5):
        pump.partition(1, sid)
    pump.write(1, 7, "x", "y")
    pump.deliver_all()
    assert not pump.peers[1].kinds("commit")
    assert not pump.peers[1].replies
    assert pump.peers[2].disk.log[-1].key == "x"  # logged and ACKed, yet 2 of 5
    assert pump.peers[2].delivered() == []
    # a third ACK (healing 3) commits it
    pump.cut.discard(frozenset((1, 3)))
    pump.run(1, pump.peers[1].replica.receive(3, Ack(zxid=make_zxid(1, 1))))
    pump.deliver_all()
    assert [r.zxid for r in pump.peers[1].replies] == [make_zxid(1, 1)]


def test_write_on_a_follower_names_the_leader() -> None:
    pump = Pump(3)
    pump.elect(2)
    (effect,) = pump.peers[1].replica.client_write(5, "k", "v")
    reply = narrow(effect, ClientReply)
    assert not reply.ok and reply.error is ClientFailure.NOT_LEADER and reply.leader == 2


def test_write_before_serving_is_refused() -> None:
    pump = Pump(3)
    pump.run(1, pump.peers[1].replica.lead())
    (effect,) = pump.peers[1].replica.client_write(5, "k", "v")
    reply = narrow(effect, ClientReply)
    assert reply.error is ClientFailure.NOT_SERVING and reply.leader == 1


def test_late_joiner_is_synced_with_outstanding_proposals() -> None:
    pump = Pump(5)
    pump.elect(1, members=(1, 2, 3))
    pump.write(1, 1, "a", "1")
    pump.deliver_all()
    pump.partition(1, 3)
    pump.write(1, 2, "b", "2")  # outstanding: only 1 and 2 have it
    pump.deliver_all()
    assert pump.peers[1].replica.committed_zxid == make_zxid(1, 1)
    pump.run(4, pump.peers[4].replica.follow(1))
    pump.deliver_all()
    # 4's NEWLEADER ACK covers the outstanding proposal: 1, 2, 4 make a quorum of 5
    assert pump.peers[1].replica.committed_zxid == make_zxid(1, 2)
    assert pump.peers[4].delivered() == [make_zxid(1, 1), make_zxid(1, 2)]


# ---------------------------------------------------------------- failure detection
def test_isolated_leader_steps_down_within_sync_limit() -> None:
    pump = Pump(3)
    pump.elect(1)
    pump.isolate(1)
    ticks = 0
    while not pump.peers[1].looking:
        pump.tick((1,))
        ticks += 1
        assert ticks <= 2 * TIMING.sync_limit + 1
    assert ticks > 2 * TIMING.sync_limit - 1  # not before the limit either
    (step_down,) = pump.peers[1].kinds("step_down")
    assert "sync_limit" in step_down["reason"]
    assert pump.peers[1].replica.phase is Phase.LOOKING


def test_leader_with_its_majority_keeps_leading() -> None:
    pump = Pump(3)
    pump.elect(1)
    pump.isolate(3)
    for _ in range(4 * TIMING.sync_limit):
        pump.tick((1, 2))
    assert pump.peers[1].replica.serving and not pump.peers[1].looking


def test_no_step_down_bug_keeps_leading() -> None:
    pump = Pump(3, bug=Bug.NO_STEP_DOWN)
    pump.elect(1)
    pump.isolate(1)
    for _ in range(4 * TIMING.sync_limit):
        pump.tick((1,))
    assert pump.peers[1].replica.serving and not pump.peers[1].kinds("step_down")


def test_stepped_down_leader_fails_pending_writes_indefinitely() -> None:
    pump = Pump(3)
    pump.elect(1)
    pump.isolate(1)
    pump.write(1, 9, "k", "v")
    for _ in range(2 * TIMING.sync_limit + 1):
        pump.tick((1,))
    (reply,) = pump.peers[1].replies
    assert reply.request == 9 and reply.error is ClientFailure.LEADERSHIP_LOST


def test_follower_times_out_when_the_leader_is_silent() -> None:
    pump = Pump(3)
    pump.elect(1)
    pump.isolate(1)
    for _ in range(2 * TIMING.sync_limit):
        pump.tick((2,))
    assert pump.peers[2].looking and "sync_limit" in pump.peers[2].looking[0]
    assert pump.peers[2].replica.phase is Phase.LOOKING


def test_follower_goes_looking_when_its_link_breaks() -> None:
    pump = Pump(3)
    pump.elect(1)
    effects = pump.peers[2].replica.disconnected(1)
    assert isinstance(effects[-1], GoLooking)


def test_follower_that_cannot_sync_gives_up_after_init_limit() -> None:
    pump = Pump(3)
    pump.partition(1, 2)
    pump.run(2, pump.peers[2].replica.follow(1))
    for _ in range(2 * TIMING.init_limit):
        pump.tick((2,))
    assert pump.peers[2].looking and "init_limit" in pump.peers[2].looking[0]


def test_leader_without_a_quorum_gives_up_after_init_limit() -> None:
    pump = Pump(3)
    pump.run(1, pump.peers[1].replica.lead())
    for _ in range(2 * TIMING.init_limit):
        pump.tick((1,))
    assert pump.peers[1].looking and "init_limit" in pump.peers[1].looking[0]


def test_re_election_keeps_committed_history() -> None:
    pump = Pump(3)
    pump.elect(1)
    for i in range(3):
        pump.write(1, i, "k", str(i))
    pump.deliver_all()
    for sid in (1, 2, 3):
        pump.run(sid, pump.peers[sid].replica.stop())
    pump.queue.clear()
    pump.links.clear()
    pump.elect(3)
    pump.write(3, 10, "k", "new")
    pump.deliver_all()
    assert pump.peers[3].replica.epoch == 2
    for sid in (1, 2, 3):
        assert [t.value for t in pump.peers[sid].disk.log] == ["0", "1", "2", "new"]
        assert pump.peers[sid].replica.state == {"k": "new"}


# ---------------------------------------------------------------- observers
def test_observers_never_count_and_learn_by_inform() -> None:
    pump = Pump(5, observers=(4, 5))  # 3 voters: quorum 2
    pump.run(1, pump.peers[1].replica.lead())
    for sid in (4, 5):
        pump.run(sid, pump.peers[sid].replica.follow(1))
    pump.deliver_all()
    assert not pump.peers[1].kinds("epoch_accepted")  # two observers are no quorum
    pump.run(2, pump.peers[2].replica.follow(1))
    pump.deliver_all()
    assert pump.peers[1].replica.serving
    pump.partition(1, 2)
    pump.write(1, 1, "k", "v")
    pump.deliver_all()
    assert not pump.peers[1].kinds("commit")  # observers got nothing to ACK
    for sid in (4, 5):
        assert not any(is_send(Ack)(e) for e in pump.peers[sid].effects)
        assert not sent(pump.peers[1].effects, Proposal, to=sid)
    pump.cut.clear()
    pump.run(1, pump.peers[1].replica.receive(2, Ack(zxid=make_zxid(1, 1))))
    pump.deliver_all()
    assert sent(pump.peers[1].effects, Inform, to=4)
    for sid in (4, 5):
        assert pump.peers[sid].delivered() == [make_zxid(1, 1)]


def test_observer_cannot_lead() -> None:
    pump = Pump(3, observers=(3,))
    with pytest.raises(ReplicationError, match="observer cannot lead"):
        pump.peers[3].replica.lead()


# ---------------------------------------------------------------- snapshots
def test_snapshot_after_a_seeded_threshold_then_snap_for_old_learners() -> None:
    from peer.domain import Timing

    timing = Timing(tick_ms=100, snap_count=4)
    pump = Pump(3, timing=timing)
    pump.elect(1, members=(1, 2))
    for i in range(10):
        pump.write(1, i, f"k{i}", str(i))
    pump.deliver_all()
    snaps = [e for e in pump.peers[1].effects if isinstance(e, WriteSnapshot)]
    assert snaps and all(s.state for s in snaps)
    gaps = [b.zxid - a.zxid for a, b in itertools.pairwise(snaps)]
    assert all(2 <= g <= 4 for g in gaps)
    # 3 was never there: the leader's log no longer starts at 0, so it gets SNAP
    pump.run(3, pump.peers[3].replica.follow(1))
    pump.deliver_all()
    assert {f["peer"]: f["mode"] for f in pump.peers[1].kinds("sync")}[3] == "SNAP"
    assert pump.peers[3].replica.state == pump.peers[1].replica.state


def test_one_commit_delivers_the_whole_range_once_across_a_snapshot() -> None:
    from peer.domain import Timing

    pump = Pump(3, timing=Timing(tick_ms=100, snap_count=4))
    pump.elect(1)
    follower = pump.peers[2].replica
    proposed = [txn(1, c) for c in range(1, 8)]
    for t in proposed:
        follower.receive(1, Proposal(txn=t))
    # commits of 1..2, then one COMMIT for 3..7 (a snapshot is due inside that range)
    effects = follower.receive(1, Commit(zxid=proposed[1].zxid))
    effects += follower.receive(1, Commit(zxid=proposed[-1].zxid))
    delivered = [e.fields["zxid"] for e in effects if isinstance(e, Emit) and e.kind == "deliver"]
    assert delivered == [t.zxid for t in proposed]
    snaps = [e.zxid for e in effects if isinstance(e, WriteSnapshot)]
    assert snaps
    assert follower.snapshot_zxid == snaps[-1]
    assert follower.log == tuple(t for t in proposed if t.zxid > snaps[-1])
    # a repeated or older COMMIT delivers nothing again
    again = follower.receive(1, Commit(zxid=proposed[-1].zxid))
    assert not [e for e in again if isinstance(e, Emit) and e.kind == "deliver"]
    assert follower.committed_zxid == proposed[-1].zxid


def test_misuse_is_a_local_error() -> None:
    pump = Pump(3)
    pump.elect(1)
    with pytest.raises(ReplicationError, match=r"lead\(\) while LEADING"):
        pump.peers[1].replica.lead()
    with pytest.raises(ReplicationError, match="unknown timer"):
        pump.peers[1].replica.on_timer("nope")


def test_bad_recovered_data_is_refused() -> None:
    roles = {1: Role.VOTER}
    with pytest.raises(ReplicationError, match="accepted_epoch 1 < current_epoch 2"):
        Replica(sid=1, roles=roles, timing=TIMING, bug=None, snapshot_zxid=0, state={},
                txns=[], accepted_epoch=1, current_epoch=2, seed=0)  # fmt: skip
    with pytest.raises(ReplicationError, match="not strictly increasing"):
        Replica(sid=1, roles=roles, timing=TIMING, bug=None, snapshot_zxid=0, state={},
                txns=[txn(1, 2), txn(1, 1)], accepted_epoch=1, current_epoch=1, seed=0)  # fmt: skip


def test_single_voter_leads_alone() -> None:
    pump = Pump(1)
    pump.run(1, pump.peers[1].replica.lead())
    assert pump.peers[1].replica.serving
    pump.write(1, 1, "k", "v")
    assert [r.zxid for r in pump.peers[1].replies] == [make_zxid(1, 1)]
    order = pump.peers[1].effects
    assert index_of(order, lambda e: isinstance(e, AppendTxns)) < index_of(
        order, lambda e: isinstance(e, Emit) and e.kind == "commit"
    )


def test_unknown_learner_traffic_closes_only_that_link() -> None:
    pump = Pump(3)
    pump.elect(1)
    effects = pump.peers[1].replica.receive(2, AckEpoch(current_epoch=0, last_zxid=0))
    assert [type(e).__name__ for e in effects] == ["CloseQuorum"]
    assert pump.peers[1].replica.serving
    effects = pump.peers[1].replica.receive(9, FollowerInfo(sid=9, accepted_epoch=0, last_zxid=0))
    assert [type(e).__name__ for e in effects] == ["CloseQuorum"]


def test_tick_timer_rearms() -> None:
    pump = Pump(3)
    pump.elect(1)
    rearm = narrow(pump.peers[2].replica.on_timer(TICK_TIMER)[-1], SetTimer)
    assert rearm.name == TICK_TIMER and rearm.delay_ms == TIMING.tick_ms // 2


def test_snap_message_carries_sorted_state() -> None:
    leader = Replica(
        sid=1, roles={1: Role.VOTER, 2: Role.VOTER}, timing=TIMING, bug=None,
        snapshot_zxid=make_zxid(1, 2), state={"b": "2", "a": "1"}, txns=[],
        accepted_epoch=1, current_epoch=1, seed=0,
    )  # fmt: skip
    leader.lead()
    leader.receive(2, FollowerInfo(sid=2, accepted_epoch=0, last_zxid=0))
    effects = leader.receive(2, AckEpoch(current_epoch=0, last_zxid=0))
    (snap,) = sent(effects, Snap)
    assert snap.state == (("a", "1"), ("b", "2")) and snap.zxid == make_zxid(1, 2)
