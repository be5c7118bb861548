"""The run orchestration without a cluster: option validation, the run dir and its
inputs, replay's reading of an old run, the progress line, exit codes, and a run whose
proxy server is down (infrastructure failure: exit 3, inputs kept, nothing left behind)."""

from __future__ import annotations

import io
import json
import socket
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from faults.errors import PlanError
from faults.plan import format_plan, generate
from faults.planfile import load_plan
from harness import runner
from harness.progress import ProgressDisplay, ProgressSnapshot, format_progress
from harness.runner import (
    RunOptions,
    RunUsageError,
    execute_run,
    make_run_dir,
    prepare,
    replay_run,
    write_inputs,
)
from peer.domain import Bug


def _options(tmp_path: Path, **changes: Any) -> RunOptions:
    base = RunOptions(
        peers=3,
        seed=7,
        duration_s=12.0,
        profile="partitions",
        plan_path=None,
        bug=None,
        out_dir=tmp_path / "runs",
        timing="fast",
        rate=20.0,
        clients=2,
        toxiproxy_url=None,
        progress=False,
    )
    return replace(base, **changes)


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"bug": "no-such-bug"}, "unknown bug 'no-such-bug' (known: order-ignores-epoch"),
        ({"peers": 0}, "--peers must be at least 1, got 0"),
        ({"profile": "sideways"}, "unknown profile 'sideways'"),
        ({"timing": "glacial"}, "unknown timing 'glacial' (known: fast, zookeeper)"),
        ({"clients": 0}, "--clients must be at least 1"),
        ({"rate": 0.0}, "--rate must be positive"),
        ({"seed": -1}, "--seed must be >= 0"),
    ],
)
def test_bad_options_are_named(tmp_path: Path, changes: dict[str, Any], needle: str) -> None:
    with pytest.raises(RunUsageError) as info:
        prepare(_options(tmp_path, **changes))
    assert needle in str(info.value)
    assert not (tmp_path / "runs").exists()  # refused before any run dir is made


def test_too_short_a_duration_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="too short"):
        prepare(_options(tmp_path, duration_s=3.0))


def test_missing_and_garbage_plan_files(tmp_path: Path) -> None:
    with pytest.raises(RunUsageError, match="does not exist"):
        prepare(_options(tmp_path, plan_path=tmp_path / "nope.json"))
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json", encoding="utf-8")
    with pytest.raises(PlanError, match="not JSON"):
        prepare(_options(tmp_path, plan_path=garbage))


def test_a_plan_file_sets_peers_duration_and_profile(tmp_path: Path) -> None:
    plan = generate("crash-restart", seed=3, peers=5, duration_s=20.0)
    path = tmp_path / "mine.json"
    path.write_text(format_plan(plan) + "\n", encoding="utf-8")
    prep = prepare(_options(tmp_path, plan_path=path, peers=3, bug="no-step-down"))
    assert prep.plan == plan
    assert prep.label == "crash-restart"
    assert prep.bug is Bug.NO_STEP_DOWN


def test_generated_plan_follows_seed_profile_and_timing(tmp_path: Path) -> None:
    prep = prepare(_options(tmp_path, timing="zookeeper", duration_s=200.0))
    expected = generate("partitions", seed=7, peers=3, duration_s=200.0, timing_tick_ms=2000)
    assert prep.plan == expected
    assert prep.timing.tick_ms == 2000


# --- run dir and inputs ---------------------------------------------------------------------


def test_run_dir_names_are_unique(tmp_path: Path) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = make_run_dir(tmp_path / "out", "mixed", 42, now=now)
    second = make_run_dir(tmp_path / "out", "mixed", 42, now=now)
    assert first.name == "20260102-030405-mixed-s42"
    assert second.name == "20260102-030405-mixed-s42-2"
    assert first.is_dir() and second.is_dir()


