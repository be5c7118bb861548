"""Planted bugs in the replication core: each changes effect order (or drops a
persist) against the correct peer, in a way the checker can see in the event log."""

from __future__ import annotations

from typing import Any

from peer.domain import Bug, make_zxid
from peer.effects import (
    AppendTxns,
    Emit,
    PersistAcceptedEpoch,
    PersistCurrentEpoch,
    Send,
    SyncLog,
    TruncateLog,
)
from peer.messages import Ack, AckEpoch, LeaderInfo, NewLeader, Proposal
from peer.replication import Phase
from tests.peer.test_replication import disk, history, txn
from tests.peer.test_replication_pump import Disk, Pump


def names(effects: list[Any]) -> list[str]:
    out = []
    for effect in effects:
        match effect:
            case Send():
                out.append(f"Send({type(effect.message).__name__})")
            case Emit():
                out.append(f"Emit({effect.kind})")
            case AppendTxns():
                out.append(f"AppendTxns(sync={effect.sync})")
            case _:
                out.append(type(effect).__name__)
    return out


def serving_follower(bug: Bug | None) -> Pump:
    pump = Pump(3, bug=bug)
    pump.elect(1)
    assert pump.peers[2].replica.phase is Phase.BROADCAST
    return pump


def test_ack_after_fsync_normally() -> None:
    pump = serving_follower(None)
    effects = pump.peers[2].replica.receive(1, Proposal(txn=txn(1, 1)))
    assert names(effects) == ["AppendTxns(sync=True)", "Emit(ack)", "Send(Ack)"]


def test_ack_before_fsync_bug_acks_first_and_fsyncs_on_the_next_tick() -> None:
    pump = serving_follower(Bug.ACK_BEFORE_FSYNC)
    follower = pump.peers[2]
    pump.run(2, follower.replica.receive(1, Proposal(txn=txn(1, 1))))
    assert names(follower.effects[-3:]) == ["AppendTxns(sync=False)", "Emit(ack)", "Send(Ack)"]
    # the ACK left while nothing of it was on disk
    assert pump.acks_at_send[-1] == (2, make_zxid(1, 1), [])
    pump.queue.clear()
    pump.tick((2,))
    assert SyncLog() in follower.effects[-3:]
    assert follower.disk.durable_zxids() == [make_zxid(1, 1)]


def test_correct_follower_acks_only_durable_txns() -> None:
    pump = serving_follower(None)
    for i in range(3):
        pump.write(1, i, "k", str(i))
    pump.deliver_all()
    assert pump.acks_at_send
    for _sid, zxid, durable in pump.acks_at_send:
        assert zxid in durable


def test_newleader_ack_before_fsync_bug() -> None:
    correct = Pump(3, disks={1: disk(history(1, 3))})
    correct.run(2, correct.peers[2].replica.follow(1))
    correct.run(2, correct.peers[2].replica.receive(1, LeaderInfo(epoch=2)))
    from peer.messages import Diff

    correct.run(2, correct.peers[2].replica.receive(1, Diff(txns=tuple(history(1, 3)))))
    effects = correct.peers[2].replica.receive(1, NewLeader(epoch=2, zxid=make_zxid(1, 3)))
    assert names(effects) == [
        "SyncLog",
        "PersistCurrentEpoch",
        "Emit(epoch_current)",
        "Send(AckNewLeader)",
    ]

    buggy = Pump(3, bug=Bug.NEWLEADER_ACK_BEFORE_FSYNC, disks={1: disk(history(1, 3))})
    follower = buggy.peers[2]
    buggy.run(2, follower.replica.follow(1))
    buggy.run(2, follower.replica.receive(1, LeaderInfo(epoch=2)))
    buggy.run(2, follower.replica.receive(1, Diff(txns=tuple(history(1, 3)))))
    effects = follower.replica.receive(1, NewLeader(epoch=2, zxid=make_zxid(1, 3)))
    assert names(effects) == ["PersistCurrentEpoch", "Emit(epoch_current)", "Send(AckNewLeader)"]
    buggy.run(2, effects)
    assert follower.disk.durable_zxids() == []  # acked, not on disk
    buggy.queue.clear()
    buggy.tick((2,))
    assert follower.disk.durable_zxids() == [t.zxid for t in history(1, 3)]


def test_skip_accepted_epoch_bug_acks_without_persisting() -> None:
    for bug, persisted in ((None, True), (Bug.SKIP_ACCEPTED_EPOCH, False)):
        pump = Pump(3, bug=bug)
        follower = pump.peers[2]
        pump.run(2, follower.replica.follow(1))
        effects = follower.replica.receive(1, LeaderInfo(epoch=4))
        expected = ["Emit(epoch_accepted)", "Send(AckEpoch)"]
        if persisted:
            expected.insert(0, "PersistAcceptedEpoch")
            assert isinstance(effects[0], PersistAcceptedEpoch) and effects[0].epoch == 4
        assert names(effects) == expected
        assert follower.replica.accepted_epoch == 4  # in memory either way


def test_trunc_too_far_bug_cuts_a_committed_txn() -> None:
    base = history(1, 2)
    disks = {
        1: disk([*base, txn(2, 1)]),
        2: disk(base, accepted=2, current=2),
        3: disk(history(1, 3), accepted=1, current=1),
    }
    correct = Pump(3, disks={k: Disk(**vars(v)) for k, v in disks.items()})
    correct.elect(1)
    assert [t.zxid for t in correct.peers[3].disk.log] == [
        make_zxid(1, 1),
        make_zxid(1, 2),
        make_zxid(2, 1),
    ]

    buggy = Pump(3, bug=Bug.TRUNC_TOO_FAR, disks=disks)
    buggy.elect(1)
    follower = buggy.peers[3]
    assert follower.kinds("trunc") == [{"from": make_zxid(1, 3), "to": make_zxid(1, 1)}]
    truncs = [e.zxid for e in follower.effects if isinstance(e, TruncateLog)]
    assert truncs == [make_zxid(1, 1)]
    # 1.2 (in the leader's history) is gone from the follower: a hole
    assert [t.zxid for t in follower.disk.log] == [make_zxid(1, 1), make_zxid(2, 1)]


def test_minority_quorum_bug_commits_with_two_of_five() -> None:
    for bug, committed in ((None, False), (Bug.MINORITY_QUORUM, True)):
        pump = Pump(5, bug=bug)
        pump.run(1, pump.peers[1].replica.lead())
        pump.run(2, pump.peers[2].replica.follow(1))
        pump.deliver_all()
        assert pump.peers[1].replica.serving is committed
        if committed:
            pump.write(1, 1, "k", "v")
            pump.deliver_all()
            assert pump.peers[1].kinds("commit")


def test_leader_counts_ack_only_after_its_own_append() -> None:
    pump = serving_follower(None)
    effects = pump.peers[1].replica.client_write(1, "k", "v")
    assert names(effects)[:2] == ["Emit(propose)", "AppendTxns(sync=True)"]
    assert all(n == "Send(Proposal)" for n in names(effects)[2:])
    effects = pump.peers[1].replica.receive(2, Ack(zxid=make_zxid(1, 1)))
    assert names(effects)[:2] == ["Emit(commit)", "Emit(deliver)"]


def test_ack_epoch_carries_current_epoch_after_persisting_accepted() -> None:
    pump = Pump(3, disks={2: Disk(accepted_epoch=1, current_epoch=1)})
    pump.run(2, pump.peers[2].replica.follow(1))
    effects = pump.peers[2].replica.receive(1, LeaderInfo(epoch=2))
    (ack,) = [e.message for e in effects if isinstance(e, Send)]
    assert ack == AckEpoch(current_epoch=1, last_zxid=0)
    assert not [e for e in effects if isinstance(e, PersistCurrentEpoch)]
