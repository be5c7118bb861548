"""Effects: what a pure core asks its adapter to do, in order.

A core call returns a list of effects. The adapter performs them strictly in list
order, and persistence effects complete (fsync) before any later effect runs, so a
core expresses "persist before send" simply by ordering (etcd/raft's Ready rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from peer.domain import ServerState, Vote


@dataclass(frozen=True, slots=True, kw_only=True)
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


@dataclass(frozen=True, slots=True, kw_only=True)
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
