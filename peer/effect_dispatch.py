"""Performing a core's effects: one dispatch, shared by the real peer and the simulated one.

This module owns what each `peer.effects` effect means, so that `peer.node.Node` (the
asyncio adapter) and `harness.sim.world.SimPeer` (the simulator's peer) provably run the
same effect semantics. `EffectRunner._run` performs a list of effects strictly in
order through one table from effect type to handler, built per subclass, so a subclass
that overrides a hook is called without a second lookup.

- Applied here, once: the storage-facing effects and the events that go with them.
  PersistAcceptedEpoch / PersistCurrentEpoch write the epoch files (the core emits
  `epoch_*` itself, right after); AppendTxns writes, and fsyncs when asked; SyncLog
  fsyncs what was written (group commit) and logs `logged` for each txn it made
  durable, with the (file, offset) `Storage.sync` returned; TruncateLog, WriteSnapshot
  and InstallSnapshot call their `Storage` method (each syncs itself) and keep the
  list of unsynced txns true. `Emit` goes to the event log as it comes; Decided and
  GoLooking queue the next core call (`replica.lead` / `replica.follow(leader)` /
  a new election) behind the current one, never nested.
- Hooks each adapter implements (the transport): `_send`, `_set_timer`,
  `_cancel_timer`, `_connect_leader`, `_close_quorum`, `_client_reply`, and the
  optional `_now_leading` / `_now_following` around a decided election.

Storage calls complete before the next effect runs, so a core that lists "append, then
send ACK" gets exactly that (persist before send). Nothing here reads a clock or
touches a socket; the only I/O is through `storage` and `events`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableSequence
from typing import Any, ClassVar, Protocol, assert_never

from peer.domain import ServerState, Txn
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
)
from peer.native import mypyc_attr
from peer.replication import Replica
from peer.storage import Storage

CoreCall = Callable[[], list[Any]]


class EventSink(Protocol):
    """An event log: `harness.events.EventWriter`, or the simulator's `SimLog`."""

    def emit(self, kind: str, fields: Mapping[str, Any] | None = None, **more: Any) -> None: ...


Handler = Callable[[Any, Any], None]


