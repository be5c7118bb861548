"""Unit tests of the pure toxic decisions (no sockets, no clock)."""

from __future__ import annotations

import itertools
import random

import pytest

from faults.toxiproxy import toxics
from faults.toxiproxy.toxics import ToxicType


def test_applies_follows_toxicity_and_is_seeded() -> None:
    rng = random.Random(7)
    draws = [toxics.applies(0.5, rng) for _ in range(2000)]
    assert 0.45 < sum(draws) / len(draws) < 0.55
    assert draws == [toxics.applies(0.5, r) for r in [random.Random(7)] for _ in range(2000)]
    assert all(toxics.applies(2.5, rng) for _ in range(100))  # no range check
    assert not any(toxics.applies(-1, rng) for _ in range(100))
    assert not any(toxics.applies(0, rng) for _ in range(100))


def test_latency_delay_jitter_range_and_negative() -> None:
    rng = random.Random(1)
    assert toxics.latency_delay({"latency": 50, "jitter": 0}, rng) == 0.05
    delays = {toxics.latency_delay({"latency": 50, "jitter": 5}, rng) for _ in range(500)}
    assert min(delays) == pytest.approx(0.045) and max(delays) == pytest.approx(0.054)
    assert toxics.latency_delay({"latency": -5, "jitter": 0}, rng) == 0.0


def test_bandwidth_pieces_kb_is_1000_bytes() -> None:
    pieces = toxics.bandwidth_pieces(500_000, 500)
    assert pieces is not None
    assert sum(p.wait for p in pieces) == pytest.approx(1.0)
    assert all(p.end - p.start <= 50_000 for p in pieces)
    assert pieces[0].start == 0 and pieces[-1].end == 500_000
    small = toxics.bandwidth_pieces(100, 100)
    assert small is not None and len(small) == 1 and small[0].wait == pytest.approx(0.001)
    assert toxics.bandwidth_pieces(10, 0) is None
    assert toxics.bandwidth_pieces(10, -3) is None


def test_slicer_matches_recorded_sizes() -> None:
    # Recorded from toxiproxy-server: avg 100, var 0 turns 1000 B into 16 pieces of 62/63.
    pieces = toxics.slicer_pieces(
        1000, {"average_size": 100, "size_variation": 0, "delay": 20000}, random.Random(0)
    )
    sizes = [p.end - p.start for p in pieces]
    assert sizes == [62, 63] * 8
    assert [p.wait for p in pieces] == [0.0] + [0.02] * 15


@pytest.mark.parametrize("variation", [0, 10, 64, 200])
def test_slicer_pieces_cover_the_chunk_in_order(variation: int) -> None:
    rng = random.Random(variation)
    attrs = {"average_size": 64, "size_variation": variation, "delay": 0}
    for size in (1, 2, 63, 64, 1000, 32768):
        pieces = toxics.slicer_pieces(size, attrs, rng)
        assert pieces[0].start == 0 and pieces[-1].end == size
        assert all(a.end == b.start for a, b in itertools.pairwise(pieces))
        assert all(p.end > p.start for p in pieces)


def test_slicer_zero_average_does_not_crash() -> None:
    # toxiproxy-server overflows its stack here (PR #770); we pass the chunk whole.
    pieces = toxics.slicer_pieces(
        5000, toxics.default_attributes(ToxicType.SLICER), random.Random()
    )
    assert [(p.start, p.end) for p in pieces] == [(0, 5000)]


def test_limit_data_cut() -> None:
    assert toxics.limit_data_cut(0, 6, 10) == toxics.Cut(forward=6, close=False)
    assert toxics.limit_data_cut(6, 6, 10) == toxics.Cut(forward=4, close=True)
    assert toxics.limit_data_cut(0, 10, 10) == toxics.Cut(forward=10, close=True)
    assert toxics.limit_data_cut(0, 5, 0) == toxics.Cut(forward=0, close=True)


def test_merge_attributes_go_semantics() -> None:
    base = toxics.default_attributes(ToxicType.LATENCY)
    assert base == {"latency": 0, "jitter": 0}
    merged = toxics.merge_attributes(
        ToxicType.LATENCY, base, {"Latency": 5, "foo": 1, "jitter": None}, field_prefix="x"
    )
    assert merged == {"latency": 5, "jitter": 0}
    assert toxics.merge_attributes(ToxicType.LATENCY, merged, None, field_prefix="x") == merged
    with pytest.raises(toxics.AttributeDecodeError, match="cannot unmarshal string into Go"):
        toxics.merge_attributes(ToxicType.LATENCY, base, {"latency": "fifty"}, field_prefix="x")
    with pytest.raises(toxics.AttributeDecodeError, match=r"number 1\.5"):
        toxics.merge_attributes(ToxicType.LATENCY, base, {"latency": 1.5}, field_prefix="x")
    with pytest.raises(toxics.AttributeDecodeError, match=r"of type int$"):
        toxics.merge_attributes(ToxicType.SLICER, {}, {"delay": True}, field_prefix="x")


def test_parse_stream_and_type() -> None:
    assert toxics.parse_stream("UPSTREAM") is toxics.Stream.UPSTREAM
    assert toxics.parse_stream("sideways") is None
    assert toxics.parse_type("noop") is ToxicType.NOOP
    assert toxics.parse_type("Latency") is None
