"""Network shapes and the cluster's fault state: pure helpers shared by nemesis, simulator, checker.

This module owns three things: how a partition *shape* turns into groups of peers
(`partition_groups`), how groups turn into directed cut links (`cut_links`), and
`NetState`, the state of the faults currently in force (cut links, down peers, paused
peers, link delays) with its transitions and the question the liveness check asks of
it (`connected_majority`). It does no I/O, reads no clock and draws randomness only
from the `random.Random` it is handed.

Theory of operation. A partition is a tuple of *groups*; two peers can talk (both
ways) when some group holds them both. Disjoint groups are an ordinary partition;
overlapping groups express the shapes that are not one (Jepsen's bridge and
majorities ring). `cut_links` turns that into the directed pairs `(i, j)` where i
cannot reach j, which is exactly what the proxy layer enforces (one proxy per
directed link), so a one-way partition is just a cut set that is not symmetric.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, assert_never

from faults.errors import FaultError
from peer.domain import quorum_size

Link = tuple[int, int]
Groups = tuple[frozenset[int], ...]


class Shape(StrEnum):
    """Named partition shapes (Jepsen's nemesis vocabulary, our spelling)."""

    HALVES = "halves"  # a random minority vs the rest
    ISOLATE = "isolate"  # one peer (the step's target, else random) vs the rest
    ISOLATE_LEADER = "isolate-leader"  # the leader at that moment vs the rest
    MAJORITY_RING = "majority-ring"  # everyone sees a majority, no two the same one
    BRIDGE = "bridge"  # two halves, one peer in the middle sees both
    EXPLICIT = "explicit"  # groups given in the plan


def _ordered(peers: Sequence[int]) -> list[int]:
    ordered = sorted(set(peers))
    if len(ordered) != len(peers):
        raise FaultError("duplicate sid in peers", peers=list(peers))
    if not ordered:
        raise FaultError("a partition needs at least one peer")
    return ordered


def _isolate(node: int, ordered: list[int]) -> Groups:
    if node not in ordered:
        raise FaultError("cannot isolate a peer that is not a member", sid=node, peers=ordered)
    rest = frozenset(ordered) - {node}
    return (frozenset({node}), rest) if rest else (frozenset({node}),)


def _ring(ordered: list[int], rng: random.Random) -> Groups:
    # Peers sit on a shuffled ring and can talk to those within ring distance d.
    # Each one then sees 2d+1 >= majority peers, but the largest mutually connected
    # set is a window of d+1 < majority, so no majority can elect (for n >= 4). The
    # groups are the windows of d+1 consecutive peers: two peers share one iff they
    # are within distance d. For n <= 3 a ring cannot do that; the middle peer of a
    # path sees everyone (the bridge shape), the ends see a majority each.
    ring = ordered[:]
    rng.shuffle(ring)
    n = len(ring)
    if n <= 3:
        return tuple(frozenset(ring[k : k + 2]) for k in range(max(1, n - 1)))
    majority = quorum_size(n)
    d = majority // 2  # == ceil((majority - 1) / 2)
    return tuple(frozenset(ring[(k + i) % n] for i in range(d + 1)) for k in range(n))


def _bridge(ordered: list[int], rng: random.Random) -> Groups:
    shuffled = ordered[:]
    rng.shuffle(shuffled)
    middle, rest = shuffled[0], shuffled[1:]
    half = len(rest) // 2
    left = frozenset(rest[:half]) | {middle}
    right = frozenset(rest[half:]) | {middle}
    return (left, right) if left != right else (left,)


def _explicit(ordered: list[int], groups: Iterable[Iterable[int]] | None) -> Groups:
    if groups is None:
        raise FaultError("the explicit shape needs groups")
    result = tuple(frozenset(g) for g in groups)
    members = frozenset(ordered)
    for index, group in enumerate(result):
        if not group:
            raise FaultError("empty group in an explicit partition", group=index)
        stray = sorted(group - members)
        if stray:
            raise FaultError("group names peers that are not members", group=index, sids=stray)
    missing = sorted(members - frozenset().union(*result)) if result else sorted(members)
    if missing:
        raise FaultError("explicit partition leaves peers out of every group", sids=missing)
    return result


def partition_groups(
    shape: Shape | str,
    peers: Sequence[int],
    *,
    leader: int | None,
    rng: random.Random,
    groups: Iterable[Iterable[int]] | None = None,
    node: int | None = None,
) -> Groups:
    """The groups of a partition of `peers` of this shape (pure, seeded by `rng`).

    `leader` is the leader at the moment the step runs (None when there is none:
    `isolate-leader` then cuts nothing and returns one group of everyone). `node` is
    the peer `isolate` cuts off (a random one when None). `groups` is required by, and
    only used for, `explicit`."""
    try:
        kind = Shape(shape)
    except ValueError:
        raise FaultError(
            "unknown partition shape", shape=shape, known=[s.value for s in Shape]
        ) from None
    ordered = _ordered(peers)
    match kind:
        case Shape.HALVES:
            shuffled = ordered[:]
            rng.shuffle(shuffled)
            cut = len(shuffled) // 2  # the minority side first, as Jepsen's bisect
            if cut == 0:
                return (frozenset(shuffled),)
            return (frozenset(shuffled[:cut]), frozenset(shuffled[cut:]))
        case Shape.ISOLATE:
            return _isolate(rng.choice(ordered) if node is None else node, ordered)
        case Shape.ISOLATE_LEADER:
            if leader is None:
                return (frozenset(ordered),)
            return _isolate(leader, ordered)
        case Shape.MAJORITY_RING:
            return _ring(ordered, rng)
        case Shape.BRIDGE:
            return _bridge(ordered, rng)
        case Shape.EXPLICIT:
            return _explicit(ordered, groups)
        case _:
            assert_never(kind)


def cut_links(groups: Iterable[Iterable[int]]) -> frozenset[Link]:
    """Directed pairs (i, j) of the groups' peers where i cannot reach j: those that
    share no group. Symmetric by construction (a one-way cut is added separately)."""
    sets = [frozenset(g) for g in groups]
    everyone = sorted(frozenset().union(*sets)) if sets else []
    return frozenset(
        (i, j)
        for i, j in itertools.permutations(everyone, 2)
        if not any(i in g and j in g for g in sets)
    )


def all_links(peers: Iterable[int]) -> frozenset[Link]:
    """Every directed link between distinct peers."""
    return frozenset(itertools.permutations(sorted(set(peers)), 2))


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Delay:
    """Latency (with jitter) on one directed link, as a Toxiproxy latency toxic."""

    src: int
    dst: int
    latency_ms: int
    jitter_ms: int = 0


def _sids(raw: Any, name: str) -> frozenset[int]:
    if not isinstance(raw, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) for s in raw
    ):
        raise FaultError("NetState field must be a list of sids", field=name, got=raw)
    return frozenset(raw)


