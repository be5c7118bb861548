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

from peer.domain import ServerState, Txn, Vote
from peer.hot import hot_frozen


@hot_frozen
class Send:
    """Send `message` to peer `to` (the adapter picks the channel by message type)."""

    to: int
    message: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class SetTimer:
    """(Re)arm the named timer to fire once after `delay_ms`; re-arming replaces it."""

    name: str
    delay_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelTimer:
    name: str


@hot_frozen
class Emit:
    """Write one event (SPEC section 4) to the event log: a protocol decision."""

    kind: str
    fields: Mapping[str, Any] = field(default_factory=dict)


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


@hot_frozen
class AppendTxns:
    """Append txns to the log; `sync` = fsync before the next effect runs."""

    txns: tuple[Txn, ...]
    sync: bool


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


@hot_frozen
class ClientReply:
    """Answer to client request `request`: ok with its zxid, or a failure naming the
    leader when this peer knows one."""

    request: int
    ok: bool
    zxid: int | None = None
    error: ClientFailure | None = None
    leader: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GoLooking:
    """Leave ZAB and restart the election (peer_epoch=current_epoch, last_zxid,
    committed_zxid read from the replica)."""

    reason: str


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
