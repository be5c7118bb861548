"""Effects: what a pure core asks its adapter to do, in order.

A core call returns a list of effects. The adapter performs them strictly in list
order, and persistence effects complete (fsync) before any later effect runs, so a
core expresses "persist before send" simply by ordering (etcd/raft's Ready rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from peer.domain import ServerState, Txn, Vote, slot_setters


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Send `message` to peer `to` (the adapter picks the channel by message type)."""

    to: int
    message: Any

    # Send, Emit, AppendTxns and ClientReply are made for every message, event, write
    # and client answer: their `__init__` is hand-written for speed (same fields and
    # defaults as the generated one; see `peer.domain.slot_setters`).
    def __init__(self, *, to: int, message: Any) -> None:
        _SEND_TO(self, to)
        _SEND_MESSAGE(self, message)


@dataclass(frozen=True, slots=True, kw_only=True)
class SetTimer:
    """(Re)arm the named timer to fire once after `delay_ms`; re-arming replaces it."""

    name: str
    delay_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Emit:
    """Write one event (SPEC section 4) to the event log: a protocol decision."""

    kind: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __init__(self, *, kind: str, fields: Mapping[str, Any] | None = None) -> None:
        _EMIT_KIND(self, kind)
        _EMIT_FIELDS(self, {} if fields is None else fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class Decided:
    """FLE finished: the peer now is `state` with `vote.leader` as leader."""

    state: ServerState
    vote: Vote
    round: int


# ---------------------------------------------------------------------------
# Replication (ZAB) effects. Persistence effects map onto peer.storage.Storage:
# PersistAcceptedEpoch -> set_accepted_epoch, PersistCurrentEpoch -> set_current_epoch,
# AppendTxns(sync=True) -> append (write + fsync), AppendTxns(sync=False) -> write,
# SyncLog -> sync, TruncateLog -> truncate_after, WriteSnapshot -> write_snapshot,
# InstallSnapshot -> install_snapshot. The adapter emits `logged` (per txn, once an
# fsync covers it) and `snapshot` (once written); the core emits every other event.


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectLeader:
    """Learner: dial the leader's quorum port (again, if a dial is already pending)."""

    leader: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseQuorum:
    """Close the quorum connection with `peer` (a learner, or the leader)."""

    peer: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistAcceptedEpoch:
    epoch: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistCurrentEpoch:
    epoch: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendTxns:
    """Append txns to the log; `sync` = fsync before the next effect runs."""

    txns: tuple[Txn, ...]
    sync: bool

    def __init__(self, *, txns: tuple[Txn, ...], sync: bool) -> None:
        _APPEND_TXNS(self, txns)
        _APPEND_SYNC(self, sync)


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncLog:
    """fsync everything appended so far (group commit); a no-op when nothing is pending."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TruncateLog:
    """Drop every logged txn after `zxid` (durably) before the next effect runs."""

    zxid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteSnapshot:
    """Write the applied state as of `zxid` (committed) as a new snapshot."""

    zxid: int
    state: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallSnapshot:
    """Replace log and state with a snapshot received from the leader (SNAP sync)."""

    zxid: int
    state: Mapping[str, str]


class ClientFailure(StrEnum):
    """Why a client write was not accepted. NOT_LEADER and NOT_SERVING are definite
    (the write was not proposed); LEADERSHIP_LOST and STOPPED are indefinite (it was
    proposed and may still commit under a later leader: a Jepsen `info`)."""

    NOT_LEADER = "not-leader"
    NOT_SERVING = "not-serving"
    LEADERSHIP_LOST = "leadership-lost"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientReply:
    """Answer to client request `request`: ok with its zxid, or a failure naming the
    leader when this peer knows one."""

    request: int
    ok: bool
    zxid: int | None = None
    error: ClientFailure | None = None
    leader: int | None = None

    def __init__(
        self,
        *,
        request: int,
        ok: bool,
        zxid: int | None = None,
        error: ClientFailure | None = None,
        leader: int | None = None,
    ) -> None:
        _REPLY_REQUEST(self, request)
        _REPLY_OK(self, ok)
        _REPLY_ZXID(self, zxid)
        _REPLY_ERROR(self, error)
        _REPLY_LEADER(self, leader)


@dataclass(frozen=True, slots=True, kw_only=True)
class GoLooking:
    """Leave ZAB and restart the election (peer_epoch=current_epoch, last_zxid,
    committed_zxid read from the replica)."""

    reason: str


_SEND_TO, _SEND_MESSAGE = slot_setters(Send, "to", "message")
_EMIT_KIND, _EMIT_FIELDS = slot_setters(Emit, "kind", "fields")
_APPEND_TXNS, _APPEND_SYNC = slot_setters(AppendTxns, "txns", "sync")
_REPLY_REQUEST, _REPLY_OK, _REPLY_ZXID, _REPLY_ERROR, _REPLY_LEADER = slot_setters(
    ClientReply, "request", "ok", "zxid", "error", "leader"
)

ZabEffect = (
    Send
    | SetTimer
    | CancelTimer
    | Emit
    | ConnectLeader
    | CloseQuorum
    | PersistAcceptedEpoch
    | PersistCurrentEpoch
    | AppendTxns
    | SyncLog
    | TruncateLog
    | WriteSnapshot
    | InstallSnapshot
    | ClientReply
    | GoLooking
)
"""Every effect `peer.replication.Replica` returns; the adapter matches on it."""
