"""Run `quorum-chaos` as a terminal would, for tests that stop it with a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def cli_group(*args: str, env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """`python -m harness.cli ARGS` as the leader of its own process group (Ctrl-C and a
    CI job's cancel reach the whole foreground group), output merged into stdout. On
    leaving the block, a group still running (a failed assertion) is killed and reaped."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *args],
        env=dict(env) if env is not None else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # a shell's background job ignores SIGINT, and Python keeps an ignored SIGINT
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
