"""ZAB discovery, synchronisation and broadcast as a pure state machine (`Replica`).

This module owns the replication rules of one peer after Fast Leader Election has
decided: the leader's epoch choice, per-learner sync (DIFF / TRUNC / SNAP), NEWLEADER
and UPTODATE, proposals, ACK counting, commits in zxid order, pings and the tick
limits. It does no I/O, reads no clock and draws randomness only from the seeded
`random.Random` it is handed (the snapshot threshold). Every call returns a list of
effects (`peer.effects`) that the node adapter performs strictly in order, each
persistence effect finished (fsync) before the next one runs: "persist before send"
is written as list order and nothing else.

Theory of operation
-------------------
API: `lead()` / `follow(leader)` when FLE decides; `connected(peer)` when a learner's
dial to the leader succeeded; `disconnected(peer)` when a quorum link broke;
`receive(sender, msg)` for every ZAB message; `on_timer(TICK_TIMER)` every tick/2;
`client_write(request, key, value)`; `stop()`. Read-only views: `last_zxid`,
`committed_zxid`, `accepted_epoch`, `current_epoch`, `state`, `server_state`, `phase`,
`leader`, `epoch`. A `GoLooking` effect means: the node restarts the election with
peer_epoch=current_epoch and the replica's zxids; the replica is LOOKING until the
next `lead()`/`follow()`.

Time is counted in half-ticks of the one timer `zab.tick` (ZooKeeper's leader checks
every tick/2). `init_limit` bounds discovery + sync from `lead()`/`follow()`;
`sync_limit` bounds silence once serving.

History model. The log is every txn after the base snapshot (`snapshot_zxid`), kept
in memory so the leader can DIFF; `committed_zxid` is the applied prefix and `state`
the data after it. As in ZooKeeper, recovery replays the whole log, so at boot the
applied prefix is the whole log (committed == last). `deliver` is emitted only for
txns applied during this boot; replayed ones are covered by the adapter's
`recovered` event, a SNAP jumps the applied prefix (the `sync` event says so), and a
TRUNC below the applied prefix rebuilds `state` from the base snapshot. Taking a
snapshot makes it the new base and drops the log before it, so older learners get SNAP.

Events emitted here (kinds/fields of harness.events): epoch_accepted, epoch_current,
established, sync, trunc, propose, ack (on the follower, as it sends the ACK, so
"ack before logged" in one peer's log shows a missing fsync), commit (leader only),
deliver (every peer as it applies), step_down. `logged` and `snapshot` are the
adapter's, after the storage call returned.

Planted bugs (SPEC section 6) change only effect order or omit a persist; each site
is marked `Bug.` below.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from operator import attrgetter
from types import MappingProxyType
from typing import assert_never

from peer.domain import Bug, Role, ServerState, Timing, Txn, make_zxid, quorum_size
from peer.effects import (
    AppendTxns,
    CancelTimer,
    ClientFailure,
    ClientReply,
    CloseQuorum,
    ConnectLeader,
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
    Ping,
    Proposal,
    Snap,
    Trunc,
    UpToDate,
    ZabMessage,
)

TICK_TIMER = "zab.tick"

Effect = ZabEffect


class ReplicationError(PeerError):
    """The replica was misused by its caller (a local error, never the remote's fault)."""

    def __init__(self, sid: int, why: str) -> None:
        super().__init__(f"replica sid={sid}: {why}")
        self.sid = sid
        self.why = why


class Phase(StrEnum):
    LOOKING = "looking"  # not in ZAB: election running, or stopped
    CONNECTING = "connecting"  # learner: dialing the leader
    DISCOVERY = "discovery"  # leader: collecting FOLLOWERINFO/ACKEPOCH; learner: before LEADERINFO
    SYNC = "sync"  # leader: established, waiting for NEWLEADER acks; learner: syncing
    BROADCAST = "broadcast"  # serving


class LearnerStage(StrEnum):
    """Leader's view of one learner connection."""

    INFO = "info"  # FOLLOWERINFO received
    EPOCH_ACKED = "epoch-acked"  # ACKEPOCH received, waiting to be synced
    SYNCING = "syncing"  # sync data + NEWLEADER sent; forwarded every proposal since
    SYNCED = "synced"  # NEWLEADER acked


class SyncMode(StrEnum):
    DIFF = "DIFF"
    TRUNC = "TRUNC"
    SNAP = "SNAP"


# Hot-path aliases: on CPython 3.11 `Phase.BROADCAST` is looked up through EnumType's
# __getattr__ hook (~0.15 us), a module global costs ~0.01 us. The per-message and
# per-tick checks use these; the rare paths keep the spelled-out members.
_LOOKING = Phase.LOOKING
_BROADCAST = Phase.BROADCAST
_SYNC_OR_BROADCAST = (Phase.SYNC, Phase.BROADCAST)
_LEADING = ServerState.LEADING
_OBSERVING = ServerState.OBSERVING


@dataclass(slots=True, kw_only=True)
class _Learner:
    sid: int
    voter: bool
    stage: LearnerStage
    accepted_epoch: int
    last_zxid: int
    heard: int  # half-tick of the last message from it
    current_epoch: int = -1


@dataclass(slots=True, kw_only=True)
class _Pending:
    """An outstanding proposal on the leader."""

    txn: Txn
    acks: set[int] = field(default_factory=set)
    request: int | None = None


class Replica:
    """ZAB for one peer. See the module docstring for the contract."""

    def __init__(
        self,
        *,
        sid: int,
        roles: Mapping[int, Role],
        timing: Timing,
        bug: Bug | None,
        snapshot_zxid: int,
        state: Mapping[str, str],
        txns: Sequence[Txn],
        accepted_epoch: int,
        current_epoch: int,
        seed: int,
    ) -> None:
        if sid not in roles:
            raise ReplicationError(sid, f"sid {sid} is not a member ({sorted(roles)})")
        if accepted_epoch < current_epoch:
            raise ReplicationError(
                sid, f"accepted_epoch {accepted_epoch} < current_epoch {current_epoch}"
            )
        previous = snapshot_zxid
        for txn in txns:
            if txn.zxid <= previous:
                raise ReplicationError(
                    sid, f"log not strictly increasing after snapshot: {txn.zxid:#x}"
                )
            previous = txn.zxid
        self._sid = sid
        self._roles = dict(roles)
        self._voters = frozenset(s for s, r in roles.items() if r is Role.VOTER)
        self._quorum = quorum_size(len(self._voters), bug)
        self._timing = timing
        # Effects are immutable, so the one re-arm of the tick timer is built once.
        self._rearm_tick = SetTimer(name=TICK_TIMER, delay_ms=max(1, timing.tick_ms // 2))
        self._bug = bug
        self._rng = random.Random(seed)
        self._base_zxid = snapshot_zxid
        self._base_state: dict[str, str] = dict(state)
        self._log: list[Txn] = list(txns)
        # Recovery replays the whole log (ZooKeeper's loadDataBase): applied == logged.
        self._state: dict[str, str] = dict(state)
        for txn in txns:
            self._state[txn.key] = txn.value
        self._committed = self.last_zxid
        self._accepted_epoch = accepted_epoch
        self._current_epoch = current_epoch
        self._since_snapshot = 0
        self._snap_threshold = self._draw_threshold()

        self._server_state = ServerState.LOOKING
        self._phase = Phase.LOOKING
        self._tick = 0
        self._phase_start = 0
        self._leader: int | None = None
        self._epoch: int | None = None  # the epoch being established / served
        self._unsynced = False  # data written without fsync (planted bugs only)
        # leader only
        self._learners: dict[int, _Learner] = {}
        self._pending: dict[int, _Pending] = {}
        self._counter = 0
        self._summary = (current_epoch, self.last_zxid)  # leader's state at lead()
        # follower only
        self._leader_heard = 0

    # ------------------------------------------------------------------ views
    @property
    def sid(self) -> int:
        return self._sid

    @property
    def last_zxid(self) -> int:
        return self._log[-1].zxid if self._log else self._base_zxid

    @property
    def committed_zxid(self) -> int:
        return self._committed

    @property
    def accepted_epoch(self) -> int:
        return self._accepted_epoch

    @property
    def current_epoch(self) -> int:
        return self._current_epoch

    @property
    def state(self) -> Mapping[str, str]:
        return MappingProxyType(self._state)

    @property
    def log(self) -> tuple[Txn, ...]:
        """Txns held after the base snapshot, committed or not."""
        return tuple(self._log)

    @property
    def snapshot_zxid(self) -> int:
        return self._base_zxid

    @property
    def server_state(self) -> ServerState:
        return self._server_state

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def leader(self) -> int | None:
        return self._leader

    @property
    def epoch(self) -> int | None:
        return self._epoch

    @property
    def serving(self) -> bool:
        return self._phase is Phase.BROADCAST

    # ------------------------------------------------------------------ entry points
    def lead(self) -> list[Effect]:
        """FLE decided LEADING: start discovery, counting myself."""
        self._require_looking("lead")
        if self._roles[self._sid] is not Role.VOTER:
            raise ReplicationError(self._sid, "an observer cannot lead")
        self._enter(ServerState.LEADING, Phase.DISCOVERY, self._sid)
        self._learners = {}
        self._pending = {}
        self._summary = (self._current_epoch, self.last_zxid)
        effects: list[Effect] = [self._rearm_tick]
        # A one-voter ensemble (or the minority-quorum bug) may already have its quorum.
        effects += self._maybe_propose_epoch()
        return effects

    def follow(self, leader: int) -> list[Effect]:
        """FLE decided FOLLOWING (OBSERVING for an observer) with `leader`."""
        self._require_looking("follow")
        if leader == self._sid or leader not in self._voters:
            raise ReplicationError(self._sid, f"cannot follow {leader}: not another voter")
        observer = self._roles[self._sid] is Role.OBSERVER
        self._enter(
            ServerState.OBSERVING if observer else ServerState.FOLLOWING, Phase.CONNECTING, leader
        )
        self._leader_heard = self._tick
        return [
            ConnectLeader(leader=leader),
            self._rearm_tick,
        ]

    def connected(self, peer: int) -> list[Effect]:
        """Learner: the quorum connection to the leader is up; introduce myself."""
        if self._phase is not Phase.CONNECTING or peer != self._leader:
            return []
        self._phase = Phase.DISCOVERY
        self._leader_heard = self._tick
        info = FollowerInfo(
            sid=self._sid, accepted_epoch=self._accepted_epoch, last_zxid=self.last_zxid
        )
        return [Send(to=peer, message=info)]

    def disconnected(self, peer: int) -> list[Effect]:
        if self._server_state is ServerState.LEADING:
            # The leader forgets the learner; the half-tick quorum check decides whether
            # that costs the leadership (as ZooKeeper's syncedAckSet check does).
            self._learners.pop(peer, None)
            return []
        if self._phase is Phase.LOOKING or peer != self._leader:
            return []
        if self._phase is Phase.CONNECTING:
            return []  # a failed dial; the tick dials again until init_limit
        return self._give_up(f"connection to leader {peer} lost", step_down=False)

    def receive(self, sender: int, msg: ZabMessage) -> list[Effect]:
        if self._phase is _LOOKING:
            return []
        if self._server_state is _LEADING:
            return self._leader_receive(sender, msg)
        if sender != self._leader:
            return []
        self._leader_heard = self._tick
        return self._learner_receive(msg)

    def on_timer(self, name: str) -> list[Effect]:
        if name != TICK_TIMER:
            raise ReplicationError(self._sid, f"unknown timer {name!r}")
        if self._phase is _LOOKING:
            return []
        self._tick += 1
        effects: list[Effect] = []
        if self._unsynced:
            # Planted bugs leave data un-fsynced until this group commit, one tick/2 later.
            self._unsynced = False
            effects.append(SyncLog())
        if self._server_state is _LEADING:
            effects += self._leader_tick()
        else:
            effects += self._learner_tick()
        if not self._looking():  # the tick may have ended this role
            effects.append(self._rearm_tick)
        return effects

    def client_write(self, request: int, key: str, value: str) -> list[Effect]:
        if self._server_state is not _LEADING:
            return [
                ClientReply(
                    request=request, ok=False, error=ClientFailure.NOT_LEADER, leader=self._leader
                )
            ]
        if self._phase is not _BROADCAST:
            return [
                ClientReply(
                    request=request, ok=False, error=ClientFailure.NOT_SERVING, leader=self._sid
                )
            ]
        assert self._epoch is not None
        self._counter += 1
        txn = Txn(zxid=make_zxid(self._epoch, self._counter), key=key, value=value)
        self._log.append(txn)
        # The leader's own ACK counts once its AppendTxns(sync=True) ran: it precedes
        # every later effect, including the commit below when the quorum is 1.
        self._pending[txn.zxid] = _Pending(txn=txn, acks={self._sid}, request=request)
        effects: list[Effect] = [
            Emit(kind="propose", fields={"zxid": txn.zxid, "key": key, "value": value}),
            AppendTxns(txns=(txn,), sync=True),
        ]
        proposal = Proposal(txn=txn)  # one immutable message serves every follower
        for sid in self._forwarded()[0]:
            effects.append(Send(to=sid, message=proposal))
        effects += self._commit_ready()
        return effects

    def stop(self) -> list[Effect]:
        """The peer shuts down: fail pending writes (indefinitely), close links."""
        effects = self._abandon(ClientFailure.STOPPED)
        effects.append(CancelTimer(name=TICK_TIMER))
        self._reset()
        return effects

    # ------------------------------------------------------------------ leader
    def _leader_receive(self, sender: int, msg: ZabMessage) -> list[Effect]:
        if sender not in self._roles or sender == self._sid:
            return [CloseQuorum(peer=sender)]
        learner = self._learners.get(sender)
        if learner is not None:
            learner.heard = self._tick
        # The message types are disjoint: the busiest cases come first only because a
        # `match` tries class patterns in order.
        match msg:
            case Ack():
                if learner is None or not learner.voter or learner.stage not in _FORWARDED:
                    return self._drop(sender)
                pending = self._pending.get(msg.zxid)
                if pending is None:
                    return []  # already committed (or a stale epoch): nothing to count
                pending.acks.add(sender)
                return self._commit_ready()
            case Ping():
                return []
            case FollowerInfo():
                if msg.sid != sender:
                    return self._drop(sender)
                return self._on_follower_info(msg)
            case AckEpoch():
                if learner is None or learner.stage is not LearnerStage.INFO or self._epoch is None:
                    return self._drop(sender)
                return self._on_ack_epoch(learner, msg)
            case AckNewLeader():
                if learner is None or learner.stage is not LearnerStage.SYNCING:
                    return self._drop(sender)
                return self._on_ack_new_leader(learner, msg)
            case (
                LeaderInfo()
                | Diff()
                | Trunc()
                | Snap()
                | NewLeader()
                | UpToDate()
                | Proposal()
                | Commit()
                | Inform()
            ):
                return self._drop(sender)  # leader-to-learner traffic sent to a leader
            case _:
                assert_never(msg)

    def _on_follower_info(self, msg: FollowerInfo) -> list[Effect]:
        sid = msg.sid
        self._learners[sid] = _Learner(
            sid=sid,
            voter=sid in self._voters,
            stage=LearnerStage.INFO,
            accepted_epoch=msg.accepted_epoch,
            last_zxid=msg.last_zxid,
            heard=self._tick,
        )
        if self._epoch is not None:
            return [Send(to=sid, message=LeaderInfo(epoch=self._epoch))]
        return self._maybe_propose_epoch()

    def _maybe_propose_epoch(self) -> list[Effect]:
        """Discovery: once a quorum of voters (me included) sent FOLLOWERINFO, pick
        e = max(acceptedEpoch) + 1, persist it, then send LEADERINFO(e)."""
        infos = [lr for lr in self._learners.values() if lr.voter]
        if self._epoch is not None or 1 + len(infos) < self._quorum:
            return []
        epoch = max([self._accepted_epoch, *(lr.accepted_epoch for lr in infos)]) + 1
        self._epoch = epoch
        self._accepted_epoch = epoch
        effects: list[Effect] = [
            PersistAcceptedEpoch(epoch=epoch),
            Emit(kind="epoch_accepted", fields={"epoch": epoch}),
        ]
        for learner in self._learners.values():
            effects.append(Send(to=learner.sid, message=LeaderInfo(epoch=epoch)))
        effects += self._maybe_establish()
        return effects

    def _on_ack_epoch(self, learner: _Learner, msg: AckEpoch) -> list[Effect]:
        learner.stage = LearnerStage.EPOCH_ACKED
        learner.current_epoch = msg.current_epoch
        learner.last_zxid = msg.last_zxid
        if self._phase is Phase.DISCOVERY:
            if learner.voter and (msg.current_epoch, msg.last_zxid) > self._summary:
                # A follower knows more than I do: FLE picked the wrong leader (or my
                # data was lost). ZooKeeper's waitForEpochAck refuses to lead.
                return self._give_up(
                    f"follower {learner.sid} is ahead: (epoch {msg.current_epoch}, zxid "
                    f"{msg.last_zxid:#x}) > {self._summary}",
                    step_down=True,
                )
            return self._maybe_establish()
        return self._sync_learner(learner)

    def _maybe_establish(self) -> list[Effect]:
        acked = sorted(
            lr.sid
            for lr in self._learners.values()
            if lr.voter and lr.stage is not LearnerStage.INFO
        )
        if self._phase is not Phase.DISCOVERY or self._epoch is None:
            return []
        if 1 + len(acked) < self._quorum:
            return []
        epoch = self._epoch
        self._current_epoch = epoch
        self._phase = Phase.SYNC
        effects: list[Effect] = [
            PersistCurrentEpoch(epoch=epoch),
            Emit(kind="epoch_current", fields={"epoch": epoch}),
            Emit(
                kind="established",
                fields={
                    "epoch": epoch,
                    "leader": self._sid,
                    "zxid": self.last_zxid,
                    "acked": acked,
                },
            ),
        ]
        for learner in list(self._learners.values()):
            if learner.stage is LearnerStage.EPOCH_ACKED:
                effects += self._sync_learner(learner)
        effects += self._maybe_serve()
        return effects

    def sync_mode(self, follower_zxid: int) -> tuple[SyncMode, int]:
        """Choose how to sync a learner whose last zxid is `follower_zxid`: the mode and
        the zxid its log is cut back to (for TRUNC) or starts after (DIFF), or the
        snapshot zxid (SNAP). Pure; exposed for tests and the simulator."""
        last = self.last_zxid
        if follower_zxid == last:
            return SyncMode.DIFF, last
        if follower_zxid > last:
            return SyncMode.TRUNC, last  # it holds txns I never had
        if follower_zxid < self._base_zxid:
            return SyncMode.SNAP, self._committed  # the txns it lacks are only in my snapshot
        if follower_zxid == self._base_zxid or any(t.zxid == follower_zxid for t in self._log):
            return SyncMode.DIFF, follower_zxid
        # Diverged inside my log: cut it back to my newest txn before its last, then DIFF.
        before = [t.zxid for t in self._log if t.zxid < follower_zxid]
        return SyncMode.TRUNC, before[-1] if before else self._base_zxid

    def _sync_learner(self, learner: _Learner) -> list[Effect]:
        assert self._epoch is not None
        mode, point = self.sync_mode(learner.last_zxid)
        message: Diff | Trunc | Snap
        match mode:
            case SyncMode.DIFF:
                message = Diff(txns=tuple(t for t in self._log if t.zxid > point))
            case SyncMode.TRUNC:
                message = Trunc(zxid=point, txns=tuple(t for t in self._log if t.zxid > point))
            case SyncMode.SNAP:
                message = Snap(
                    zxid=point,
                    state=tuple(sorted(self._state.items())),
                    txns=tuple(t for t in self._log if t.zxid > point),
                )
            case _:
                assert_never(mode)
        learner.stage = LearnerStage.SYNCING
        return [
            Emit(
                kind="sync",
                fields={
                    "mode": str(mode),
                    "peer": learner.sid,
                    "from": learner.last_zxid,
                    "to": self.last_zxid,
                },
            ),
            Send(to=learner.sid, message=message),
            Send(to=learner.sid, message=NewLeader(epoch=self._epoch, zxid=self.last_zxid)),
        ]

    def _on_ack_new_leader(self, learner: _Learner, msg: AckNewLeader) -> list[Effect]:
        learner.stage = LearnerStage.SYNCED
        learner.last_zxid = msg.zxid
        if learner.voter:
            # Its NEWLEADER ACK says it holds everything up to msg.zxid on disk, so it
            # also acknowledges my outstanding proposals up to there.
            for pending in self._pending.values():
                if pending.txn.zxid <= msg.zxid:
                    pending.acks.add(learner.sid)
        if self._phase is Phase.BROADCAST:
            effects: list[Effect] = [Send(to=learner.sid, message=UpToDate(zxid=self._committed))]
            return effects + self._commit_ready()
        return self._maybe_serve()

    def _maybe_serve(self) -> list[Effect]:
        """With a quorum of NEWLEADER ACKs: commit my whole history, UPTODATE, serve."""
        synced = [
            lr for lr in self._learners.values() if lr.voter and lr.stage is LearnerStage.SYNCED
        ]
        if self._phase is not Phase.SYNC or 1 + len(synced) < self._quorum:
            return []
        assert self._epoch is not None
        self._phase = Phase.BROADCAST
        self._counter = 0
        effects: list[Effect] = []
        for txn in [t for t in self._log if t.zxid > self._committed]:
            effects.append(Emit(kind="commit", fields={"zxid": txn.zxid}))
            effects += self._apply(txn)
        for learner in self._learners.values():
            if learner.stage is LearnerStage.SYNCED:
                effects.append(Send(to=learner.sid, message=UpToDate(zxid=self._committed)))
        return effects

    def _commit_ready(self) -> list[Effect]:
        """Commit outstanding proposals strictly in zxid order: stop at the first one
        without a quorum, even if a later one has it (ACKs may arrive out of order).

        `_pending` is in zxid order without sorting: only `client_write` adds to it, with
        increasing zxids, and it is emptied whenever the epoch changes. Its `acks` hold
        voters only (the ACK and NEWLEADER-ACK paths check `voter`), so counting them is
        counting the quorum. An ACK for a later proposal costs one look at the oldest."""
        pending_by_zxid = self._pending
        effects: list[Effect] = []
        followers: list[int] | None = None
        observers: list[int] = []
        while pending_by_zxid:
            zxid = next(iter(pending_by_zxid))
            pending = pending_by_zxid[zxid]
            if len(pending.acks) < self._quorum:
                break
            del pending_by_zxid[zxid]
            effects.append(Emit(kind="commit", fields={"zxid": zxid}))
            effects += self._apply(pending.txn)
            if followers is None:  # learners do not change while committing
                followers, observers = self._forwarded()
            commit = Commit(zxid=zxid)  # one immutable message serves every follower
            for sid in followers:
                effects.append(Send(to=sid, message=commit))
            if observers:
                inform = Inform(txn=pending.txn)
                for sid in observers:
                    effects.append(Send(to=sid, message=inform))
            if pending.request is not None:
                effects.append(ClientReply(request=pending.request, ok=True, zxid=zxid))
        return effects

    def _forwarded(self) -> tuple[list[int], list[int]]:
        """The learners that get every proposal/commit from now on: (voters, observers)."""
        voters: list[int] = []
        observers: list[int] = []
        for lr in self._learners.values():
            if lr.stage in _FORWARDED:
                (voters if lr.voter else observers).append(lr.sid)
        return voters, observers

    def _leader_tick(self) -> list[Effect]:
        ping = Ping(zxid=self.last_zxid)  # one immutable message serves every learner
        effects: list[Effect] = [Send(to=sid, message=ping) for sid in self._learners]
        if self._phase is not _BROADCAST:
            if self._tick - self._phase_start >= 2 * self._timing.init_limit:
                return self._give_up(
                    f"not serving within init_limit={self._timing.init_limit} ticks",
                    step_down=True,
                )
            return effects
        # Heard from since tick - window; counted every half-tick, listed only on step-down.
        since = self._tick - 2 * self._timing.sync_limit
        heard = 1
        for lr in self._learners.values():
            if lr.voter and lr.heard >= since:
                heard += 1
        if heard >= self._quorum or self._bug is Bug.NO_STEP_DOWN:
            return effects
        alive = sorted(lr.sid for lr in self._learners.values() if lr.voter and lr.heard >= since)
        return self._give_up(
            f"heard from only {[self._sid, *alive]} within sync_limit="
            f"{self._timing.sync_limit} ticks, quorum is {self._quorum}",
            step_down=True,
        )

    def _drop(self, sender: int) -> list[Effect]:
        """A learner broke the protocol: close only its connection."""
        self._learners.pop(sender, None)
        return [CloseQuorum(peer=sender)]

    # ------------------------------------------------------------------ learner
    def _learner_receive(self, msg: ZabMessage) -> list[Effect]:
        # Broadcast traffic first (see _leader_receive): the types are disjoint.
        match msg:
            case Proposal():
                if self._phase not in _SYNC_OR_BROADCAST:
                    return self._unexpected(msg)
                if self._server_state is _OBSERVING:
                    return []  # never counted: an observer does not ACK
                return self._on_proposal(msg)
            case Commit():
                if self._phase not in _SYNC_OR_BROADCAST:
                    return self._unexpected(msg)
                if msg.zxid > self.last_zxid:
                    return self._give_up(f"commit of {msg.zxid:#x} I never logged", step_down=False)
                return self._deliver_upto(msg.zxid)
            case Ping():
                return []
            case LeaderInfo():
                if self._phase is not Phase.DISCOVERY:
                    return self._unexpected(msg)
                return self._on_leader_info(msg)
            case Diff() | Trunc() | Snap():
                if self._phase is not Phase.SYNC or self._epoch is None:
                    return self._unexpected(msg)
                return self._on_sync(msg)
            case NewLeader():
                if self._phase is not Phase.SYNC or msg.epoch != self._epoch:
                    return self._unexpected(msg)
                return self._on_new_leader(msg)
            case UpToDate():
                if self._phase is not Phase.SYNC or self._current_epoch != self._epoch:
                    return self._unexpected(msg)
                self._phase = Phase.BROADCAST
                return self._deliver_upto(msg.zxid)
            case Inform():
                if self._phase not in _SYNC_OR_BROADCAST:
                    return self._unexpected(msg)
                effects: list[Effect] = []
                if msg.txn.zxid > self.last_zxid:
                    self._log.append(msg.txn)
                    effects.append(AppendTxns(txns=(msg.txn,), sync=False))
                return effects + self._deliver_upto(msg.txn.zxid)
            case FollowerInfo() | AckEpoch() | AckNewLeader() | Ack():
                return self._unexpected(msg)
            case _:
                assert_never(msg)

    def _on_leader_info(self, msg: LeaderInfo) -> list[Effect]:
        assert self._leader is not None
        if msg.epoch < self._accepted_epoch:
            return self._give_up(
                f"leader {self._leader} proposed epoch {msg.epoch} < my accepted epoch "
                f"{self._accepted_epoch}",
                step_down=False,
            )
        effects: list[Effect] = []
        if msg.epoch > self._accepted_epoch:
            self._accepted_epoch = msg.epoch
            if self._bug is not Bug.SKIP_ACCEPTED_EPOCH:
                effects.append(PersistAcceptedEpoch(epoch=msg.epoch))
            # Bug.SKIP_ACCEPTED_EPOCH: accepted in memory and logged, never on disk.
            effects.append(Emit(kind="epoch_accepted", fields={"epoch": msg.epoch}))
        self._epoch = msg.epoch
        self._phase = Phase.SYNC
        ack = AckEpoch(current_epoch=self._current_epoch, last_zxid=self.last_zxid)
        effects.append(Send(to=self._leader, message=ack))
        return effects

    def _on_sync(self, msg: Diff | Trunc | Snap) -> list[Effect]:
        assert self._leader is not None
        before = self.last_zxid
        effects: list[Effect] = []
        match msg:
            case Diff():
                mode = SyncMode.DIFF
            case Trunc():
                mode = SyncMode.TRUNC
                target = msg.zxid
                if self._bug is Bug.TRUNC_TOO_FAR:
                    # ZOOKEEPER-1156: one txn too many is cut, below the divergence point.
                    older = [t.zxid for t in self._log if t.zxid < target]
                    target = older[-1] if older else self._base_zxid
                if target < self._base_zxid:
                    return self._give_up(
                        f"TRUNC to {target:#x} is below my snapshot {self._base_zxid:#x}",
                        step_down=False,
                    )
                effects.append(Emit(kind="trunc", fields={"from": before, "to": target}))
                effects.append(TruncateLog(zxid=target))
                self._truncate(target)
            case Snap():
                mode = SyncMode.SNAP
                state = dict(msg.state)
                effects.append(InstallSnapshot(zxid=msg.zxid, state=state))
                self._base_zxid = msg.zxid
                self._base_state = dict(state)
                self._state = dict(state)
                self._log = []
                self._committed = msg.zxid
                self._since_snapshot = 0
            case _:
                assert_never(msg)
        fresh = tuple(t for t in msg.txns if t.zxid > self.last_zxid)
        if fresh:
            # Not fsynced yet: NEWLEADER's SyncLog covers the whole sync at once.
            self._log.extend(fresh)
            effects.append(AppendTxns(txns=fresh, sync=False))
        effects.insert(
            0,
            Emit(
                kind="sync",
                fields={
                    "mode": str(mode),
                    "peer": self._leader,
                    "from": before,
                    "to": self.last_zxid,
                },
            ),
        )
        return effects

    def _truncate(self, target: int) -> None:
        self._log = [t for t in self._log if t.zxid <= target]
        if self._committed > target:
            # The applied prefix loses txns: rebuild the data from the base snapshot.
            self._state = dict(self._base_state)
            for txn in self._log:
                self._state[txn.key] = txn.value
            self._committed = self.last_zxid

    def _on_new_leader(self, msg: NewLeader) -> list[Effect]:
        assert self._leader is not None
        epoch = msg.epoch
        persist: list[Effect] = []
        if self._current_epoch != epoch:
            persist = [
                PersistCurrentEpoch(epoch=epoch),
                Emit(kind="epoch_current", fields={"epoch": epoch}),
            ]
        self._current_epoch = epoch
        ack = Send(to=self._leader, message=AckNewLeader(epoch=epoch, zxid=self.last_zxid))
        if self._bug is Bug.NEWLEADER_ACK_BEFORE_FSYNC:
            # ZOOKEEPER-3911: the ACK leaves while the synced txns are only in the page
            # cache; the fsync comes on the next tick.
            self._unsynced = True
            return [*persist, ack]
        return [SyncLog(), *persist, ack]

    def _on_proposal(self, msg: Proposal) -> list[Effect]:
        assert self._leader is not None
        txn = msg.txn
        log = self._log
        if txn.zxid <= (log[-1].zxid if log else self._base_zxid):  # `last_zxid`, inlined
            return []  # already have it (sent in the sync data too)
        log.append(txn)
        if self._bug is Bug.ACK_BEFORE_FSYNC:
            # Group commit done wrong: ACK now, fsync on the next tick.
            self._unsynced = True
            append = AppendTxns(txns=(txn,), sync=False)
        else:
            append = AppendTxns(txns=(txn,), sync=True)
        zxid = txn.zxid
        return [
            append,
            Emit(kind="ack", fields={"zxid": zxid, "from": self._sid, "to": self._leader}),
            Send(to=self._leader, message=Ack(zxid=zxid)),
        ]

    def _learner_tick(self) -> list[Effect]:
        assert self._leader is not None
        leader = self._leader
        if self._phase is not _BROADCAST:
            if self._tick - self._phase_start >= 2 * self._timing.init_limit:
                return self._give_up(
                    f"not synced with leader {leader} within init_limit="
                    f"{self._timing.init_limit} ticks",
                    step_down=False,
                )
            if self._phase is Phase.CONNECTING:
                return [ConnectLeader(leader=leader)] if self._tick % 2 == 0 else []
            return [Send(to=leader, message=Ping(zxid=self.last_zxid))]
        if self._tick - self._leader_heard >= 2 * self._timing.sync_limit:
            return self._give_up(
                f"nothing from leader {leader} for sync_limit={self._timing.sync_limit} ticks",
                step_down=False,
            )
        return [Send(to=leader, message=Ping(zxid=self.last_zxid))]

    def _unexpected(self, msg: ZabMessage) -> list[Effect]:
        return self._give_up(
            f"unexpected {type(msg).__name__} from leader {self._leader} in phase {self._phase}",
            step_down=False,
        )

    # ------------------------------------------------------------------ shared
    def _deliver_upto(self, zxid: int) -> list[Effect]:
        # The log is sorted by zxid: bisect for the slice (committed, zxid] instead of
        # scanning the whole log on every COMMIT. The slice is a copy, so `_apply` may
        # replace `_log` (snapshot) while we iterate.
        log = self._log
        committed = self._committed
        if log and log[-1].zxid == zxid and (len(log) == 1 or log[-2].zxid <= committed):
            # The common COMMIT: of the newest txn, right after the applied prefix.
            return self._apply(log[-1]) if committed < zxid else []
        start = bisect_right(log, committed, key=_ZXID)
        end = bisect_right(log, zxid, lo=start, key=_ZXID)
        effects: list[Effect] = []
        for txn in log[start:end]:
            effects += self._apply(txn)
        return effects

    def _apply(self, txn: Txn) -> list[Effect]:
        self._state[txn.key] = txn.value
        self._committed = txn.zxid
        effects: list[Effect] = [
            Emit(kind="deliver", fields={"zxid": txn.zxid, "key": txn.key, "value": txn.value})
        ]
        self._since_snapshot += 1
        if self._since_snapshot >= self._snap_threshold:
            effects.append(WriteSnapshot(zxid=txn.zxid, state=dict(self._state)))
            self._since_snapshot = 0
            self._snap_threshold = self._draw_threshold()
            # The snapshot becomes the base: the log before it is no longer needed.
            self._base_zxid = txn.zxid
            self._base_state = dict(self._state)
            self._log = [t for t in self._log if t.zxid > txn.zxid]
        return effects

    def _give_up(self, reason: str, *, step_down: bool) -> list[Effect]:
        effects: list[Effect] = []
        if step_down:
            effects.append(Emit(kind="step_down", fields={"reason": reason, "epoch": self._epoch}))
        effects += self._abandon(ClientFailure.LEADERSHIP_LOST)
        effects += [CancelTimer(name=TICK_TIMER), GoLooking(reason=reason)]
        self._reset()
        return effects

    def _abandon(self, failure: ClientFailure) -> list[Effect]:
        effects: list[Effect] = [
            ClientReply(request=p.request, ok=False, error=failure, leader=None)
            for p in self._pending.values()
            if p.request is not None
        ]
        if self._server_state is ServerState.LEADING:
            effects += [CloseQuorum(peer=sid) for sid in sorted(self._learners)]
        elif self._leader is not None and self._phase is not Phase.LOOKING:
            effects.append(CloseQuorum(peer=self._leader))
        return effects

    def _reset(self) -> None:
        self._server_state = ServerState.LOOKING
        self._phase = Phase.LOOKING
        self._leader = None
        self._epoch = None
        self._learners = {}
        self._pending = {}

    def _enter(self, server_state: ServerState, phase: Phase, leader: int) -> None:
        self._server_state = server_state
        self._phase = phase
        self._leader = leader
        self._epoch = None
        self._phase_start = self._tick

    def _require_looking(self, what: str) -> None:
        if self._phase is not Phase.LOOKING:
            raise ReplicationError(
                self._sid, f"{what}() while {self._server_state} in phase {self._phase}"
            )

    def _looking(self) -> bool:
        # A method, not an inline test: mypy would keep `_phase` narrowed across calls.
        return self._phase is _LOOKING

    def _draw_threshold(self) -> int:
        # ZooKeeper randomises the snapshot point so peers do not snapshot together.
        count = self._timing.snap_count
        return self._rng.randint(count // 2, count)


_FORWARDED = (LearnerStage.SYNCING, LearnerStage.SYNCED)
_ZXID = attrgetter("zxid")
