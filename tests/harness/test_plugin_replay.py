"""Issue 6: a chaos test that fails prints a reproduction command which, run, reproduces
the same violation. Shown with a planted bug: a user's test runs three peers with
`minority-quorum`, isolates the leader (which then keeps leading and committing
alone), and fails on the checker's verdict; the failure section's
`quorum-chaos replay RUN_DIR` is then run as printed and must name the same property."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

USER_TEST = """
import time
import pytest
from faults.plan import Heal, Partition, Plan, Step
from faults.topology import Shape
from harness.events import HISTORY_LOG
from harness.workload import Workload, WorkloadConfig

PLAN = Plan(
    generator_version=None,
    profile="hand",
    seed=1,
    peers=(1, 2, 3),
    duration_ms=7000,
    quiet_ms=3000,
    initially_running=(1, 2, 3),
    steps=(
        Step(at_ms=1000, fault=Partition(shape=Shape.ISOLATE_LEADER)),
        Step(at_ms=3500, fault=Heal()),
    ),
)

@pytest.mark.chaos(peers=3, bug="minority-quorum")
def test_isolated_leader(chaos_cluster, chaos_nemesis, chaos_check, chaos_run_dir):
    cluster = chaos_cluster()
    config = WorkloadConfig(clients=2, rate=20.0, seed=1)
    with Workload(config, sids=cluster.voters, address=cluster.client_address,
                  history_path=chaos_run_dir / HISTORY_LOG) as workload:
        chaos_nemesis(PLAN, workload=workload.set_enabled).run()
        time.sleep(PLAN.quiet_ms / 1000)
    chaos_check().assert_valid()
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("QUORUM_CHAOS_") or name == "TOXIPROXY_URL":
            monkeypatch.delenv(name)


def _violated(section: str) -> set[str]:
    return set(re.findall(r"VIOLATION ([a-z-]+):", section))


@pytest.mark.integration
def test_failed_chaos_test_prints_a_replay_that_reproduces_the_violation(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest_subprocess("--chaos-seed", "3")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    section = text[text.index("quorum-chaos ----") :]
    assert "verdict: invalid" in section, section
    found = _violated(section)
    assert "minority-silence" in found, section
    command = re.search(r"^\s*(quorum-chaos replay \S+)\s*$", section, re.M)
    assert command is not None, section
    words = shlex.split(command.group(1))
    run_dir = Path(words[2])
    assert json.loads((run_dir / "run.json").read_text())["bug"] == "minority-quorum"

    # Run the printed command as printed (plus where to put the new run and --quiet).
    out = tmp_path / "replays"
    proc = subprocess.run(
        [*words, "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # exit code 1: the run is invalid (the verdict the checker gave)
    assert proc.returncode == 1, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    (new_dir,) = out.iterdir()
    verdict = json.loads((new_dir / "verdict.json").read_text())
    assert verdict["verdict"] == "invalid", verdict
    replayed = {v["property"] for v in verdict["violations"]}
    assert "minority-silence" in replayed, verdict
    print(f"test run: {sorted(found)}; replay {new_dir}: {sorted(replayed)}")
