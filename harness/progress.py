"""The progress display of a run: one status line a second on stderr.

This module owns what a person watching `quorum-chaos run` sees while it runs: the
elapsed and total seconds, the plan steps done (and failed), the current leader, the
writes acknowledged and the operations that failed or ended unknown. `format_progress`
is pure (a snapshot in, a line out); `ProgressDisplay` is the thin adapter: a daemon
thread that samples the counters it is handed once a second and writes the line. It
reads no logs and changes nothing in the run.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressSnapshot:
    """What the display shows at one moment."""

    elapsed_s: float
    total_s: float
    steps_done: int
    steps_total: int
    steps_failed: int
    leader: int | None
    acked: int
    failed: int
    unknown: int
    phase: str = "faults"


def format_progress(snap: ProgressSnapshot) -> str:
    """One line, fixed field order so it reads the same from second to second."""
    leader = "none" if snap.leader is None else str(snap.leader)
    failed = f" ({snap.steps_failed} failed)" if snap.steps_failed else ""
    return (
        f"[{snap.elapsed_s:6.1f}/{snap.total_s:.0f} s] {snap.phase:<8} "
        f"faults {snap.steps_done}/{snap.steps_total}{failed} | leader {leader} | "
        f"writes acked {snap.acked} | ops fail {snap.failed} info {snap.unknown}"
    )


class ProgressDisplay:
    """A daemon thread calling `sample()` every `interval_s` and printing the line.

    On a terminal the line is redrawn in place (carriage return); elsewhere (a CI log, a
    pipe) each sample is its own line. `stop()` prints a final sample and ends the line.
    `sample` runs on the display thread, so it must be safe to call from there (the
    cluster's `leader()` and plain counter reads are)."""

    def __init__(
        self,
        sample: Callable[[], ProgressSnapshot],
        *,
        stream: TextIO | None = None,
        interval_s: float = 1.0,
    ) -> None:
        self._sample = sample
        self._stream = stream if stream is not None else sys.stderr
        self._interval_s = interval_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._width = 0
        self._lock = threading.Lock()
        self.lines = 0  # how many samples were written (for tests and curiosity)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._done.set()
        self._thread.join(timeout=5.0)
        self._show(final=True)

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._done.is_set():
            self._show(final=False)
            next_at += self._interval_s
            self._done.wait(max(0.0, next_at - time.monotonic()))

    def _show(self, *, final: bool) -> None:
        try:
            line = format_progress(self._sample())
        except Exception as exc:  # a display must never end a run
            line = f"(progress unavailable: {exc})"
        with self._lock:
            if self._tty:
                pad = " " * max(0, self._width - len(line))
                self._stream.write("\r" + line + pad + ("\n" if final else ""))
                self._width = len(line)
            else:
                self._stream.write(line + "\n")
            self._stream.flush()
            self.lines += 1
