"""The parent-death signal for child processes (Linux `prctl(PR_SET_PDEATHSIG)`).

This module owns one small `preexec_fn`: it asks the kernel to SIGKILL the child when
its parent goes, even when the parent is SIGKILLed and no cleanup code runs. Both the
harness's launcher (`harness.procs`) and this package's `process.spawn_server` use it;
it lives here, in a leaf package that imports neither the harness nor the peer, so the
dependency runs one way (harness -> faults).

The signal fires when the *thread* that forked the child exits, not the process: spawn
from the main thread or from a long-lived one (the harness has a spawner thread for
that, `harness.procs.run_in_spawner`). Elsewhere than Linux it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1
ORPHANED_EXIT = 70  # the child's exit status when its parent was already gone


def _load_prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: sessions and reaping still work
        return None


_PRCTL: Any = _load_prctl()


def child_setup(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn for the child: SIGKILL when the parent goes, and close the race where
    the parent died between fork and prctl (the child is then already orphaned: exit)."""

    def setup() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(ORPHANED_EXIT)

    return setup
