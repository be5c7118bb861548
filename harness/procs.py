"""Process spawning and reaping for the harness: nothing it starts outlives it.

This module owns the life of child processes (peers, the proxy server): each is
started in its own session with a parent-death signal (SIGKILL when the harness
dies, even by SIGKILL), tracked in a process-wide registry, and reaped with
SIGCONT -> SIGTERM -> psutil.wait_procs -> SIGKILL (a stopped process holds SIGTERM
pending, hence SIGCONT first). An atexit hook reaps whatever is still tracked, and
`SignalGuard` turns SIGTERM/SIGHUP of the harness into SystemExit so `finally`
blocks and context managers run. It knows nothing of peers, proxies or logs.

PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the
process, so every spawn goes through one long-lived daemon thread (`_Spawner`),
whichever thread asked for it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

import psutil

from faults.toxiproxy.parent_death import child_setup as _child_setup
from harness.errors import ProcessError

_T = TypeVar("_T")


class _Spawner:
    """One long-lived daemon thread that runs every spawn (see module docstring)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, job: Callable[[], _T]) -> _T:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="harness-spawner", daemon=True
                )
                self._thread.start()
            thread = self._thread
        if threading.current_thread() is thread:
            return job()
        future: Future[_T] = Future()
        self._jobs.put((job, future))
        return future.result()

    def _loop(self) -> None:
        while True:
            job, future = self._jobs.get()
            try:
                future.set_result(job())
            except BaseException as exc:  # handed back to the caller's thread
                future.set_exception(exc)


_SPAWNER = _Spawner()
_LIVE: dict[int, subprocess.Popen[bytes]] = {}
_LIVE_LOCK = threading.Lock()


def run_in_spawner(job: Callable[[], _T]) -> _T:
    """Run `job` (which starts processes) on the spawner thread and return its result.
    For spawners owned by other modules, e.g. the embedded proxy server."""
    return _SPAWNER.run(job)


def track(proc: subprocess.Popen[bytes]) -> None:
    """Add a process started elsewhere to the registry reaped at exit."""
    with _LIVE_LOCK:
        _LIVE[proc.pid] = proc


def untrack(proc: subprocess.Popen[bytes]) -> None:
    with _LIVE_LOCK:
        _LIVE.pop(proc.pid, None)


def tracked() -> list[subprocess.Popen[bytes]]:
    with _LIVE_LOCK:
        return list(_LIVE.values())


def spawn(
    argv: Sequence[str],
    *,
    stdout: IO[bytes] | int | None = subprocess.DEVNULL,
    stderr: IO[bytes] | int | None = subprocess.DEVNULL,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session with a parent-death SIGKILL, and track it."""
    parent = os.getpid()

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_child_setup(parent),
        )

    try:
        proc = _SPAWNER.run(start)
    except OSError as exc:
        raise ProcessError(f"cannot start process: {exc.strerror}", argv=list(argv)) from None
    track(proc)
    return proc


def send_signal(proc: subprocess.Popen[bytes], sig: int) -> bool:
    """Signal the process's group (its own session). False if it already exited.
    poll() first: an unreaped child keeps its pid, so the pid cannot have been reused."""
    if proc.poll() is not None:
        return False
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # The group leader is a zombie in a group we can no longer signal: signal the pid.
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
    return True


def reap(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 5.0) -> dict[int, int]:
    """Stop and collect `procs`: SIGCONT, SIGTERM, wait up to `timeout`, SIGKILL the rest.
    Returns pid -> exit code (negative = killed by that signal), and untracks them."""
    procs = list(procs)
    codes: dict[int, int] = {}
    waiting: list[psutil.Process] = []
    by_pid: dict[int, subprocess.Popen[bytes]] = {}
    for proc in procs:
        if proc.poll() is not None:
            continue
        try:
            ps = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            continue
        send_signal(proc, signal.SIGCONT)
        send_signal(proc, signal.SIGTERM)
        waiting.append(ps)
        by_pid[proc.pid] = proc
    if waiting:
        _, alive = psutil.wait_procs(waiting, timeout=timeout)
        for ps in alive:
            send_signal(by_pid[ps.pid], signal.SIGKILL)
        if alive:
            _, still = psutil.wait_procs(alive, timeout=timeout)
            if still:
                raise ProcessError("processes survived SIGKILL", pids=[p.pid for p in still])
    for proc in procs:
        # psutil already collected the status; Popen only learns it via its own wait,
        # which now returns at once (ECHILD is read as 0, so prefer psutil's code).
        code = proc.poll()
        for ps in waiting:
            if ps.pid == proc.pid and ps.returncode is not None:  # type: ignore[attr-defined]
                code = ps.returncode  # type: ignore[attr-defined]
                proc.returncode = code
        codes[proc.pid] = code if code is not None else 0
        untrack(proc)
    return codes


def reap_all(timeout: float = 5.0) -> dict[int, int]:
    """Reap every tracked process (the atexit safety net; also fine to call directly)."""
    return reap(tracked(), timeout=timeout)


atexit.register(reap_all)


class SignalGuard:
    """While held, SIGTERM and SIGHUP of the harness raise SystemExit in the main thread
    (so `with Cluster(...)` blocks unwind and reap). Nested holds are counted; the old
    handlers return when the last hold is released. Outside the main thread it is a
    no-op: Python only lets the main thread install handlers."""

    _SIGNALS = (signal.SIGTERM, signal.SIGHUP)
    _lock = threading.Lock()
    _holds = 0
    _saved: dict[int, Any] = {}

    @staticmethod
    def _raise(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    @classmethod
    def hold(cls) -> bool:
        if threading.current_thread() is not threading.main_thread():
            return False
        with cls._lock:
            if cls._holds == 0:
                for sig in cls._SIGNALS:
                    cls._saved[sig] = signal.signal(sig, cls._raise)
            cls._holds += 1
        return True

    @classmethod
    @contextlib.contextmanager
    def held(cls) -> Iterator[None]:
        """`hold()` for the block, `release()` after it (if the hold took)."""
        guarded = cls.hold()
        try:
            yield
        finally:
            if guarded:
                cls.release()

    @classmethod
    def release(cls) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        with cls._lock:
            if cls._holds == 0:
                return
            cls._holds -= 1
            if cls._holds == 0:
                for sig, handler in cls._saved.items():
                    signal.signal(sig, handler)
                cls._saved.clear()
