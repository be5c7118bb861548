"""The toxic vocabulary and every toxic decision, as a pure core.

This module owns what a toxic *is* (its type, stream and attributes, with Toxiproxy
2.12's names, Go types, defaults and JSON shapes) and what a toxic *decides*: whether it
applies to a connection (toxicity), how long a latency toxic holds a chunk, how a
bandwidth toxic paces bytes, how a slicer cuts a chunk, where limit_data cuts the
stream. It does no I/O, reads no clock and draws randomness only from the
`random.Random` it is handed, so the server adapter (which owns sockets, timers and the
seeded RNG) can replay the same decisions from the same seed.

Theory of operation. A toxic sits on one direction of a proxy ("upstream" is client to
server, "downstream" server to client). For each connection and each toxic in its
direction the adapter rolls `applies(toxicity, rng)` once, when the toxic is attached to
the connection (connection open, toxic added, or toxic updated); a toxic that rolled
"no" passes data untouched. Toxiproxy also re-rolls neighbouring toxics when the chain
changes; we do not (a long-lived connection keeps its decision, which is what a
partition plan needs), and the contract tests document that difference. Each chunk read
off a socket then walks the chain in insertion order, and every function below answers
one question about one chunk.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ToxicType(StrEnum):
    LATENCY = "latency"
    BANDWIDTH = "bandwidth"
    SLOW_CLOSE = "slow_close"
    TIMEOUT = "timeout"
    RESET_PEER = "reset_peer"
    SLICER = "slicer"
    LIMIT_DATA = "limit_data"
    NOOP = "noop"


class Stream(StrEnum):
    UPSTREAM = "upstream"  # client -> server bytes
    DOWNSTREAM = "downstream"  # server -> client bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class AttributeSpec:
    """One attribute as Toxiproxy declares it: JSON key and Go integer type."""

    key: str
    go_type: str  # "int64" or "int": only used for Go-compatible error messages


# Per type: the Go struct name (it appears in Go's JSON error messages) and the
# attributes in the order Toxiproxy serializes them. Every attribute defaults to 0.
GO_STRUCT: dict[ToxicType, str] = {
    ToxicType.LATENCY: "LatencyToxic",
    ToxicType.BANDWIDTH: "BandwidthToxic",
    ToxicType.SLOW_CLOSE: "SlowCloseToxic",
    ToxicType.TIMEOUT: "TimeoutToxic",
    ToxicType.RESET_PEER: "ResetToxic",
    ToxicType.SLICER: "SlicerToxic",
    ToxicType.LIMIT_DATA: "LimitDataToxic",
    ToxicType.NOOP: "NoopToxic",
}

ATTRIBUTES: dict[ToxicType, tuple[AttributeSpec, ...]] = {
    ToxicType.LATENCY: (
        AttributeSpec(key="latency", go_type="int64"),
        AttributeSpec(key="jitter", go_type="int64"),
    ),
    ToxicType.BANDWIDTH: (AttributeSpec(key="rate", go_type="int64"),),
    ToxicType.SLOW_CLOSE: (AttributeSpec(key="delay", go_type="int64"),),
    ToxicType.TIMEOUT: (AttributeSpec(key="timeout", go_type="int64"),),
    ToxicType.RESET_PEER: (AttributeSpec(key="timeout", go_type="int64"),),
    ToxicType.SLICER: (
        AttributeSpec(key="average_size", go_type="int"),
        AttributeSpec(key="size_variation", go_type="int"),
        AttributeSpec(key="delay", go_type="int"),
    ),
    ToxicType.LIMIT_DATA: (AttributeSpec(key="bytes", go_type="int64"),),
    ToxicType.NOOP: (),
}

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


class AttributeDecodeError(ValueError):
    """An attribute value Go's encoding/json would refuse; `str()` is Go's message."""


def parse_stream(raw: str) -> Stream | None:
    """Toxiproxy parses the stream case-insensitively (and stores it verbatim)."""
    match raw.lower():
        case "upstream":
            return Stream.UPSTREAM
        case "downstream":
            return Stream.DOWNSTREAM
        case _:
            return None


def parse_type(raw: str) -> ToxicType | None:
    """Toxic type names are exact (case-sensitive), as in Toxiproxy's registry."""
    try:
        return ToxicType(raw)
    except ValueError:
        return None


def default_attributes(kind: ToxicType) -> dict[str, int]:
    return {spec.key: 0 for spec in ATTRIBUTES[kind]}