# The real peer's `peer.node.Node` stays Python and subclasses this class, which the
# native build (`peer.native`) compiles: mypyc allows that only when told so.
@mypyc_attr(allow_interpreted_subclasses=True)
class EffectRunner:
    """Performs effects for one peer; subclasses supply the transport hooks below.

    A subclass sets `storage`, `replica`, `events`, `sid`, an empty `_unsynced` list and
    a `_queue` of core calls that its input loop drains after each call."""

    sid: int
    storage: Storage
    replica: Replica
    events: EventSink
    _unsynced: list[Txn]
    _queue: MutableSequence[CoreCall]
    _effect_table: ClassVar[dict[type, Handler]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._effect_table = {
            Send: cls._on_send,
            Emit: cls._on_emit,
            SetTimer: cls._on_set_timer,
            CancelTimer: cls._on_cancel_timer,
            Decided: cls._on_decided,
            GoLooking: cls._on_go_looking,
            ConnectLeader: cls._on_connect_leader,
            CloseQuorum: cls._on_close_quorum,
            PersistAcceptedEpoch: cls._on_persist_accepted_epoch,
            PersistCurrentEpoch: cls._on_persist_current_epoch,
            AppendTxns: cls._on_append_txns,
            SyncLog: cls._on_sync_log,
            TruncateLog: cls._on_truncate_log,
            WriteSnapshot: cls._on_write_snapshot,
            InstallSnapshot: cls._on_install_snapshot,
            ClientReply: cls._on_client_reply,
        }

    def _run(self, effects: Iterable[Any]) -> None:
        """Perform `effects` strictly in order."""
        table = self._effect_table
        for effect in effects:
            try:
                handler = table[type(effect)]
            except KeyError:
                raise TypeError(f"peer {self.sid}: unknown effect {effect!r}") from None
            handler(self, effect)

    # --- transport hooks ------------------------------------------------------------

    def _start_election(self) -> list[Any]:
        raise NotImplementedError

    def _send(self, to: int, message: Any) -> None:
        raise NotImplementedError

    def _set_timer(self, name: str, delay_ms: int) -> None:
        raise NotImplementedError

    def _cancel_timer(self, name: str) -> None:
        raise NotImplementedError

    def _connect_leader(self, leader: int) -> None:
        raise NotImplementedError

    def _close_quorum(self, peer: int) -> None:
        raise NotImplementedError

    def _client_reply(self, reply: ClientReply) -> None:
        raise NotImplementedError

    def _now_leading(self) -> None:
        """Called after `replica.lead` is queued (the node feeds early learners)."""

    def _now_following(self) -> None:
        """Called before `replica.follow` is queued (the node drops early learners)."""

    # --- the effects ----------------------------------------------------------------

    def _on_send(self, effect: Send) -> None:
        self._send(effect.to, effect.message)

    def _on_emit(self, effect: Emit) -> None:
        self.events.emit(effect.kind, effect.fields)

    def _on_set_timer(self, effect: SetTimer) -> None:
        self._set_timer(effect.name, effect.delay_ms)

    def _on_cancel_timer(self, effect: CancelTimer) -> None:
        self._cancel_timer(effect.name)

    def _on_decided(self, effect: Decided) -> None:
        state = effect.state
        match state:
            case ServerState.LEADING:
                self._queue.append(self.replica.lead)
                self._now_leading()
            case ServerState.FOLLOWING | ServerState.OBSERVING:
                self._now_following()
                leader = effect.vote.leader
                replica = self.replica
                self._queue.append(lambda: replica.follow(leader))
            case ServerState.LOOKING:
                pass
            case _:
                assert_never(state)

    def _on_go_looking(self, effect: GoLooking) -> None:
        self._queue.append(self._start_election)

    def _on_connect_leader(self, effect: ConnectLeader) -> None:
        self._connect_leader(effect.leader)

    def _on_close_quorum(self, effect: CloseQuorum) -> None:
        self._close_quorum(effect.peer)

    def _on_persist_accepted_epoch(self, effect: PersistAcceptedEpoch) -> None:
        self.storage.set_accepted_epoch(effect.epoch)

    def _on_persist_current_epoch(self, effect: PersistCurrentEpoch) -> None:
        self.storage.set_current_epoch(effect.epoch)

    def _on_append_txns(self, effect: AppendTxns) -> None:
        txns = effect.txns
        self.storage.write(txns)
        self._unsynced.extend(txns)
        if effect.sync:
            self._sync_log()

    def _on_sync_log(self, effect: SyncLog) -> None:
        self._sync_log()

    def _on_truncate_log(self, effect: TruncateLog) -> None:
        zxid = effect.zxid
        self.storage.truncate_after(zxid)
        self._unsynced = [t for t in self._unsynced if t.zxid <= zxid]

    def _on_write_snapshot(self, effect: WriteSnapshot) -> None:
        name = self.storage.write_snapshot(effect.zxid, effect.state)
        self.events.emit("snapshot", zxid=effect.zxid, file=name)

    def _on_install_snapshot(self, effect: InstallSnapshot) -> None:
        self.storage.install_snapshot(effect.zxid, effect.state)
        self._unsynced.clear()
        self.events.emit("snapshot", zxid=effect.zxid, installed=True)

    def _on_client_reply(self, effect: ClientReply) -> None:
        self._client_reply(effect)

    def _sync_log(self) -> None:
        """fsync what was written; `logged` for each txn that made durable."""
        unsynced = self._unsynced
        if not unsynced:
            return
        file, offset = self.storage.sync()
        emit = self.events.emit
        for txn in unsynced:
            emit("logged", zxid=txn.zxid, file=file, offset=offset)
        unsynced.clear()
