"""Start the embedded server as a separate process and learn its URL.

This module owns launching `python -m faults.toxiproxy` in its own session, with the
parent-death signal (SIGKILL when the launcher dies, see `parent_death`), reading its
one start-up line (with a deadline) and choosing between an external server
(TOXIPROXY_URL) and our own. Reaping the process is the caller's job (the harness's
reaper: SIGCONT, SIGTERM, wait, SIGKILL); `stop_server` is a small version of it.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from faults.toxiproxy.errors import SpawnError
from faults.toxiproxy.parent_death import child_setup

START_DEADLINE = 15.0


def resolve_toxiproxy() -> str | None:
    """TOXIPROXY_URL when set (an external server to use), else None."""
    url = os.environ.get("TOXIPROXY_URL", "").strip()
    if not url:
        return None
    return url if "://" in url else "http://" + url


def spawn_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    seed: int | None = None,
    extra_args: Sequence[str] = (),
    log_path: Path | str | None = None,
    deadline: float = START_DEADLINE,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the embedded server; return the process and its base URL.

    stderr (the server's human log) goes to `log_path`, or is discarded. Raises
    SpawnError, after killing the process, when no start-up line came in time. The child
    is SIGKILLed by the kernel when the calling *thread* exits: call this from the main
    thread or a long-lived one (the harness's `run_in_spawner`).
    """
    argv = [sys.executable, "-m", "faults.toxiproxy", "--host", host, "--port", str(port)]
    if seed is not None:
        argv += ["--seed", str(seed)]
    argv += list(extra_args)
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    log_file = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
            env=env,
            preexec_fn=child_setup(os.getpid()),
        )
    except OSError as exc:
        raise SpawnError(f"cannot start toxiproxy server ({' '.join(argv)}): {exc}") from exc
    finally:
        if log_path is not None and not isinstance(log_file, int):
            log_file.close()
    assert proc.stdout is not None
    line = _read_line(proc, deadline)
    try:
        announced = json.loads(line)
        bound = int(announced["port"])
        announced_host = str(announced.get("host", host))
    except (ValueError, KeyError, TypeError) as exc:
        stop_server(proc)
        raise SpawnError(
            f"toxiproxy server ({' '.join(argv)}) did not announce its port within "
            f"{deadline:.0f}s; exit code {proc.returncode}; it printed: {line[:500]!r}"
            + (f"; see {log_path}" if log_path else "")
        ) from exc
    url_host = f"[{announced_host}]" if ":" in announced_host else announced_host
    return proc, f"http://{url_host}:{bound}"


def _read_line(proc: subprocess.Popen[bytes], deadline: float) -> str:
    """The first stdout line, or what came before EOF or the deadline."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buffer = b""
    end = time.monotonic() + deadline
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in buffer:
            left = end - time.monotonic()
            if left <= 0 or not selector.select(left):
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buffer += chunk
    return buffer.split(b"\n", 1)[0].decode(errors="replace")


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
    """Reap the server: SIGCONT (a stopped process holds SIGTERM), SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        for signum in (signal.SIGCONT, signal.SIGTERM):
            try:
                proc.send_signal(signum)
            except ProcessLookupError:
                break
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode
