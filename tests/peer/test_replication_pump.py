"""Test support (no tests here): a socket-free pump of N `Replica`s and an in-memory disk.

The disk model executes storage effects the way `peer.storage.Storage` will (append,
fsync, truncate, snapshots, epoch files) and remembers how much of the log is fsynced,
so tests can ask "was it on disk when the ACK left?". Links deliver in FIFO order and
can be cut; nothing here reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from peer.domain import Bug, Role, Timing, Txn
from peer.effects import (
    AppendTxns,
    ClientReply,
    CloseQuorum,
    ConnectLeader,
    Emit,
    GoLooking,
    InstallSnapshot,
    PersistAcceptedEpoch,
    PersistCurrentEpoch,
    Send,
    SyncLog,
    TruncateLog,
    WriteSnapshot,
)
from peer.messages import Ack
from peer.replication import TICK_TIMER, Replica

TIMING = Timing(tick_ms=100, init_limit=10, sync_limit=5, snap_count=1000)


@dataclass
class Disk:
    log: list[Txn] = field(default_factory=list)
    fsynced: int = 0  # how many log entries are on disk for sure
    accepted_epoch: int = 0
    current_epoch: int = 0
    snapshot_zxid: int = 0
    snapshot_state: dict[str, str] = field(default_factory=dict)

    def durable_zxids(self) -> list[int]:
        return [t.zxid for t in self.log[: self.fsynced]]


@dataclass
class Peer:
    replica: Replica
    disk: Disk
    effects: list[Any] = field(default_factory=list)  # every effect, in order
    events: list[Emit] = field(default_factory=list)
    replies: list[ClientReply] = field(default_factory=list)
    looking: list[str] = field(default_factory=list)  # GoLooking reasons

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [dict(e.fields) for e in self.events if e.kind == kind]

    def delivered(self) -> list[int]:
        return [f["zxid"] for f in self.kinds("deliver")]


class Pump:
    def __init__(
        self,
        n: int,
        *,
        observers: tuple[int, ...] = (),
        bug: Bug | None = None,
        disks: dict[int, Disk] | None = None,
        timing: Timing = TIMING,
    ) -> None:
        roles = {
            sid: (Role.OBSERVER if sid in observers else Role.VOTER) for sid in range(1, n + 1)
        }
        self.peers: dict[int, Peer] = {}
        for sid in roles:
            disk = (disks or {}).get(sid) or Disk()
            replica = Replica(
                sid=sid,
                roles=roles,
                timing=timing,
                bug=bug,
                snapshot_zxid=disk.snapshot_zxid,
                state=disk.snapshot_state,
                txns=list(disk.log),
                accepted_epoch=disk.accepted_epoch,
                current_epoch=disk.current_epoch,
                seed=sid,
            )
            disk.fsynced = len(disk.log)
            self.peers[sid] = Peer(replica=replica, disk=disk)
        self.queue: deque[tuple[int, int, Any]] = deque()
        self.cut: set[frozenset[int]] = set()
        self.links: set[frozenset[int]] = set()  # quorum connections that are up
        self.acks_at_send: list[tuple[int, int, list[int]]] = []  # (sid, zxid, durable)

    # ------------------------------------------------------------ effects
    def run(self, sid: int, effects: list[Any]) -> None:
        peer = self.peers[sid]
        disk = peer.disk
        for effect in effects:
            peer.effects.append(effect)
            match effect:
                case Send():
                    if isinstance(effect.message, Ack):
                        self.acks_at_send.append((sid, effect.message.zxid, disk.durable_zxids()))
                    self.queue.append((sid, effect.to, effect.message))
                case Emit():
                    peer.events.append(effect)
                case AppendTxns():
                    disk.log.extend(effect.txns)
                    if effect.sync:
                        disk.fsynced = len(disk.log)
                case SyncLog():
                    disk.fsynced = len(disk.log)
                case TruncateLog():
                    disk.log = [t for t in disk.log if t.zxid <= effect.zxid]
                    disk.fsynced = min(disk.fsynced, len(disk.log))
                case InstallSnapshot():
                    disk.log = []
                    disk.fsynced = 0
                    disk.snapshot_zxid = effect.zxid
                    disk.snapshot_state = dict(effect.state)
                case WriteSnapshot():
                    disk.snapshot_zxid = effect.zxid
                    disk.snapshot_state = dict(effect.state)
                case PersistAcceptedEpoch():
                    disk.accepted_epoch = effect.epoch
                case PersistCurrentEpoch():
                    disk.current_epoch = effect.epoch
                case ClientReply():
                    peer.replies.append(effect)
                case GoLooking():
                    peer.looking.append(effect.reason)
                case ConnectLeader():
                    link = frozenset((sid, effect.leader))
                    if link not in self.cut and link not in self.links:
                        self.links.add(link)
                        self.run(sid, peer.replica.connected(effect.leader))
                case CloseQuorum():
                    self.links.discard(frozenset((sid, effect.peer)))
                case _:
                    pass  # timers: the test drives ticks itself

    # ------------------------------------------------------------ driving
    def deliver_all(self, limit: int = 100_000) -> None:
        for _ in range(limit):
            if not self.queue:
                return
            self.step()
        raise AssertionError("pump did not go quiet")

    def step(self) -> None:
        sender, to, msg = self.queue.popleft()
        if frozenset((sender, to)) in self.cut:
            return
        self.run(to, self.peers[to].replica.receive(sender, msg))

    def elect(self, leader: int, members: tuple[int, ...] | None = None) -> None:
        self.run(leader, self.peers[leader].replica.lead())
        for sid in members or tuple(self.peers):
            if sid != leader:
                self.run(sid, self.peers[sid].replica.follow(leader))
        self.deliver_all()

    def tick(self, sids: tuple[int, ...] | None = None) -> None:
        for sid in sids or tuple(self.peers):
            self.run(sid, self.peers[sid].replica.on_timer(TICK_TIMER))
        self.deliver_all()

    def write(self, leader: int, request: int, key: str, value: str) -> None:
        self.run(leader, self.peers[leader].replica.client_write(request, key, value))

    def partition(self, a: int, b: int) -> None:
        self.cut.add(frozenset((a, b)))

    def isolate(self, sid: int) -> None:
        for other in self.peers:
            if other != sid:
                self.partition(sid, other)
