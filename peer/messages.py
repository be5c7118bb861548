"""Messages the peers exchange, as frozen dataclasses (codecs live in `wire`).

Election traffic (FLE notifications) travels on the election port; ZAB traffic
(discovery, sync, broadcast, pings) on the quorum port. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass

from peer.domain import ServerState, Txn, Vote
from peer.hot import hot_frozen


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """An FLE vote: sender, its state, its proposed vote and its round (logicalclock)."""

    sender: int
    state: ServerState
    vote: Vote
    round: int


# ZAB messages are defined below by the replication core's author.


# ---------------------------------------------------------------------------
# ZAB messages (quorum port). One connection per learner: the learner dials the
# leader and both directions use it. Field names follow ZooKeeper's packets
# (FOLLOWERINFO, LEADERINFO, ACKEPOCH, DIFF/TRUNC/SNAP, NEWLEADER, UPTODATE,
# PROPOSAL, ACK, COMMIT, INFORM, PING); NEWLEADER's ACK is its own type here.


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowerInfo:
    """Learner -> leader, first frame: who I am (lets the adapter map the connection),
    my acceptedEpoch and my last logged zxid."""

    sid: int
    accepted_epoch: int
    last_zxid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaderInfo:
    """Leader -> learner: the epoch the leader proposes, max(acceptedEpoch) + 1."""

    epoch: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AckEpoch:
    """Learner -> leader: I accepted the epoch; here is my currentEpoch and last zxid."""

    current_epoch: int
    last_zxid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Diff:
    """Sync by difference: append these txns (all after the learner's last zxid)."""

    txns: tuple[Txn, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Trunc:
    """Sync by truncation: drop every logged txn after `zxid`, then append `txns`."""

    zxid: int
    txns: tuple[Txn, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Snap:
    """Sync by snapshot: replace log and state with `state` at `zxid`, then append `txns`."""

    zxid: int
    state: tuple[tuple[str, str], ...]
    txns: tuple[Txn, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class NewLeader:
    """End of the sync data: the learner's history now ends at `zxid` in epoch `epoch`."""

    epoch: int
    zxid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AckNewLeader:
    """Learner -> leader: synced txns are on disk and currentEpoch = epoch is persisted."""

    epoch: int
    zxid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UpToDate:
    """Leader -> learner: start serving; everything up to `zxid` is committed."""

    zxid: int


# The broadcast messages (PROPOSAL, ACK, COMMIT, PING) are made once per write or tick
# per follower: `hot_frozen` (frozen for mypy, see `peer.hot.hot_frozen`).


@hot_frozen
class Proposal:
    txn: Txn


@hot_frozen
class Ack:
    """Follower -> leader: the proposal `zxid` is logged (fsynced, unless a bug says no)."""

    zxid: int


@hot_frozen
class Commit:
    zxid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Inform:
    """Leader -> observer: a committed txn (observers never see proposals or ACK)."""

    txn: Txn


@hot_frozen
class Ping:
    """Liveness, both ways every tick/2; carries the sender's last zxid for people."""

    zxid: int


ZabMessage = (
    FollowerInfo
    | LeaderInfo
    | AckEpoch
    | Diff
    | Trunc
    | Snap
    | NewLeader
    | AckNewLeader
    | UpToDate
    | Proposal
    | Ack
    | Commit
    | Inform
    | Ping
)