def test_inputs_are_written_before_anything_runs(tmp_path: Path) -> None:
    prep = prepare(_options(tmp_path, bug="minority-quorum"))
    run_dir = make_run_dir(tmp_path / "runs", prep.label, 7)
    write_inputs(run_dir, prep, started_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert (run_dir / "seed").read_text() == "7\n"
    assert (run_dir / "plan.json").read_text() == format_plan(prep.plan) + "\n"
    assert load_plan(run_dir / "plan.json") == prep.plan
    recorded = json.loads((run_dir / "run.json").read_text())
    assert recorded["options"]["bug"] == "minority-quorum"
    assert recorded["options"]["out_dir"] == str(tmp_path / "runs")
    assert recorded["bug"] == "minority-quorum"
    assert recorded["timing"]["name"] == "fast" and recorded["timing"]["tick_ms"] == 100
    assert recorded["workload"]["clients"] == 2 and recorded["workload"]["rate"] == 20.0
    assert recorded["duration_ms"] == prep.plan.duration_ms
    assert {"python", "plan", "generator", "quorum_chaos"} <= set(recorded["versions"])


# --- replay's reading of an old run ----------------------------------------------------------


def test_replay_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(RunUsageError, match="does not exist"):
        replay_run(tmp_path / "nope", out_dir=None, toxiproxy_url=None, progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RunUsageError, match=r"no plan\.json"):
        replay_run(empty, out_dir=None, toxiproxy_url=None, progress=False)
    plan = generate("mixed", seed=1, peers=3, duration_s=10.0)
    (empty / "plan.json").write_text(format_plan(plan) + "\n", encoding="utf-8")
    with pytest.raises(RunUsageError, match=r"neither run\.json nor options\.json"):
        replay_run(empty, out_dir=None, toxiproxy_url=None, progress=False)
    (empty / "run.json").write_text('{"options": {"clients": "many"}}', encoding="utf-8")
    (empty / "seed").write_text("5\n", encoding="utf-8")
    with pytest.raises(RunUsageError, match="'clients' is 'many'"):
        replay_run(empty, out_dir=None, toxiproxy_url=None, progress=False)


def test_recorded_options_accept_plugin_runs(tmp_path: Path) -> None:
    (tmp_path / "options.json").write_text(
        json.dumps({"seed": 9, "bug": "no-step-down", "timing": "fast", "source": "pytest"}),
        encoding="utf-8",
    )
    recorded = runner.recorded_options(tmp_path)
    assert recorded["bug"] == "no-step-down"
    assert runner._recorded_seed(tmp_path, recorded) == 9


def test_recorded_options_of_a_simulated_run(tmp_path: Path) -> None:
    """The simulator's run.json has no `options` object: its top level is read."""
    (tmp_path / "run.json").write_text(
        json.dumps({"simulated": True, "seed": 4, "bug": "minority-quorum"}), encoding="utf-8"
    )
    assert runner.recorded_options(tmp_path)["bug"] == "minority-quorum"


def test_run_json_has_one_schema_for_every_source(tmp_path: Path) -> None:
    """The CLI's run.json and the plugin's (`run_record(source="pytest")`) have the same
    keys, and the same option names; what the plugin does not know is null."""
    prep = prepare(_options(tmp_path))
    started = datetime(2026, 1, 1, tzinfo=UTC)
    cli = runner.run_json(prep, started_at=started)
    plugin = runner.run_record(
        source="pytest",
        options={"peers": 3, "seed": 7, "bug": None, "timing": "fast", "observers": 1},
        plan=prep.plan,
        observers=1,
        timing_name="fast",
        timing=prep.timing,
        workload=None,
        replay_of=None,
        started_at=started,
    )
    assert set(cli) == set(plugin) and set(cli["options"]) == set(plugin["options"])
    assert (cli["source"], plugin["source"]) == ("cli", "pytest")
    assert plugin["options"]["rate"] is None and plugin["workload"] is None
    assert "observers" not in plugin["options"] and plugin["observers"] == 1
    assert cli["versions"]["run_json"] == runner.RUN_JSON_VERSION == 2
    runner.write_run_json(tmp_path, plugin)
    assert runner.recorded_options(tmp_path)["seed"] == 7
    assert not list(tmp_path.glob(".*.tmp"))


# --- progress and exit codes ------------------------------------------------------------------


def _snap(**changes: Any) -> ProgressSnapshot:
    base = ProgressSnapshot(
        elapsed_s=12.34,
        total_s=60.0,
        steps_done=5,
        steps_total=23,
        steps_failed=0,
        leader=3,
        acked=412,
        failed=3,
        unknown=1,
    )
    return replace(base, **changes)


def test_progress_line_shows_what_matters() -> None:
    line = format_progress(_snap())
    assert line.startswith("[  12.3/60 s]")
    for part in ("faults 5/23", "leader 3", "writes acked 412", "ops fail 3 info 1"):
        assert part in line
    assert "failed)" not in line
    assert "faults 5/23 (2 failed)" in format_progress(_snap(steps_failed=2))
    assert "leader none" in format_progress(_snap(leader=None))


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_display_writes_lines_then_a_final_one() -> None:
    calls: list[int] = []

    def sample() -> ProgressSnapshot:
        calls.append(1)
        return _snap(acked=len(calls))

    plain = io.StringIO()
    display = ProgressDisplay(sample, stream=plain, interval_s=0.01)
    display.start()
    deadline = time.monotonic() + 30.0
    while display.lines < 3:
        assert time.monotonic() < deadline, "the display wrote fewer than 3 lines in 30 s"
        time.sleep(0.005)
    display.stop()
    lines = plain.getvalue().splitlines()
    assert len(lines) == display.lines >= 4
    assert lines[-1] == format_progress(_snap(acked=len(calls)))  # the final sample

    tty = _Tty()
    display = ProgressDisplay(sample, stream=tty, interval_s=0.01)
    display.start()
    display.stop()
    text = tty.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and text.count("\n") == 1


def test_progress_display_survives_a_failing_sample() -> None:
    def sample() -> ProgressSnapshot:
        raise RuntimeError("cluster gone")

    out = io.StringIO()
    display = ProgressDisplay(sample, stream=out, interval_s=0.01)
    display.start()
    display.stop()
    assert "(progress unavailable: cluster gone)" in out.getvalue()


@pytest.mark.parametrize(
    ("outcome", "verdict", "code"),
    [
        ("complete", "valid", 0),
        ("complete", "invalid", 1),
        ("complete", "unknown", 2),
        ("incomplete", "valid", 3),
        ("incomplete", "invalid", 1),
        ("setup_failed", None, 3),
    ],
)
def test_exit_codes(outcome: str, verdict: str | None, code: int) -> None:
    data = None if verdict is None else {"verdict": verdict}
    assert runner._exit_code(runner.RunOutcome(outcome), data) == code


# --- infrastructure failure --------------------------------------------------------------------


@pytest.mark.integration
def test_proxy_down_is_an_infrastructure_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(runner, "START_TIMEOUT_S", 1.0)  # a shorter deadline, same path
    result = execute_run(_options(tmp_path, toxiproxy_url=f"http://127.0.0.1:{port}"))
    assert result.exit_code == 3
    assert result.verdict is None
    assert {"seed", "plan.json", "run.json", "harness.jsonl"} <= {
        p.name for p in result.run_dir.iterdir()
    }
    err = capsys.readouterr().err
    assert "could not set the cluster up" in err and f"127.0.0.1:{port}" in err
    events = [json.loads(line) for line in (result.run_dir / "harness.jsonl").open()]
    assert events[-1]["kind"] == "run_end"
