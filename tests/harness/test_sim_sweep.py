"""Seed sweeps on worker processes give the answer a sweep in one process gives."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from harness.checker import Outcome, Property
from harness.cli import main
from harness.sim import SimOptions, SimResult, sweep
from peer.domain import Bug
from tests.harness.cli_group import cli_group

# no-step-down on 20 s partition plans: seed 1 valid, seed 2 the first failure
BASE = SimOptions(seed=0, duration_s=20, profile="partitions", bug=Bug.NO_STEP_DOWN, report=False)


def _swept(out: Path, jobs: int) -> tuple[list[tuple[int, Outcome]], SimResult]:
    seen: list[tuple[int, Outcome]] = []
    result = sweep(
        BASE, range(1, 7), out, jobs=jobs, on_seed=lambda r: seen.append((r.seed, r.outcome))
    )
    assert result.first_failure is not None
    return seen, result.first_failure


def test_workers_stop_at_the_same_first_failure_in_seed_order(tmp_path: Path) -> None:
    alone_seen, alone = _swept(tmp_path / "one", jobs=1)
    workers_seen, workers = _swept(tmp_path / "two", jobs=2)
    assert alone_seen == workers_seen == [(1, Outcome.VALID), (2, Outcome.INVALID)]
    assert Property.MINORITY_SILENCE in workers.verdict.properties_violated()
    for name in ("harness.jsonl", "history.jsonl", "peer-1.jsonl", "verdict.json"):
        assert (workers.run_dir / name).read_bytes() == (alone.run_dir / name).read_bytes()
    # seeds 3-4 were started beside it and thrown away; the failing run dir has its report
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["sim-seed-2"]
    assert (workers.run_dir / "report.html").exists()
    assert psutil.Process().children(recursive=True) == []


def test_a_passing_sweep_on_workers_checks_every_seed_and_keeps_nothing(tmp_path: Path) -> None:
    options = SimOptions(seed=0, duration_s=10, report=False)
    result = sweep(options, range(1, 6), tmp_path, jobs=2)
    assert result.first_failure is None and result.checked == 5
    assert result.last is not None and result.last.seed == 5
    assert not any(tmp_path.iterdir())
    assert psutil.Process().children(recursive=True) == []


def test_jobs_below_one_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="jobs must be at least 1, got 0"):
        sweep(BASE, range(1, 2), tmp_path, jobs=0)
    assert main(["sim", "--seeds", "1..2", "--jobs", "0", "--out", str(tmp_path)]) == 2
    assert "--jobs must be at least 1, got 0" in capsys.readouterr().err


def _scratch_dirs() -> set[str]:
    shm = Path("/dev/shm")
    return {p.name for p in shm.glob("quorum-sim-*")} if shm.is_dir() else set()


@pytest.mark.parametrize(
    ("signum", "code", "last_line"),
    [(signal.SIGINT, 3, "interrupted"), (signal.SIGTERM, 128 + signal.SIGTERM, "")],
    ids=["ctrl-c", "sigterm"],
)
def test_a_stopped_sweep_reaps_its_workers_and_scratch(
    tmp_path: Path, signum: int, code: int, last_line: str
) -> None:
    # Ctrl-C reaches the whole foreground process group, and so does a CI job's cancel
    before = _scratch_dirs()
    command = ["sim", "--seeds", "1..500", "--duration", "60", "--jobs", "2"]
    with cli_group(*command, "--out", str(tmp_path)) as sweeping:
        assert sweeping.stdout is not None
        first = sweeping.stdout.readline()
        if first.startswith("sim: note:"):  # run as Python: the hint to build the native core
            first = sweeping.stdout.readline()
        assert first.startswith("seed 1: ")
        workers = psutil.Process(sweeping.pid).children(recursive=True)
        assert len(workers) == 2
        os.killpg(sweeping.pid, signum)
        output, _ = sweeping.communicate(timeout=60)
    assert sweeping.returncode == code, output
    assert output.rstrip().endswith(last_line)
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert alive == []
    # every seed's data dirs were removed (other tests' runs come and go meanwhile:
    # a leaked dir is one that stays)
    left = _scratch_dirs() - before
    deadline = time.monotonic() + 10
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left &= _scratch_dirs()
    assert not left
    # at most the seed it was waiting for is left, partly written, as with one process
    assert len(list(tmp_path.iterdir())) <= 1