def _int_list(raw: Any, size: int, name: str) -> list[int]:
    if (
        not isinstance(raw, list)
        or len(raw) != size
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in raw)
    ):
        raise FaultError(f"NetState {name} entries must be lists of {size} integers", got=raw)
    return raw


@dataclass(frozen=True, slots=True, kw_only=True)
class NetState:
    """The faults in force: what the nemesis logs after every step, what the
    simulator enforces and what the checker replays. Change it with its methods."""

    cut: frozenset[Link] = frozenset()
    down: frozenset[int] = frozenset()
    paused: frozenset[int] = frozenset()
    delays: tuple[Delay, ...] = ()  # sorted by (src, dst), one per link

    # --- transitions -------------------------------------------------------------
    def partition(self, groups: Iterable[Iterable[int]]) -> NetState:
        """A new partition replaces every cut in force (one-way cuts included)."""
        return replace(self, cut=cut_links(groups))

    def cut_one_way(self, links: Iterable[Link]) -> NetState:
        """Add directed cuts on top of those in force."""
        return replace(self, cut=self.cut | {(i, j) for i, j in links if i != j})

    def heal(self) -> NetState:
        """Clear every network fault (cuts and delays); processes are untouched."""
        return replace(self, cut=frozenset(), delays=())

    def delay(self, links: Iterable[Link], *, latency_ms: int, jitter_ms: int = 0) -> NetState:
        """Set the delay of these links (replacing what they had)."""
        chosen = {(i, j) for i, j in links if i != j}
        kept = [d for d in self.delays if (d.src, d.dst) not in chosen]
        added = [Delay(src=i, dst=j, latency_ms=latency_ms, jitter_ms=jitter_ms) for i, j in chosen]
        return replace(self, delays=tuple(sorted(kept + added)))

    def take_down(self, sids: Iterable[int]) -> NetState:
        """Crashed or stopped: a down peer is not paused any more (SIGKILL ends it)."""
        gone = frozenset(sids)
        return replace(self, down=self.down | gone, paused=self.paused - gone)

    def bring_up(self, sids: Iterable[int]) -> NetState:
        return replace(self, down=self.down - frozenset(sids))

    def pause(self, sids: Iterable[int]) -> NetState:
        return replace(self, paused=self.paused | (frozenset(sids) - self.down))

    def resume(self, sids: Iterable[int]) -> NetState:
        return replace(self, paused=self.paused - frozenset(sids))

    # --- questions ---------------------------------------------------------------
    def can_reach(self, src: int, dst: int) -> bool:
        return src == dst or (src, dst) not in self.cut

    def delay_of(self, src: int, dst: int) -> Delay | None:
        for d in self.delays:
            if (d.src, d.dst) == (src, dst):
                return d
        return None

    def connected_majority(self, voters: Iterable[int]) -> frozenset[int] | None:
        """A majority of `voters` that are up, not paused, and can all reach one
        another both ways; None when there is none. When several exist, the largest
        one, ties broken by the smallest sorted sids (so the answer is deterministic).
        Delays do not disconnect. Brute force over subsets, fine for the few voters
        an ensemble has."""
        members = sorted(set(voters))
        need = quorum_size(len(members)) if members else 1
        alive = [s for s in members if s not in self.down and s not in self.paused]
        for size in range(len(alive), need - 1, -1):
            for subset in itertools.combinations(alive, size):
                if all(
                    self.can_reach(i, j) and self.can_reach(j, i)
                    for i, j in itertools.combinations(subset, 2)
                ):
                    return frozenset(subset)
        return None

    # --- event fields ------------------------------------------------------------
    def to_fields(self) -> dict[str, Any]:
        """The state as `fault` event fields: sorted lists, JSON-ready."""
        return {
            "cut": [[i, j] for i, j in sorted(self.cut)],
            "down": sorted(self.down),
            "paused": sorted(self.paused),
            "delays": [[d.src, d.dst, d.latency_ms, d.jitter_ms] for d in self.delays],
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> NetState:
        """Rebuild from `to_fields()` output (e.g. a `fault` event); `delays` optional."""
        for name in ("cut", "down", "paused"):
            if name not in fields:
                raise FaultError("NetState fields lack a required field", field=name)
        cut_raw = fields["cut"]
        if not isinstance(cut_raw, list):
            raise FaultError("NetState field must be a list of [i, j]", field="cut", got=cut_raw)
        cut = frozenset((p[0], p[1]) for p in (_int_list(x, 2, "cut") for x in cut_raw))
        delays_raw = fields.get("delays", [])
        if not isinstance(delays_raw, list):
            raise FaultError("NetState field must be a list", field="delays", got=delays_raw)
        delays = sorted(
            Delay(src=d[0], dst=d[1], latency_ms=d[2], jitter_ms=d[3])
            for d in (_int_list(x, 4, "delays") for x in delays_raw)
        )
        return cls(
            cut=cut,
            down=_sids(fields["down"], "down"),
            paused=_sids(fields["paused"], "paused"),
            delays=tuple(delays),
        )