def _json_kind(value: Any) -> str:
    """The word Go's encoding/json uses for a JSON value's kind in errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object"


def merge_attributes(
    kind: ToxicType, current: dict[str, int], raw: Any, *, field_prefix: str
) -> dict[str, int]:
    """Decode `raw` (the JSON `attributes` value) on top of `current`, like Go does.

    Keys match case-insensitively, unknown keys are ignored, JSON null leaves a value
    unchanged, and a value of the wrong JSON type is an error worded as Go words it.
    `field_prefix` is the struct path Go prints ("LatencyToxic.attributes" on create,
    ".attributes" on update).
    """
    merged = dict(current)
    if raw is None:
        return merged
    if not isinstance(raw, dict):
        raise AttributeDecodeError(
            f"json: cannot unmarshal {_json_kind(raw)} into Go struct field "
            f"{field_prefix} of type toxics.{GO_STRUCT[kind]}"
        )
    specs = {spec.key: spec for spec in ATTRIBUTES[kind]}
    for key, value in raw.items():
        spec = specs.get(key.lower())
        if spec is None or value is None:
            continue
        where = f"Go struct field {field_prefix}.{spec.key} of type {spec.go_type}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AttributeDecodeError(f"json: cannot unmarshal {_json_kind(value)} into {where}")
        if isinstance(value, float) or not _INT64_MIN <= value <= _INT64_MAX:
            # Go refuses a fraction, an exponent or an out-of-range number for an int.
            raise AttributeDecodeError(f"json: cannot unmarshal number {value} into {where}")
        merged[spec.key] = value
    return merged


# --- decisions -------------------------------------------------------------------


def applies(toxicity: float, rng: random.Random) -> bool:
    """Does a toxic apply to one connection? A uniform draw in [0,1) below `toxicity`.

    No range check, as in Toxiproxy: toxicity >= 1 always applies, <= 0 never does.
    """
    return rng.random() < toxicity


def latency_delay(attributes: dict[str, int], rng: random.Random) -> float:
    """Seconds one chunk is held, measured from when it was read off the socket.

    `latency + uniform integer in [-jitter, +jitter)` ms, re-drawn per chunk; a
    negative result means no delay (Toxiproxy accepts negative latency).
    """
    delay_ms = attributes.get("latency", 0)
    jitter = attributes.get("jitter", 0)
    if jitter > 0:
        delay_ms += rng.randrange(-jitter, jitter)
    return max(0, delay_ms) / 1000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Piece:
    """A slice of a chunk and how long to wait before sending it (seconds)."""

    start: int
    end: int
    wait: float


BANDWIDTH_INTERVAL = 0.1  # Toxiproxy sends large chunks in 100 ms slices


def bandwidth_pieces(size: int, rate_kb: int) -> list[Piece] | None:
    """How a bandwidth toxic paces `size` bytes at `rate_kb` KB/s (KB = 1000 bytes).

    A chunk larger than 100 ms worth of bytes goes out in 100 ms slices; the rest goes
    out after its own share of time. The waits are durations: the adapter adds them to
    a per-connection virtual clock so timer error does not accumulate. `None` means
    the stream stalls (rate <= 0), until the toxic is removed or updated.
    """
    if rate_kb <= 0:
        return None
    per_interval = rate_kb * 100
    pieces: list[Piece] = []
    start = 0
    while size - start > per_interval:
        pieces.append(Piece(start=start, end=start + per_interval, wait=BANDWIDTH_INTERVAL))
        start += per_interval
    pieces.append(Piece(start=start, end=size, wait=(size - start) / (rate_kb * 1000.0)))
    return pieces


def slicer_pieces(size: int, attributes: dict[str, int], rng: random.Random) -> list[Piece]:
    """Cut a chunk of `size` bytes the way Toxiproxy's slicer does, without its crashes.

    Each piece is halved (midpoint moved by a uniform draw in [-variation, +variation))
    until it is at most `average_size + size_variation` bytes; each piece is followed
    by a pause of `delay` microseconds (expressed here as the wait before the next
    piece; the pause after the last piece is dropped, it would only delay the
    next chunk). Toxiproxy recurses forever on `average_size <= 0` (stack overflow, PR #770)
    and can slice out of range when `size_variation >= average_size` (#541); here a
    non-positive average passes the chunk whole and a cut point is kept strictly
    inside its piece.
    """
    average = attributes.get("average_size", 0)
    variation = max(0, attributes.get("size_variation", 0))
    pause = max(0, attributes.get("delay", 0)) / 1_000_000.0
    bounds: list[tuple[int, int]] = []
    if average <= 0 or size <= 0:
        bounds.append((0, size))
    else:
        # Depth-first over an explicit stack (right half pushed first) keeps pieces in
        # stream order without recursion.
        stack = [(0, size)]
        while stack:
            start, end = stack.pop()
            if end - start - average <= variation or end - start < 2:
                bounds.append((start, end))
                continue
            mid = start + (end - start) // 2
            if variation > 0:
                mid += rng.randrange(-variation, variation)
            mid = min(max(mid, start + 1), end - 1)
            stack.append((mid, end))
            stack.append((start, mid))
    return [
        Piece(start=start, end=end, wait=0.0 if index == 0 else pause)
        for index, (start, end) in enumerate(bounds)
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Cut:
    """limit_data's answer for one chunk: forward `forward` bytes, then maybe close."""

    forward: int
    close: bool


def limit_data_cut(transmitted: int, size: int, limit: int) -> Cut:
    """limit_data forwards at most `limit` bytes per connection and direction in total.

    The chunk that crosses the limit is cut; the connection closes as soon as the count
    reaches the limit, so `limit = 0` closes on the first data (not at connect).
    """
    forward = min(size, max(0, limit - transmitted))
    return Cut(forward=forward, close=transmitted + forward >= limit)


def millis(value: int) -> float:
    """Toxiproxy's millisecond attributes (timeouts, slow_close delay) in seconds."""
    return max(0, value) / 1000.0
