"""The quorum-chaos pytest plugin, tested the way pytest-xdist and pytest-timeout test
theirs: inner pytest sessions run by `pytester`, their outcome and output inspected.

Settings precedence and seeds run in-process (milliseconds); the fixtures and the
failure report run inner tests on real peer processes (3 peers, a few seconds)."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

SETTINGS_TEST = """
import json, os
def test_settings(chaos_settings, chaos_run_dir):
    out = {k: getattr(chaos_settings, k) for k in ("seed", "peers", "duration", "profile", "bug")}
    out["sources"] = dict(chaos_settings.sources)
    out["run_dir"] = str(chaos_run_dir)
    with open(os.environ["SETTINGS_OUT"], "a") as f:
        f.write(json.dumps(out) + "\\n")
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("QUORUM_CHAOS_") or name == "TOXIPROXY_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("SETTINGS_OUT", str(tmp_path / "settings.jsonl"))


def _settings_out(tmp_path: Path) -> list[dict[str, object]]:
    lines = (tmp_path / "settings.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_defaults_and_random_seed_in_header(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(SETTINGS_TEST)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["quorum-chaos: base seed * (random), runs 1"])
    (out,) = _settings_out(tmp_path)
    assert out["peers"] == 3 and out["duration"] == 10.0 and out["profile"] == "mixed"
    assert out["sources"]["seed"] == "random"  # type: ignore[index]
    assert not Path(str(out["run_dir"])).exists(), "a passing test's run dir is removed"


def test_precedence_marker_over_cli_over_env_over_ini(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\nchaos_peers = 4\nchaos_duration = 7\nchaos_seed = 11\n")
    pytester.makepyfile(SETTINGS_TEST)
    pytester.runpytest().assert_outcomes(passed=1)
    monkeypatch.setenv("QUORUM_CHAOS_PEERS", "5")
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.runpytest("--chaos-peers", "7", "--chaos-seed", "12").assert_outcomes(passed=1)
    pytester.makepyfile(
        SETTINGS_TEST.replace(
            "def test_settings",
            "import pytest\n@pytest.mark.chaos(peers=9, profile='partitions', seed=13)\n"
            "def test_settings",
        )
    )
    pytester.runpytest("--chaos-peers", "7").assert_outcomes(passed=1)
    ini, env, cli, marker = _settings_out(tmp_path)
    assert (ini["peers"], ini["duration"], ini["seed"]) == (4, 7.0, 11)
    assert ini["sources"] == ini["sources"] | {"peers": "ini", "seed": "ini"}  # type: ignore[operator]
    assert (env["peers"], env["seed"]) == (5, 11)
    assert env["sources"]["peers"] == "env"  # type: ignore[index]
    assert (cli["peers"], cli["seed"], cli["duration"]) == (7, 12, 7.0)
    assert (marker["peers"], marker["seed"], marker["profile"]) == (9, 13, "partitions")
    assert marker["sources"]["peers"] == "marker"  # type: ignore[index]


def test_chaos_runs_derive_distinct_stable_seeds(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(SETTINGS_TEST)
    result = pytester.runpytest("--chaos-runs", "3", "--chaos-seed", "42", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*test_settings?chaos-run-2?*PASSED*"])
    pytester.runpytest("--chaos-runs", "3", "--chaos-seed", "42").assert_outcomes(passed=3)
    first, again = _settings_out(tmp_path)[:3], _settings_out(tmp_path)[3:]
    seeds = [o["seed"] for o in first]
    assert seeds[0] == 42, "run 0 is the given seed, so the report's --chaos-seed reproduces it"
    assert len(set(seeds)) == 3
    assert seeds == [o["seed"] for o in again]


def test_bad_values_are_clear_errors(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(SETTINGS_TEST)
    result = pytester.runpytest("--chaos-peers", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--chaos-peers*expected an integer >= 1*"])
    monkeypatch.setenv("QUORUM_CHAOS_DURATION", "soon")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*QUORUM_CHAOS_DURATION*'soon'*"])
    monkeypatch.delenv("QUORUM_CHAOS_DURATION")
    pytester.makepyfile(
        "import pytest\n@pytest.mark.chaos(peer=3)\ndef test_x(chaos_seed):\n    pass\n"
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*unknown setting(s)*'peer'*"])


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.chaos(peers=3, duration=10*"])
    pytester.makepyfile("import pytest\n@pytest.mark.chaos(peers=3)\ndef test_x():\n    pass\n")
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


# --- on real processes -------------------------------------------------------------------

CLUSTER_TEST = """
import os
import pytest
from harness.client import PeerClient

@pytest.mark.chaos(peers=3)
def test_write_then_check(chaos_cluster, chaos_check, chaos_run_dir):
    cluster = chaos_cluster()
    leader = cluster.leader()
    with PeerClient(*cluster.client_address(leader)) as client:
        zxid = client.write("k", "v")
    with open(os.environ["SETTINGS_OUT"], "a") as f:
        f.write(str(chaos_run_dir) + "\\n")
    FAIL_HERE
    chaos_check().assert_valid()
"""


@pytest.mark.integration
def test_fixtures_on_real_cluster_and_cleanup(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(CLUSTER_TEST.replace("FAIL_HERE", "assert zxid > 0"))
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
    pytester.runpytest_subprocess("--chaos-keep").assert_outcomes(passed=1)
    removed, kept = (Path(p) for p in (tmp_path / "settings.jsonl").read_text().split())
    assert not removed.exists()
    verdict = json.loads((kept / "verdict.json").read_text())
    assert verdict["verdict"] == "valid"
    assert {"cluster.json", "seed", "peer-1.jsonl", "harness.jsonl"} <= {
        p.name for p in kept.iterdir()
    }


@pytest.mark.integration
def test_failure_section_has_seed_run_dir_and_reproduction(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(CLUSTER_TEST.replace("FAIL_HERE", "assert zxid < 0, 'planted failure'"))
    result = pytester.runpytest_subprocess("--chaos-seed", "77")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    section = text[text.index("quorum-chaos ----") :]
    assert "seed: 77 (cli)" in section
    assert "verdict: valid" in section  # the run itself was fine: only the assertion failed
    run_dir = Path(re.search(r"run dir: (\S+) \(kept\)", section).group(1))  # type: ignore[union-attr]
    assert run_dir.is_dir() and (run_dir / "seed").read_text().strip() == "77"
    assert f"quorum-chaos replay {run_dir}" in section
    line = re.search(r"^\s*(pytest \S+ --chaos-seed 77.*)$", section, re.M)
    assert line is not None, section
    # The printed line is runnable as is and gives the test the same seed.
    args = shlex.split(line.group(1))[1:]
    again = pytester.runpytest_subprocess(*args)
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["*seed: 77 (cli)*"])


@pytest.mark.integration
def test_xdist_workers_get_own_run_dirs_and_report(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytest.importorskip("xdist")
    body = CLUSTER_TEST.replace("FAIL_HERE", "assert zxid < 0, 'planted failure'")
    pytester.makepyfile(test_one=body, test_two=body)
    result = pytester.runpytest_subprocess("-n", "2", "--chaos-seed", "5")
    result.assert_outcomes(failed=2)
    assert result.stdout.str().count("quorum-chaos replay ") == 2
    dirs = (tmp_path / "settings.jsonl").read_text().split()
    assert len(set(dirs)) == 2
    assert all("popen-gw" in d for d in dirs), dirs  # under the worker's own basetemp


REPLAYABLE_TEST = """
import os
import pytest
from harness.client import PeerClient

@pytest.mark.chaos(peers=3, duration=3, bug="no-step-down")
def test_record(chaos_cluster, chaos_check, chaos_run_dir):
    cluster = chaos_cluster()
    with PeerClient(*cluster.client_address(cluster.leader())) as client:
        assert client.write("k", "v") > 0
    with open(os.environ["SETTINGS_OUT"], "a") as f:
        f.write(str(chaos_run_dir) + "\\n")
    chaos_check()
"""


@pytest.mark.integration
def test_plugin_run_dir_is_a_run_dir_replay_reads(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """A run dir left by the plugin has the files of a CLI run, run.json in the CLI's
    schema, and `quorum-chaos replay` runs it again (with the bug it recorded)."""
    import subprocess
    import sys

    pytester.makepyfile(REPLAYABLE_TEST)
    pytester.runpytest_subprocess("--chaos-keep", "--chaos-seed", "21").assert_outcomes(passed=1)
    (run_dir,) = (Path(p) for p in (tmp_path / "settings.jsonl").read_text().split())
    names = {p.name for p in run_dir.iterdir()}
    assert {"plan.json", "seed", "cluster.json", "run.json", "verdict.json", "report.html"} <= names
    assert {"peer-1.jsonl", "peer-2.jsonl", "peer-3.jsonl", "harness.jsonl"} <= names
    assert "options.json" not in names
    recorded = json.loads((run_dir / "run.json").read_text())
    assert recorded["source"] == "pytest" and recorded["seed"] == 21
    assert recorded["options"]["bug"] == recorded["bug"] == "no-step-down"
    assert recorded["profile"] == "no-faults" and recorded["duration_ms"] == 3000

    out = tmp_path / "replays"
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "replay", str(run_dir), "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode in (0, 1), f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    (new_dir,) = out.iterdir()
    again = json.loads((new_dir / "run.json").read_text())
    assert again["source"] == "cli" and again["replay_of"] == str(run_dir)
    assert (again["seed"], again["bug"], again["peers"]) == (21, "no-step-down", 3)
    assert (new_dir / "plan.json").read_bytes() == (run_dir / "plan.json").read_bytes()
    assert (new_dir / "verdict.json").is_file()
