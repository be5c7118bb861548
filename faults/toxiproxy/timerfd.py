"""Sub-millisecond deadlines for the proxy's event loop (a Linux timerfd, via ctypes).

This module owns one thing: waking the event loop close to an absolute `loop.time()`
deadline. asyncio cannot do that by itself: its selector waits with `epoll_wait`, whose
timeout CPython rounds *up* to whole milliseconds, so a `loop.call_at` fires 0-1 ms late
(0.5 ms on average) plus the scheduler's wake-up; a 50 ms latency toxic then measures
50.6-51 ms instead of Toxiproxy's ~50.5. A timerfd armed with the absolute deadline on
CLOCK_MONOTONIC (the clock `time.monotonic`, hence `loop.time()`, reads on Linux) is a
file descriptor that becomes readable at the deadline with nanosecond resolution, so the
loop's `epoll_wait` returns on time without any busy-waiting. One timerfd serves every
deadline of a loop: callbacks sit in a heap and the fd is armed for the earliest one.

Where timerfd is missing (not Linux, or a libc without it) `PreciseTimers` falls back to
`loop.call_at`, with asyncio's precision. It does no other I/O and reads no other clock.
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import itertools
import os
import weakref
from collections.abc import Callable
from typing import Any, Protocol

_CLOCK_MONOTONIC = 1
_TFD_CLOEXEC = 0o2000000
_TFD_NONBLOCK = 0o4000
_TFD_TIMER_ABSTIME = 1
_PR_SET_TIMERSLACK = 29
_NEVER = float("inf")
MAX_LEAD = 0.001  # the most the fd is armed ahead of a deadline (and polled), seconds
LEAD_GAIN = 0.125  # weight of one wake-up in the running estimate of wake-up delay


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


def _load_libc() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create.restype = ctypes.c_int
        libc.timerfd_settime.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):  # not Linux: asyncio's own timers are used
        return None


_LIBC: Any = _load_libc()


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class _Deadline:
    """One pending callback; ordered by (when, seq) in the heap."""

    __slots__ = ("args", "callback", "cancelled", "seq", "when")

    def __init__(
        self, when: float, seq: int, callback: Callable[..., object], args: tuple[object, ...]
    ) -> None:
        self.when = when
        self.seq = seq
        self.callback = callback
        self.args = args
        self.cancelled = False

    def __lt__(self, other: _Deadline) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)

    def cancel(self) -> None:
        self.cancelled = True
        self.args = ()  # drop references early; the heap entry is skipped when due


def reduce_timer_slack() -> bool:
    """Ask the kernel for 1 ns timer slack on this thread (default 50 us); True if it did.

    The slack lets the kernel batch wake-ups; a proxy that promises millisecond-exact
    latency wants none of it. Harmless to skip.
    """
    if _LIBC is None:
        return False
    try:
        return int(_LIBC.prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)) == 0
    except AttributeError:
        return False


class PreciseTimers:
    """`call_at` with timerfd precision for one event loop (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._heap: list[_Deadline] = []
        self._seq = itertools.count()
        self._armed = _NEVER  # the deadline the fd is armed for (_NEVER: disarmed)
        self._expiry = _NEVER  # when the fd itself expires: `_armed - lead`
        self.lead = 0.0  # seconds the fd is armed ahead of a deadline (see `_run_due`)
        self._learn = False  # does the next expiry measure the wake-up delay?
        self.fd = -1
        if _LIBC is not None:
            fd = int(_LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC))
            if fd >= 0:
                try:
                    loop.add_reader(fd, self._expired)
                except (NotImplementedError, RuntimeError):  # e.g. a proactor loop
                    os.close(fd)
                else:
                    self.fd = fd

    @property
    def precise(self) -> bool:
        """True when deadlines go through a timerfd (else through `loop.call_at`)."""
        return self.fd >= 0

    def call_at(self, when: float, callback: Callable[..., object], *args: object) -> Cancellable:
        """Run `callback(*args)` at loop time `when` (at once if it already passed), never
        before it."""
        if self.fd < 0:
            return self.loop.call_at(when, callback, *args)
        entry = _Deadline(when, next(self._seq), callback, args)
        heapq.heappush(self._heap, entry)
        if when < self._armed:
            self._arm(when)
        return entry

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
        self._heap.clear()

    def _arm(self, when: float, *, early: bool = True) -> None:
        self._armed = when
        self._learn = early
        self._expiry = when - self.lead if early else when
        spec = _Itimerspec()
        if when != _NEVER:
            # An all-zero it_value disarms the fd, so an expiry at time 0 becomes 1 ns.
            ns = max(1, int(self._expiry * 1e9))
            spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(ns, 1_000_000_000)
        if _LIBC.timerfd_settime(self.fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            # Cannot happen with a valid fd and spec; fall back to asyncio's timer rather
            # than lose the wake-up.
            self.loop.call_at(when, self._run_due)

    def _expired(self) -> None:
        """The fd is readable: its expiry passed. Learn how late we woke, then run."""
        try:
            os.read(self.fd, 8)  # the expiry count; reading clears readability
        except (BlockingIOError, InterruptedError):
            self._run_due()  # a stale readiness (re-armed meanwhile): just re-check
            return
        if self._learn:
            late = min(max(self.loop.time() - self._expiry, 0.0), MAX_LEAD)
            self.lead += (late - self.lead) * LEAD_GAIN
        self._run_due()

    def _run_due(self) -> None:
        """Run every deadline that passed, then arm the fd for the next one.

        Waking a process after a long sleep is slow on a busy or virtual machine
        (0.1-0.5 ms: an idle CPU has to be woken and rescheduled), and `_expired`
        measures it into `lead`; so the fd is armed `lead` ahead of a deadline. When
        that wake-up comes early, the fd is re-armed for the exact deadline: a sleep that
        short (< `lead` <= MAX_LEAD) ends fast, the CPU has not gone idle yet. No busy
        waiting, and a callback never runs before its deadline.
        """
        heap = self._heap
        now = self.loop.time()
        while heap and heap[0].when <= now:
            entry = heapq.heappop(heap)
            if not entry.cancelled:
                try:
                    entry.callback(*entry.args)
                except Exception as exc:  # one bad callback must not stall the others
                    self.loop.call_exception_handler(
                        {"message": "timerfd callback failed", "exception": exc}
                    )
        while heap and heap[0].cancelled:
            heapq.heappop(heap)  # no wake-up for a cancelled earliest deadline
        if not heap:
            self._arm(_NEVER)
        elif heap[0].when - now <= self.lead:
            self._arm(heap[0].when, early=False)
        else:
            self._arm(heap[0].when)


_PER_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PreciseTimers] = (
    weakref.WeakKeyDictionary()
)


def timers_for(loop: asyncio.AbstractEventLoop) -> PreciseTimers:
    """The loop's one `PreciseTimers` (created on first use)."""
    timers = _PER_LOOP.get(loop)
    if timers is None:
        timers = _PER_LOOP[loop] = PreciseTimers(loop)
    return timers


def release(loop: asyncio.AbstractEventLoop) -> None:
    """Close the loop's timerfd, if it has one (before the loop itself closes)."""
    timers = _PER_LOOP.pop(loop, None)
    if timers is not None:
        timers.close()
