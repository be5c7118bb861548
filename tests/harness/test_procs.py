"""Process lifecycle: sessions, reaping order, the spawner thread, the signal guard,
and that nothing outlives a harness that is SIGKILLed, SIGTERMed or simply exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from harness import procs
from harness.errors import ProcessError

ROOT = Path(__file__).resolve().parents[2]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pids: list[int], deadline_s: float = 10.0) -> list[int]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if not _gone(pid)]
        if not alive:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if not _gone(pid)]


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _ready_child(code: str) -> subprocess.Popen[bytes]:
    """A child that prints 'ready' once `code` has run (so signal dispositions are set)."""
    proc = procs.spawn(
        [sys.executable, "-c", code + "\nprint('ready', flush=True)\nimport time\ntime.sleep(120)"],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    proc.stdout.close()
    return proc


def test_spawn_starts_own_session_and_is_tracked() -> None:
    before = _children()
    proc = procs.spawn(SLEEPER)
    try:
        assert os.getsid(proc.pid) == proc.pid
        assert os.getpgid(proc.pid) == proc.pid
        assert proc in procs.tracked()
        assert _children() - before == {proc.pid}
    finally:
        codes = procs.reap([proc])
    assert codes == {proc.pid: -signal.SIGTERM}
    assert proc not in procs.tracked()
    assert _children() == before


def test_reap_escalates_to_sigkill_when_sigterm_is_ignored() -> None:
    proc = _ready_child("import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    codes = procs.reap([proc], timeout=0.5)
    assert codes[proc.pid] == -signal.SIGKILL
    assert proc.returncode == -signal.SIGKILL


def test_reap_continues_a_stopped_process_before_terminating_it() -> None:
    # A handler that exits cleanly on SIGTERM: code 0 proves SIGTERM was delivered
    # (a stopped process would hold it until SIGKILL, giving -9).
    proc = _ready_child("import signal, sys; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))")
    os.kill(proc.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while psutil.Process(proc.pid).status() != psutil.STATUS_STOPPED:
        assert time.monotonic() < deadline, "child never stopped"
        time.sleep(0.01)
    assert procs.reap([proc], timeout=5.0) == {proc.pid: 0}


def test_reap_reports_codes_of_already_exited_processes() -> None:
    proc = procs.spawn([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait(timeout=10)
    assert procs.reap([proc]) == {proc.pid: 3}


def test_spawn_of_missing_binary_names_it() -> None:
    with pytest.raises(ProcessError, match="no-such-binary-xyz"):
        procs.spawn(["/nonexistent/no-such-binary-xyz"])


def test_child_spawned_from_short_lived_thread_survives_the_thread() -> None:
    # PR_SET_PDEATHSIG fires when the forking *thread* exits; spawns go through the
    # long-lived spawner thread, so the child must outlive the caller's thread.
    box: list[subprocess.Popen[bytes]] = []
    worker = threading.Thread(target=lambda: box.append(procs.spawn(SLEEPER)))
    worker.start()
    worker.join()
    proc = box[0]
    try:
        time.sleep(0.3)  # give a wrongly delivered death signal time to land
        assert proc.poll() is None
    finally:
        procs.reap([proc])


def test_signal_guard_turns_sigterm_into_system_exit_and_restores() -> None:
    original = signal.getsignal(signal.SIGTERM)
    assert procs.SignalGuard.hold()
    try:
        with pytest.raises(SystemExit) as info:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs between bytecodes; never reached
        assert info.value.code == 128 + signal.SIGTERM
    finally:
        procs.SignalGuard.release()
    assert signal.getsignal(signal.SIGTERM) is original


def test_signal_guard_held_guards_the_block_and_restores_on_the_way_out() -> None:
    original = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as info, procs.SignalGuard.held():
        assert signal.getsignal(signal.SIGTERM) is not original
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs between bytecodes; never reached
    assert info.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is original


def test_signal_guard_is_counted_when_nested() -> None:
    original = signal.getsignal(signal.SIGTERM)
    procs.SignalGuard.hold()
    procs.SignalGuard.hold()
    procs.SignalGuard.release()
    assert signal.getsignal(signal.SIGTERM) is not original
    procs.SignalGuard.release()
    assert signal.getsignal(signal.SIGTERM) is original


HARNESS_SCRIPT = """
import sys, time
from pathlib import Path
from harness import procs

pids_file = Path(sys.argv[1])
mode = sys.argv[2]
children = [procs.spawn([sys.executable, "-c", "import time; time.sleep(120)"])
            for _ in range(3)]
# A grandchild-level check: one child forks its own sleeper (same session/group).
children.append(procs.spawn([sys.executable, "-c",
    "import subprocess, sys, time; "
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
    "print(p.pid, flush=True); time.sleep(120)"], stdout=open(pids_file.with_suffix('.gc'), 'wb')))
pids_file.write_text("".join(f"peer {c.pid}\\n" for c in children))
gc_file = pids_file.with_suffix(".gc")
while not gc_file.read_text().strip():  # the grandchild exists before we go on
    time.sleep(0.01)
if mode == "exit":
    sys.exit(0)  # no explicit reap: the atexit net must do it
procs.SignalGuard.hold()
print("ready", flush=True)
try:
    time.sleep(120)
finally:
    pass
"""


def _run_harness(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[bytes], list[int]]:
    script = tmp_path / "harness_script.py"
    script.write_text(textwrap.dedent(HARNESS_SCRIPT))
    pids_file = tmp_path / "pids"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    harness = subprocess.Popen(
        [sys.executable, str(script), str(pids_file), mode],
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    if mode != "exit":
        assert harness.stdout is not None
        assert harness.stdout.readline().strip() == b"ready"
    else:
        harness.wait(timeout=30)
    assert harness.stdout is not None
    harness.stdout.close()
    pids = [int(line.split()[1]) for line in pids_file.read_text().splitlines()]
    return harness, pids


@pytest.mark.parametrize("how", ["sigkill", "sigterm", "exit"])
def test_nothing_outlives_the_harness(tmp_path: Path, how: str) -> None:
    harness, pids = _run_harness(tmp_path, "exit" if how == "exit" else "wait")
    grandchild: list[int] = []
    try:
        if how == "sigkill":
            harness.send_signal(signal.SIGKILL)
            assert harness.wait(timeout=10) == -signal.SIGKILL
        elif how == "sigterm":
            harness.send_signal(signal.SIGTERM)
            # SignalGuard made SIGTERM a SystemExit: atexit reaped, exit code 128+15.
            assert harness.wait(timeout=20) == 128 + signal.SIGTERM
        else:
            assert harness.returncode == 0
        grandchild.append(int((tmp_path / "pids.gc").read_text().split()[0]))
        assert _wait_gone(pids) == [], f"children survived the harness ({how})"
        if how != "sigkill":
            # Reaping signals the whole group, so the child's own child goes too.
            # (Under SIGKILL only PDEATHSIG acts, and it reaches direct children only.)
            assert _wait_gone(grandchild) == []
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
        for pid in pids + grandchild:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
