"""Reading event logs: the fast path and the careful path give the same events, and
every bad input is an error naming its line (or a torn tail), never an exception."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import pytest

from harness.events import KINDS, PEER_KINDS, parse_lines, parse_log, read_log, validate

GOOD_PEER = {"t": 5, "kind": "logged", "sid": 1, "boot": 0, "zxid": 7}
GOOD_HARNESS = {"t": 6, "kind": "run_end", "reason": "done"}


def line(record: Any) -> bytes:
    return json.dumps(record).encode() + b"\n"


def test_healthy_log_numbers_every_line() -> None:
    log = parse_log("peer-1.jsonl", line(GOOD_PEER) * 3 + line(GOOD_HARNESS))
    assert [ev.where() for ev in log.events] == [f"peer-1.jsonl:{n}" for n in (1, 2, 3, 4)]
    assert not log.errors and not log.torn_tail
    first = log.events[0]
    assert (first.t, first.kind, first.sid, first.boot) == (5, "logged", 1, 0)
    assert first["zxid"] == 7 and first.fields == GOOD_PEER
    assert log.events[3].sid is None and log.events[3].boot is None


def test_torn_tail_is_noted_not_an_error() -> None:
    log = parse_log("p", line(GOOD_PEER) + b'{"t": 9, "kind": "logg')
    assert log.torn_tail and not log.errors and len(log.events) == 1


def test_complete_last_line_without_newline_is_an_event() -> None:
    log = parse_log("p", line(GOOD_PEER) + line(GOOD_HARNESS).rstrip(b"\n"))
    assert not log.torn_tail and [ev.line for ev in log.events] == [1, 2]


def test_garbage_in_the_middle_names_its_line_and_reading_goes_on() -> None:
    data = line(GOOD_PEER) + b"\x00\x01 not json\n" + line(GOOD_PEER)
    log = parse_log("peer-1.jsonl", data)
    assert [ev.line for ev in log.events] == [1, 3]
    assert [str(e) for e in log.errors] == ["peer-1.jsonl:2: not JSON (Expecting value)"]
    assert not log.torn_tail


def test_blank_and_crlf_lines() -> None:
    data = line(GOOD_PEER) + b"\n   \n" + line(GOOD_PEER).replace(b"\n", b"\r\n")
    log = parse_log("p", data)
    assert [ev.line for ev in log.events] == [1, 4] and not log.errors


def test_what_orjson_refuses_is_read_as_the_stdlib_reads_it() -> None:
    big = dict(GOOD_PEER, zxid=1 << 70)
    bad_utf8 = line(GOOD_HARNESS).replace(b'"done"', b'"d\xffne"')
    log = parse_log("p", line(big) + bad_utf8 + b'{"t": 1, "kind": "run_end", "reason": NaN}\n')
    assert not log.errors
    assert log.events[0]["zxid"] == 1 << 70
    assert log.events[1]["reason"] == "d\ufffdne"


def test_every_kind_of_bad_line_is_an_error_in_line_order() -> None:
    data = b"".join(
        [
            line([1, 2]),  # not an object
            b"[" * 100_000 + b"\n",  # nested too deeply for any parser
            line({"kind": "logged"}),  # no t
            line({"t": 1, "kind": "nope"}),  # unknown kind
            line({"t": 1, "kind": "logged", "sid": "1", "boot": 0, "zxid": 1}),
            line({"t": 1, "kind": "logged", "sid": 1, "boot": 0}),  # no zxid
            line({"t": True, "kind": "run_end", "reason": "x"}),  # bool is not an int
            line({"t": 1, "kind": ["logged"]}),  # unhashable kind
            b"1, 2\n",  # two values on one line
            line(GOOD_PEER),
        ]
    )
    log = parse_log("h", data)
    assert [e.line for e in log.errors] == list(range(1, 10))
    assert [ev.line for ev in log.events] == [10]
    assert "lacks field(s) zxid" in log.errors[5].why
    assert "needs integer field 'sid'" in log.errors[4].why


def minimal(kind: str) -> dict[str, Any]:
    record: dict[str, Any] = {"t": 1, "kind": kind, **dict.fromkeys(KINDS[kind], 0)}
    if kind in PEER_KINDS:
        record.update(sid=1, boot=0)
    return record


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fast_check_agrees_with_validate(kind: str) -> None:
    """For every kind: the full record is read, and dropping any one required key or
    mistyping t/sid/boot gives exactly `validate`'s message."""
    variants = [minimal(kind)]
    for name in variants[0]:
        variants.append({k: v for k, v in variants[0].items() if k != name})
    for name in ("t", "sid", "boot"):
        variants.append({**variants[0], name: "x"})
    for record in variants:
        log = parse_log("p", line(record))
        why = validate(record)
        if why is None:
            assert len(log.events) == 1 and not log.errors
        else:
            assert not log.events and [e.why for e in log.errors] == [why]


def test_parse_lines_is_parse_log_over_text() -> None:
    text = [line(GOOD_PEER).decode(), "garbage\n", '{"t": 1']
    log = parse_lines("p", text)
    assert [ev.line for ev in log.events] == [1]
    assert [e.line for e in log.errors] == [2] and log.torn_tail


def test_read_log_leaves_the_garbage_collector_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "peer-1.jsonl"
    path.write_bytes(line(GOOD_PEER) + b"garbage\n")
    assert gc.isenabled()
    assert len(read_log(path).events) == 1
    assert gc.isenabled()
    gc.disable()
    try:
        read_log(path)
        assert not gc.isenabled()
    finally:
        gc.enable()
