"""Domain types shared by the peer's cores and adapters: ids, votes, transactions, timing.

This module owns the vocabulary (ZooKeeper's own words: sid, zxid, peer_epoch,
election_epoch, LOOKING/FOLLOWING/LEADING/OBSERVING). It does no I/O and holds no state.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from peer.hot import hot_frozen

ZXID_COUNTER_BITS = 32
ZXID_COUNTER_MASK = (1 << ZXID_COUNTER_BITS) - 1


def make_zxid(epoch: int, counter: int) -> int:
    """zxid = epoch << 32 | counter, as ZooKeeper builds it."""
    if epoch < 0 or not 0 <= counter <= ZXID_COUNTER_MASK:
        raise ValueError(f"bad zxid parts epoch={epoch} counter={counter}")
    return (epoch << ZXID_COUNTER_BITS) | counter


def epoch_of(zxid: int) -> int:
    return zxid >> ZXID_COUNTER_BITS


def counter_of(zxid: int) -> int:
    return zxid & ZXID_COUNTER_MASK


def format_zxid(zxid: int) -> str:
    """Human form used in messages and reports: 0x<epoch>:<counter>."""
    return f"{epoch_of(zxid):#x}:{counter_of(zxid)}"


class ServerState(StrEnum):
    LOOKING = "LOOKING"
    FOLLOWING = "FOLLOWING"
    LEADING = "LEADING"
    OBSERVING = "OBSERVING"


class Role(StrEnum):
    VOTER = "voter"
    OBSERVER = "observer"


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Vote:
    """A proposal for leader. Field order *is* FastLeaderElection's totalOrderPredicate:
    compare (peer_epoch, zxid, leader) lexicographically, so `a > b` means a wins."""

    peer_epoch: int
    zxid: int
    leader: int


@hot_frozen
class Txn:
    """One replicated write: set `key` to `value`, stamped with its zxid."""

    zxid: int
    key: str
    value: str


class Bug(StrEnum):
    """Planted bug classes (SPEC section 6). Off unless named with --bug."""

    ORDER_IGNORES_EPOCH = "order-ignores-epoch"
    NO_ROUND_CHECK = "no-round-check"
    MINORITY_QUORUM = "minority-quorum"
    NO_STEP_DOWN = "no-step-down"
    SKIP_ACCEPTED_EPOCH = "skip-accepted-epoch"
    ACK_BEFORE_FSYNC = "ack-before-fsync"
    NEWLEADER_ACK_BEFORE_FSYNC = "newleader-ack-before-fsync"
    TRUNC_TOO_FAR = "trunc-too-far"
    VOTE_COMMITTED_ZXID = "vote-committed-zxid"


def quorum_size(voters: int, bug: Bug | None = None) -> int:
    """Strict majority n//2+1 (QuorumMaj); the planted bug uses n//2."""
    if bug is Bug.MINORITY_QUORUM:
        return max(1, voters // 2)
    return voters // 2 + 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """Timing profile. ZooKeeper's defaults are tick 2000 ms, initLimit 10, syncLimit 5,
    finalizeWait 200 ms, notification backoff 200 ms doubling to 60 s, snapCount 100000."""

    tick_ms: int = 100
    init_limit: int = 10
    sync_limit: int = 5
    finalize_wait_ms: int = 200
    min_notification_ms: int = 200
    max_notification_ms: int = 2_000
    snap_count: int = 100

    def __post_init__(self) -> None:
        for name in (
            "tick_ms",
            "init_limit",
            "sync_limit",
            "finalize_wait_ms",
            "min_notification_ms",
            "max_notification_ms",
            "snap_count",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"timing.{name} must be a positive integer, got {value!r}")
        if self.max_notification_ms < self.min_notification_ms:
            raise ValueError("timing.max_notification_ms must be >= min_notification_ms")
        if self.snap_count < 2:
            raise ValueError("timing.snap_count must be >= 2")


FAST = Timing()
ZOOKEEPER = Timing(
    tick_ms=2000,
    init_limit=10,
    sync_limit=5,
    finalize_wait_ms=200,
    min_notification_ms=200,
    max_notification_ms=60_000,
    snap_count=100_000,
)
TIMING_PROFILES: dict[str, Timing] = {"fast": FAST, "zookeeper": ZOOKEEPER}
