"""Partition shapes, cut links and NetState: the pure helpers shared by nemesis, sim, checker."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faults.errors import FaultError
from faults.topology import (
    Delay,
    NetState,
    Shape,
    all_links,
    cut_links,
    partition_groups,
)
from peer.domain import quorum_size

FIVE = (1, 2, 3, 4, 5)


def reach(groups: tuple[frozenset[int], ...], peers: tuple[int, ...]) -> dict[int, set[int]]:
    """Who each peer can reach (itself included) under the cut of these groups."""
    cut = cut_links(groups)
    return {i: {j for j in peers if i == j or (i, j) not in cut} for i in peers}


def test_halves_splits_a_minority_from_a_majority() -> None:
    groups = partition_groups(Shape.HALVES, FIVE, leader=None, rng=random.Random(1))
    assert len(groups) == 2
    small, big = groups
    assert (len(small), len(big)) == (2, 3)
    assert small | big == frozenset(FIVE) and not small & big
    cut = cut_links(groups)
    assert len(cut) == 2 * 2 * 3  # every cross pair, both directions
    assert all((j, i) in cut for i, j in cut)


def test_halves_is_seeded() -> None:
    one = partition_groups("halves", FIVE, leader=None, rng=random.Random(42))
    two = partition_groups("halves", FIVE, leader=None, rng=random.Random(42))
    assert one == two


def test_isolate_given_node_and_random_node() -> None:
    groups = partition_groups(Shape.ISOLATE, FIVE, leader=None, rng=random.Random(0), node=3)
    assert groups == (frozenset({3}), frozenset({1, 2, 4, 5}))
    assert cut_links(groups) == {(3, j) for j in (1, 2, 4, 5)} | {(j, 3) for j in (1, 2, 4, 5)}
    random_one = partition_groups(Shape.ISOLATE, FIVE, leader=None, rng=random.Random(0))
    assert len(random_one[0]) == 1 and random_one[0] | random_one[1] == frozenset(FIVE)


def test_isolate_refuses_a_non_member() -> None:
    with pytest.raises(FaultError, match="not a member"):
        partition_groups(Shape.ISOLATE, FIVE, leader=None, rng=random.Random(0), node=9)


def test_isolate_leader_cuts_the_leader_or_nothing() -> None:
    groups = partition_groups(Shape.ISOLATE_LEADER, FIVE, leader=4, rng=random.Random(0))
    assert groups == (frozenset({4}), frozenset({1, 2, 3, 5}))
    none = partition_groups(Shape.ISOLATE_LEADER, FIVE, leader=None, rng=random.Random(0))
    assert none == (frozenset(FIVE),)
    assert cut_links(none) == frozenset()


@pytest.mark.parametrize("n", [4, 5, 6, 7, 9])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_majority_ring_everyone_sees_a_majority_but_no_majority_is_connected(
    n: int, seed: int
) -> None:
    peers = tuple(range(1, n + 1))
    groups = partition_groups(Shape.MAJORITY_RING, peers, leader=None, rng=random.Random(seed))
    seen = reach(groups, peers)
    majority = quorum_size(n)
    assert all(len(view) >= majority for view in seen.values())
    assert len({frozenset(v) for v in seen.values()}) == n  # no two see the same set
    assert NetState(cut=cut_links(groups)).connected_majority(peers) is None


def test_majority_ring_of_three_degenerates_to_a_bridge() -> None:
    peers = (1, 2, 3)
    groups = partition_groups(Shape.MAJORITY_RING, peers, leader=None, rng=random.Random(3))
    seen = reach(groups, peers)
    assert sorted(len(v) for v in seen.values()) == [2, 2, 3]


@pytest.mark.parametrize("n", [3, 5, 7])
def test_bridge_middle_sees_both_sides_which_cannot_see_each_other(n: int) -> None:
    peers = tuple(range(1, n + 1))
    left, right = partition_groups(Shape.BRIDGE, peers, leader=None, rng=random.Random(n))
    middle = left & right
    assert len(middle) == 1
    (bridge,) = middle
    seen = reach((left, right), peers)
    assert seen[bridge] == set(peers)
    for i in left - middle:
        assert not seen[i] & (right - middle)
    # each side plus the bridge is a connected majority (n odd)
    found = NetState(cut=cut_links((left, right))).connected_majority(peers)
    assert found is not None and bridge in found and len(found) == quorum_size(n)


def test_explicit_groups_and_their_errors() -> None:
    rng = random.Random(0)
    groups = partition_groups(
        Shape.EXPLICIT, FIVE, leader=None, rng=rng, groups=[[1, 2], [3, 4, 5]]
    )
    assert groups == (frozenset({1, 2}), frozenset({3, 4, 5}))
    with pytest.raises(FaultError, match="needs groups"):
        partition_groups(Shape.EXPLICIT, FIVE, leader=None, rng=rng)
    with pytest.raises(FaultError, match="not members") as stray:
        partition_groups(Shape.EXPLICIT, FIVE, leader=None, rng=rng, groups=[[1, 2, 9], [3, 4, 5]])
    assert "sids=[9]" in str(stray.value)
    with pytest.raises(FaultError, match="leaves peers out") as missing:
        partition_groups(Shape.EXPLICIT, FIVE, leader=None, rng=rng, groups=[[1, 2], [3]])
    assert "sids=[4, 5]" in str(missing.value)
    with pytest.raises(FaultError, match="empty group"):
        partition_groups(Shape.EXPLICIT, FIVE, leader=None, rng=rng, groups=[[], FIVE])


def test_unknown_shape_is_named() -> None:
    with pytest.raises(FaultError, match="unknown partition shape") as info:
        partition_groups("triangle", FIVE, leader=None, rng=random.Random(0))
    assert "'triangle'" in str(info.value)


def test_cut_links_of_overlapping_groups() -> None:
    # 1-2 and 2-3 talk; 1 and 3 share no group
    assert cut_links([[1, 2], [2, 3]]) == {(1, 3), (3, 1)}
    assert cut_links([[1, 2, 3]]) == frozenset()
    assert all_links([1, 2, 3]) == {(1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2)}


@given(
    n=st.integers(min_value=1, max_value=9),
    shape=st.sampled_from([s for s in Shape if s is not Shape.EXPLICIT]),
    seed=st.integers(),
)
def test_every_shape_covers_every_peer(n: int, shape: Shape, seed: int) -> None:
    peers = tuple(range(1, n + 1))
    rng = random.Random(seed)
    groups = partition_groups(shape, peers, leader=rng.choice(peers), rng=rng)
    assert frozenset().union(*groups) == frozenset(peers)
    cut = cut_links(groups)
    assert all(i != j for i, j in cut)
    assert all((j, i) in cut for i, j in cut)  # partitions are symmetric


def test_netstate_transitions() -> None:
    net = NetState().partition([[1, 2], [3, 4, 5]])
    assert net.cut == cut_links([[1, 2], [3, 4, 5]])
    # a new partition replaces the old cut; a one-way cut adds to it
    net = net.partition([[1], [2, 3, 4, 5]]).cut_one_way([(2, 3), (3, 3)])
    assert (1, 2) in net.cut and (2, 3) in net.cut and (3, 2) not in net.cut
    assert (3, 4) not in net.cut and (3, 3) not in net.cut
    assert not net.can_reach(2, 3) and net.can_reach(3, 2)

    net = net.delay([(1, 2), (2, 1)], latency_ms=50, jitter_ms=5).delay([(1, 2)], latency_ms=9)
    assert net.delay_of(1, 2) == Delay(src=1, dst=2, latency_ms=9, jitter_ms=0)
    assert net.delay_of(2, 1) == Delay(src=2, dst=1, latency_ms=50, jitter_ms=5)
    assert net.delay_of(3, 1) is None

    net = net.pause([4]).take_down([5]).pause([5])  # a down peer cannot be paused
    assert net.paused == {4} and net.down == {5}
    net = net.take_down([4])  # SIGKILL ends a paused process: down, no longer paused
    assert net.paused == frozenset() and net.down == {4, 5}
    net = net.heal()
    assert net.cut == frozenset() and net.delays == () and net.down == {4, 5}
    net = net.bring_up([4]).pause([1]).resume([1])
    assert net.down == {5} and net.paused == frozenset()


def test_netstate_fields_round_trip() -> None:
    net = (
        NetState()
        .partition([[1, 2], [3, 4, 5]])
        .cut_one_way([(3, 1)])
        .take_down([2])
        .pause([4])
        .delay([(5, 1)], latency_ms=20, jitter_ms=3)
    )
    fields = net.to_fields()
    assert fields["down"] == [2] and fields["paused"] == [4]
    assert fields["cut"] == sorted(fields["cut"]) and [1, 3] in fields["cut"]
    assert fields["delays"] == [[5, 1, 20, 3]]
    assert NetState.from_fields(fields) == net
    # a `fault` event without delays still loads
    del fields["delays"]
    assert NetState.from_fields(fields).cut == net.cut


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"down": [], "paused": []}, "cut"),
        ({"cut": [[1]], "down": [], "paused": []}, "lists of 2 integers"),
        ({"cut": [], "down": ["x"], "paused": []}, "down"),
        ({"cut": "no", "down": [], "paused": []}, "cut"),
        ({"cut": [], "down": [], "paused": [], "delays": [[1, 2, 3]]}, "lists of 4"),
    ],
)
def test_netstate_from_bad_fields(fields: dict[str, object], message: str) -> None:
    with pytest.raises(FaultError, match=message):
        NetState.from_fields(fields)


def test_connected_majority() -> None:
    assert NetState().connected_majority(FIVE) == frozenset(FIVE)
    minority_down = NetState(down=frozenset({1, 2}))
    assert minority_down.connected_majority(FIVE) == frozenset({3, 4, 5})
    assert NetState(down=frozenset({1}), paused=frozenset({2, 3})).connected_majority(FIVE) is None
    # a one-way cut breaks mutual connectivity: 1 and 2 cannot both be in the set
    one_way = NetState(cut=frozenset({(1, 2)}))
    found = one_way.connected_majority(FIVE)
    assert found is not None and len(found) == 4 and not {1, 2} <= found
    # isolated leader: the other four are the majority
    isolated = NetState().partition([[3], [1, 2, 4, 5]])
    assert isolated.connected_majority(FIVE) == frozenset({1, 2, 4, 5})
    # latency does not disconnect
    slow = NetState().delay(all_links(FIVE), latency_ms=500)
    assert slow.connected_majority(FIVE) == frozenset(FIVE)


@given(
    cut=st.sets(st.tuples(st.integers(1, 5), st.integers(1, 5)).filter(lambda p: p[0] != p[1])),
    down=st.sets(st.integers(1, 5)),
    paused=st.sets(st.integers(1, 5)),
)
def test_connected_majority_is_a_majority_clique_of_live_peers(
    cut: set[tuple[int, int]], down: set[int], paused: set[int]
) -> None:
    net = NetState(cut=frozenset(cut), down=frozenset(down), paused=frozenset(paused - down))
    found = net.connected_majority(FIVE)
    live = [s for s in FIVE if s not in down and s not in paused]
    cliques = [
        set(c)
        for size in range(quorum_size(5), len(live) + 1)
        for c in itertools.combinations(live, size)
        if all(net.can_reach(i, j) and net.can_reach(j, i) for i, j in itertools.permutations(c, 2))
    ]
    if found is None:
        assert cliques == []
    else:
        assert found in cliques
        assert len(found) == max(len(c) for c in cliques)
