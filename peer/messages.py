"""Messages the peers exchange, as frozen dataclasses (codecs live in `wire`).

Election traffic (FLE notifications) travels on the election port; ZAB traffic
(discovery, sync, broadcast, pings) on the quorum port. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass

from peer.domain import ServerState, Vote


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """An FLE vote: sender, its state, its proposed vote and its round (logicalclock)."""

    sender: int
    state: ServerState
    vote: Vote
    round: int


# ZAB messages are defined below by the replication core's author.
