"""THE event schema: one JSONL contract shared by peers, harness, nemesis, workload and checker.

Every event is one JSON object on one line with `t` (CLOCK_MONOTONIC nanoseconds, one
clock for every process of the machine), `kind`, and, for peer events, `sid` and `boot`.
`KINDS` lists every kind with the fields it must carry; extra fields are allowed (they
are information for people and reports, never needed by the checker).

Files of a run dir: `peer-<sid>.jsonl` (a peer, all boots appended), `harness.jsonl`
(launcher and nemesis), `history.jsonl` (workload). A log may end in a torn line (the
writer was SIGKILLed mid-write): readers accept it and report it; garbage anywhere else
is an error naming the file and line.

This module does no clock reading except in `EventWriter` (an adapter used by processes).
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

try:  # orjson parses about twice as fast; the checker's throughput is mostly parsing
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency, this is a fallback
    _fast_loads = json.loads  # type: ignore[assignment]

# kind -> required fields (besides t, kind). Peer kinds also require sid and boot.
PEER_KINDS: dict[str, tuple[str, ...]] = {
    # first event of every boot: what was recovered, and the planted bug if any
    "boot": ("last_zxid", "current_epoch", "accepted_epoch", "snapshot_zxid", "bug", "role"),
    "recovered": ("snapshot_zxid", "replayed", "last_zxid", "current_epoch", "accepted_epoch"),
    "listening": ("election_port", "quorum_port", "client_port"),
    "state": ("state", "round"),
    "vote_sent": ("to", "leader", "zxid", "peer_epoch", "round", "state"),
    "vote_recv": ("from", "leader", "zxid", "peer_epoch", "round", "state"),
    "vote_ignored": ("from", "why"),
    "decided": ("leader", "round", "peer_epoch", "state"),
    "epoch_accepted": ("epoch",),
    "epoch_current": ("epoch",),
    "established": ("epoch",),
    "sync": ("mode", "peer", "from", "to"),
    "trunc": ("from", "to"),
    "propose": ("zxid", "key", "value"),
    "logged": ("zxid",),
    "ack": ("zxid", "from", "to"),
    "commit": ("zxid",),
    "deliver": ("zxid", "key", "value"),
    "snapshot": ("zxid",),
    "step_down": ("reason",),
    "bad_frame": ("peer", "why"),
    "shutdown": ("reason",),
}
HARNESS_KINDS: dict[str, tuple[str, ...]] = {
    "run_start": ("peers", "seed"),
    "spawn": ("pid",),
    "exit": ("pid", "code"),
    "fault": ("step", "what", "targets"),
    "fault_failed": ("step", "what", "why"),
    "run_end": ("reason",),
}
HISTORY_KINDS: dict[str, tuple[str, ...]] = {
    "invoke": ("process", "op", "id"),
    "ok": ("process", "op", "id"),
    "fail": ("process", "op", "id", "error"),
    "info": ("process", "op", "id", "error"),
}
KINDS: dict[str, tuple[str, ...]] = {**PEER_KINDS, **HARNESS_KINDS, **HISTORY_KINDS}

PEER_LOG_GLOB = "peer-*.jsonl"
HARNESS_LOG = "harness.jsonl"
HISTORY_LOG = "history.jsonl"


def peer_log_name(sid: int) -> str:
    return f"peer-{sid}.jsonl"


class EventError(Exception):
    """A log line that is not a valid event; says which file and line."""

    def __init__(self, source: str, line: int, why: str) -> None:
        super().__init__(f"{source}:{line}: {why}")
        self.source = source
        self.line = line
        self.why = why


class Event:
    """One event as read back: the decoded record plus where it was read (for evidence).

    Deliberately a plain slotted class rather than a frozen dataclass: a checker reads
    millions of these, and a frozen dataclass's __init__ (object.__setattr__ per field)
    and a copied fields dict cost more than the checking itself. Treat it as immutable.
    `fields` is the whole record (t, kind, sid and boot included)."""

    __slots__ = ("boot", "fields", "kind", "line", "sid", "source", "t")

    def __init__(
        self,
        t: int,
        kind: str,
        sid: int | None,
        boot: int | None,
        fields: Mapping[str, Any],
        source: str = "",
        line: int = 0,
    ) -> None:
        self.t = t
        self.kind = kind
        self.sid = sid
        self.boot = boot
        self.fields = fields
        self.source = source
        self.line = line

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def where(self) -> str:
        return f"{self.source}:{self.line}"

    def __repr__(self) -> str:
        return f"Event({self.where()} {self.kind} sid={self.sid} t={self.t})"


def validate(record: Mapping[str, Any]) -> str | None:
    """Why `record` is not a valid event, or None when it is."""
    t = record.get("t")
    if type(t) is not int:
        return "field t (monotonic ns) missing or not an integer"
    kind = record.get("kind")
    if type(kind) is not str:
        return "field kind missing or not a string"
    required = KINDS.get(kind)
    if required is None:
        return f"unknown event kind {kind!r}"
    if kind in PEER_KINDS:
        for name in ("sid", "boot"):
            if type(record.get(name)) is not int:
                return f"{kind} event needs integer field {name!r}"
    for name in required:
        if name not in record:
            missing = [n for n in required if n not in record]
            return f"{kind} event lacks field(s) {', '.join(missing)}"
    return None


# What `validate` checks, worked out once per kind for the reader's fast path: every
# key the kind needs (t, kind, sid and boot for peer kinds, its own fields) as one set,
# so a record is checked with one C-level `keys() >= set` instead of a loop per field.
_FAST_SPECS: dict[str, tuple[frozenset[str], bool]] = {
    kind: (
        frozenset(("t", "kind", *(("sid", "boot") if kind in PEER_KINDS else ()), *required)),
        kind in PEER_KINDS,
    )
    for kind, required in KINDS.items()
}


def to_event(record: Mapping[str, Any], source: str = "", line: int = 0) -> Event:
    return Event(
        t=record["t"],
        kind=record["kind"],
        sid=record.get("sid"),
        boot=record.get("boot"),
        fields=record,
        source=source,
        line=line,
    )


@dataclass(slots=True)
class LogRead:
    """Result of reading one log: the events, and what was wrong with it."""

    source: str
    events: list[Event] = field(default_factory=list)
    torn_tail: bool = False
    errors: list[EventError] = field(default_factory=list)


def parse_log(source: str, data: bytes) -> LogRead:
    """Parse the bytes of a JSONL log (pure). A bad *last* line without its newline is
    a torn tail (noted, not an error); a bad line anywhere else is an error naming the
    line, and reading goes on. Blank lines are skipped but counted.

    Fast path, the shape of every healthy log: one orjson call per line through `map`
    (no Python frame per line; a whole-file array parse is no faster and cannot tell
    which line was bad), then one loop that validates each record against its kind's
    precomputed key set and builds its `Event`. The first line orjson rejects (garbage,
    a blank line, invalid UTF-8, a number orjson cannot hold) sends the file to the
    careful per-line path, which keeps the records already good and says what is wrong
    with the rest."""
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline, else its unfinished line
    result = LogRead(source=source)
    try:
        records: list[Any] = list(map(_fast_loads, lines))
    except (ValueError, RecursionError):  # JSONDecodeError (orjson's too) is a ValueError
        records = [_load_line(source, number, raw, result) for number, raw in enumerate(lines, 1)]
    _add_events(result, records)
    if tail.strip():
        try:
            record = _load_any(tail)
        except (ValueError, RecursionError):
            result.torn_tail = True
        else:
            _add_events(result, [record], after=len(lines))
    if result.errors:  # JSON errors were noted before the validation errors: line order
        result.errors.sort(key=lambda err: err.line)
    return result


# Marks a line that produced no record (blank, or an error already noted).
_SKIP: Any = object()


def _load_any(raw: bytes) -> Any:
    """orjson first; what it refuses but the stdlib takes (NaN, integers beyond 64 bits,
    lone surrogates, invalid UTF-8 replaced) is still read as the stdlib reads it."""
    try:
        return _fast_loads(raw)
    except ValueError:
        return json.loads(raw.decode("utf-8", errors="replace"))


def _load_line(source: str, number: int, raw: bytes, result: LogRead) -> Any:
    if not raw.strip():
        return _SKIP
    try:
        return _load_any(raw)
    except json.JSONDecodeError as exc:
        result.errors.append(EventError(source, number, f"not JSON ({exc.msg})"))
    except RecursionError:
        result.errors.append(EventError(source, number, "not JSON (nested too deeply)"))
    return _SKIP


def _add_events(result: LogRead, records: list[Any], after: int = 0) -> None:
    """Validate `records` (record i is line `after`+i+1) and append their events."""
    source, specs, skip = result.source, _FAST_SPECS, _SKIP
    append = result.events.append
    new, event_type = object.__new__, Event
    number = after
    for record in records:
        number += 1
        if record is skip:
            continue
        try:
            kind = record["kind"]
            t = record["t"]
            required, peer = specs[kind]
            sid = record.get("sid")
            boot = record.get("boot")
        except (KeyError, TypeError):
            ok = False
        else:
            ok = (
                type(t) is int
                and record.keys() >= required
                and (not peer or (type(sid) is int and type(boot) is int))
            )
        if ok:
            # `Event(t, kind, sid, boot, record, source, number)` without the call into
            # __init__ (a third of the cost of reading a line): same slots, same values
            event = new(event_type)
            event.t = t
            event.kind = kind
            event.sid = sid
            event.boot = boot
            event.fields = record
            event.source = source
            event.line = number
            append(event)
            continue
        # The slow, exact judgement (and its message) for what the fast check refused.
        if type(record) is not dict:
            result.errors.append(EventError(source, number, "not a JSON object"))
            continue
        why = validate(record)
        if why is not None:
            result.errors.append(EventError(source, number, why))
            continue
        append(to_event(record, source, number))


def parse_lines(source: str, lines: list[str]) -> LogRead:
    """`parse_log` over text lines (each with its newline, as `readlines` gives them)."""
    return parse_log(source, "".join(lines).encode("utf-8", errors="surrogatepass"))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while reading logs.

    Reading a big run creates millions of objects that live until the check ends (the
    events, and the lists in their records); each automatic collection of the oldest
    generation walks all of them again, which made the collector the largest single
    cost of reading. Events and records form no reference cycles, so nothing is lost
    by pausing it; it is switched back on (if it was on) when the block ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_log(path: Path) -> LogRead:
    """Read one JSONL log file (adapter: file I/O)."""
    with gc_paused():
        return parse_log(path.name, path.read_bytes())


def monotonic_ns() -> int:
    return time.monotonic_ns()


class EventWriter:
    """Appends events to a JSONL file, one write + flush per event, so a SIGKILL can
    tear at most the line being written. Thread-safe (the harness log is written by
    the launcher and the nemesis thread); one writer per file."""

    def __init__(self, path: Path, *, sid: int | None = None, boot: int | None = None) -> None:
        self.path = path
        self.sid = sid
        self.boot = boot
        self._handle: IO[str] = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def emit(self, kind: str, fields: Mapping[str, Any] | None = None, **more: Any) -> None:
        record: dict[str, Any] = {"t": monotonic_ns(), "kind": kind}
        if self.sid is not None:
            record["sid"] = self.sid
        if self.boot is not None:
            record["boot"] = self.boot
        if fields:
            record.update(fields)
        record.update(more)
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()

    def fsync(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_run_logs(run_dir: Path) -> Iterator[Path]:
    """The log files of a run dir, peers first (sorted by sid), then harness, history."""

    def sid_of(path: Path) -> int:
        try:
            return int(path.stem.split("-", 1)[1])
        except (IndexError, ValueError):
            return 1 << 30

    yield from sorted(run_dir.glob(PEER_LOG_GLOB), key=sid_of)
    for name in (HARNESS_LOG, HISTORY_LOG):
        if (run_dir / name).exists():
            yield run_dir / name
