"""Run dir adapter for the checker: reads the files, calls the pure checker, writes the verdict.

This module owns the file side of checking: it reads `cluster.json` (`peer.config`),
every `peer-<sid>.jsonl`, `harness.jsonl` and `history.jsonl` (`harness.events.read_log`)
into a `RunLogs`, and writes `verdict.json` atomically. It holds no checking rule:
those live in `harness.checker`, which sees only the data read here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.checker import RunLogs, Verdict, check
from harness.errors import HarnessError
from harness.events import (
    HARNESS_LOG,
    HISTORY_LOG,
    PEER_LOG_GLOB,
    LogRead,
    gc_paused,
    read_log,
)
from peer.config import ConfigError, load_config

CONFIG_FILE = "cluster.json"
VERDICT_FILE = "verdict.json"


class RunDirError(HarnessError):
    """A run dir cannot be checked at all (not a dir, no usable cluster.json, a log
    that cannot be opened)."""

    def __init__(self, run_dir: Path, why: str) -> None:
        super().__init__(why, run_dir=str(run_dir))
        self.run_dir = run_dir
        self.why = why


def _read(run_dir: Path, path: Path) -> LogRead:
    try:
        return read_log(path)
    except OSError as exc:
        raise RunDirError(run_dir, f"cannot read {path.name}: {exc.strerror}") from None


def load_run(run_dir: Path) -> RunLogs:
    """Read a run dir into a `RunLogs`. Raises `RunDirError` when there is nothing to
    check (missing dir or cluster.json); a bad log line is data for the checker."""
    if not run_dir.is_dir():
        raise RunDirError(run_dir, "not a directory")
    config_path = run_dir / CONFIG_FILE
    if not config_path.exists():
        raise RunDirError(run_dir, f"{CONFIG_FILE} missing: members and timing unknown")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise RunDirError(run_dir, str(exc)) from None
    peer_logs: dict[int, LogRead] = {}
    harness_path, history_path = run_dir / HARNESS_LOG, run_dir / HISTORY_LOG
    # One pause of the garbage collector over all the logs, not one per file: each
    # re-enabling would make the collector walk every object read so far again.
    with gc_paused():
        for path in sorted(run_dir.glob(PEER_LOG_GLOB)):
            suffix = path.stem.split("-", 1)[1]
            if not suffix.isdigit():
                raise RunDirError(run_dir, f"{path.name}: peer log name has no sid")
            peer_logs[int(suffix)] = _read(run_dir, path)
        harness = _read(run_dir, harness_path) if harness_path.exists() else None
        history = _read(run_dir, history_path) if history_path.exists() else None
    return RunLogs(
        members=config.roles,
        timing=config.timing,
        peer_logs=peer_logs,
        harness=harness,
        history=history,
    )


def check_run_dir(run_dir: Path) -> Verdict:
    """Load and check a run dir; a run dir that cannot be loaded is `unknown`."""
    # The collector stays paused until the logs are freed again (see `gc_paused`): its
    # first pass after re-enabling walks every object allocated in the pause that is
    # still alive, so re-enabling it while the events are still held (at the end of
    # `load_run`) cost one walk over all of them per check. The checker builds no
    # cycles of note: its work is linear scans over the events.
    with gc_paused():
        return _load_and_check(run_dir)


def _load_and_check(run_dir: Path) -> Verdict:
    # A separate frame so the loaded run is freed when it returns, before the collector
    # is switched back on.
    try:
        run = load_run(run_dir)
    except RunDirError as exc:
        return Verdict.unknown(str(exc))
    return check(run)


def write_verdict(run_dir: Path, verdict: Verdict) -> Path:
    """Write `verdict.json` (temp file + rename, so a reader never sees half of it)."""
    path = run_dir / VERDICT_FILE
    tmp = path.with_name(f".{VERDICT_FILE}.tmp")
    tmp.write_text(json.dumps(verdict.to_json(), indent=2, sort_keys=True) + "\n", "utf-8")
    os.replace(tmp, path)
    return path
