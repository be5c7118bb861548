"""The `quorum-chaos` command line end to end: usage errors are one clear line with exit 2
(a traceback only with --debug); a real run on real processes prints its seed, progress,
verdict, run dir, report and replay command and keeps everything in its run dir; `check`
on a copy gives the same verdict; `report` writes the page; `replay` reruns the same
plan into a new run dir; an interrupted run (Ctrl-C, SIGTERM) keeps its dir, heals,
reaps every process and is still checked. The long runs (several seeds and profiles on
the correct peer, the planted bugs) are `slow`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from faults.plan import format_plan, generate
from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Completed:
    code: int
    out: str
    err: str


def _env() -> dict[str, str]:
    """The environment of a command: this checkout importable, the embedded proxy."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("TOXIPROXY_URL", None)
    return env


def _cli(*args: str, timeout: float = 240.0) -> Completed:
    """Run the real command line in a fresh interpreter (as a user would)."""
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        cwd=ROOT,
    )
    return Completed(proc.returncode, proc.stdout, proc.stderr)


def _run_dir_of(out: str) -> Path:
    lines = [line for line in out.splitlines() if line.startswith("run dir: ")]
    assert lines, f"no run dir printed in:\n{out}"
    return Path(lines[-1].removeprefix("run dir: ").strip())


def _verdict(run_dir: Path) -> dict[str, object]:
    data = json.loads((run_dir / "verdict.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _assert_reaped(run_dir: Path) -> None:
    """Every process the run started (the `pids` file) is gone."""
    alive = []
    for line in (run_dir / "pids").read_text().splitlines():
        name, pid = line.split()
        try:
            if psutil.Process(int(pid)).status() != psutil.STATUS_ZOMBIE:
                # a recycled pid would not be one of ours: compare the command line
                cmd = " ".join(psutil.Process(int(pid)).cmdline())
                if str(run_dir) in cmd or "toxiproxy" in cmd:
                    alive.append((name, pid))
        except psutil.NoSuchProcess:
            pass
    assert not alive, f"left running: {alive}"


# --- usage errors (in-process: fast) ------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--bug", "nope"], "unknown bug 'nope'"),
        (["run", "--peers", "0"], "--peers must be at least 1"),
        (["run", "--duration", "2"], "too short"),
        (["run", "--plan", "{missing}"], "does not exist"),
        (["run", "--plan", "{garbage}"], "is not JSON"),
        (["replay", "{missing}"], "does not exist"),
        (["replay", "{tmp}"], "no plan.json"),
    ],
)
def test_usage_errors_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_text("[1, 2", encoding="utf-8")
    subst = {"{missing}": str(tmp_path / "missing"), "{garbage}": str(garbage)}
    subst["{tmp}"] = str(tmp_path)
    argv = [subst.get(a, a) for a in args] + (
        ["--out", str(tmp_path / "runs")] * (args[0] == "run")
    )
    assert main(argv) == 2
    captured = capsys.readouterr()
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == 1, captured.err
    assert needle in err_lines[0]
    assert err_lines[0].startswith(f"quorum-chaos {args[0]}: ")
    assert "Traceback" not in captured.err
    assert not (tmp_path / "runs").exists()


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "run", "--bug", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "RunUsageError" in err
    assert err.strip().splitlines()[-1].startswith("quorum-chaos run: unknown bug 'nope'")


def test_bad_flag_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--profile", "sideways"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'sideways'" in err and "Traceback" not in err


def test_check_of_a_missing_dir_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_check_of_a_dir_without_logs_is_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "verdict: unknown" in out and "cluster.json missing" in out


# --- real runs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Completed, Path]:
    """One real run: 3 peers, partitions for 7 s (after a 2 s warm-up), then the 5 s
    quiet period."""
    out = tmp_path_factory.mktemp("cli-run")
    done = _cli(
        "run",
        *("--peers", "3", "--duration", "12", "--seed", "11", "--profile", "partitions"),
        *("--rate", "30", "--out", str(out)),
    )
    return done, _run_dir_of(done.out)


@pytest.mark.integration
def test_run_on_the_correct_peer_is_valid(first_run: tuple[Completed, Path]) -> None:
    done, run_dir = first_run
    assert done.code == 0, f"stdout:\n{done.out}\nstderr:\n{done.err[-3000:]}"
    assert "seed 11, 3 peers, 12 s" in done.out
    assert "verdict: valid" in done.out
    assert f"report:  {run_dir / 'report.html'}" in done.out
    assert f"replay:  quorum-chaos replay {run_dir}" in done.out
    assert run_dir.name.endswith("-partitions-s11")
    progress = [line for line in done.err.splitlines() if line.startswith("[")]
    assert len(progress) >= 8, done.err  # about one a second for 12 s
    assert any("writes acked" in line and "leader" in line for line in progress)
    names = {p.name for p in run_dir.iterdir()}
    assert {
        "plan.json",
        "seed",
        "run.json",
        "cluster.json",
        "harness.jsonl",
        "history.jsonl",
        "verdict.json",
        "report.html",
        "peer-1.jsonl",
        "peer-2.jsonl",
        "peer-3.jsonl",
    } <= names
    plan = generate("partitions", seed=11, peers=3, duration_s=12.0)
    assert (run_dir / "plan.json").read_text() == format_plan(plan) + "\n"
    events = [json.loads(line) for line in (run_dir / "harness.jsonl").open()]
    faults = [e for e in events if e["kind"] == "fault" and e["step"] >= 0]
    assert len(faults) == len(plan.steps)
    assert events[-1] == {**events[-1], "kind": "run_end", "reason": "ok"}
    history = [json.loads(line) for line in (run_dir / "history.jsonl").open()]
    assert sum(1 for e in history if e["kind"] == "ok" and e["op"] == "write") > 50
    assert _verdict(run_dir)["verdict"] == "valid"
    _assert_reaped(run_dir)


@pytest.mark.integration
def test_check_and_report_on_a_copied_run_dir(
    first_run: tuple[Completed, Path], tmp_path: Path
) -> None:
    done, run_dir = first_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("data-*", "report.html"))
    (copy / "verdict.json").unlink()
    checked = _cli("check", str(copy))
    assert checked.code == done.code
    assert checked.out.splitlines()[0] == "verdict: valid"
    assert _verdict(copy) == _verdict(run_dir)
    as_json = _cli("check", "--json", str(copy))
    assert json.loads(as_json.out) == _verdict(run_dir)
    reported = _cli("report", str(copy))
    assert reported.code == 0 and reported.out.strip() == str(copy / "report.html")
    page = (copy / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") or page.lower().startswith("<!doctype html>")


@pytest.mark.integration
def test_replay_reruns_the_same_plan(first_run: tuple[Completed, Path], tmp_path: Path) -> None:
    _, run_dir = first_run
    again = _cli("replay", str(run_dir), "--out", str(tmp_path), "--quiet")
    new_dir = _run_dir_of(again.out)
    assert new_dir.parent == tmp_path and new_dir != run_dir
    assert again.code == 0, f"stdout:\n{again.out}\nstderr:\n{again.err[-3000:]}"
    assert not [line for line in again.err.splitlines() if line.startswith("[")]  # --quiet
    assert (new_dir / "plan.json").read_bytes() == (run_dir / "plan.json").read_bytes()
    assert (new_dir / "seed").read_text() == (run_dir / "seed").read_text()
    old, new = (json.loads((d / "run.json").read_text()) for d in (run_dir, new_dir))
    assert new["replay_of"] == str(run_dir)
    for key in ("seed", "peers", "bug", "timing", "workload", "duration_ms", "quiet_ms"):
        assert new[key] == old[key], key
    steps = [
        (e["step"], e["what"])
        for d in (run_dir, new_dir)
        for e in map(json.loads, (d / "harness.jsonl").open())
        if e["kind"] == "fault" and e["step"] >= 0
    ]
    half = len(steps) // 2
    assert steps[:half] == steps[half:]  # the same steps, in the same order
    _assert_reaped(new_dir)


# --- long runs ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize(
    ("profile", "seed"),
    [
        ("mixed", 1),
        ("mixed", 2),
        ("partitions", 3),
        ("crash-restart", 4),
        ("pause", 5),
        ("disk", 1),
        ("latency", 6),
    ],
)
def test_correct_peer_is_valid_for_30_s(tmp_path: Path, profile: str, seed: int) -> None:
    done = _cli(
        *f"run --duration 30 --seed {seed} --profile {profile} --quiet".split(),
        *("--out", str(tmp_path)),
    )
    run_dir = _run_dir_of(done.out)
    assert done.code == 0, f"{run_dir}\n{done.out}\n{done.err[-3000:]}"
    _assert_reaped(run_dir)


# Which planted bug each property should expose, and the profile most likely to do it.
BUG_HUNTS = [
    ("minority-quorum", "partitions", {"election-safety", "prefix-agreement", "durability"}),
    ("no-step-down", "partitions", {"minority-silence"}),
    # a SIGKILL keeps the page cache: only a lost un-fsynced tail (the disk profile's
    # lose-unsynced) shows a peer that ACKed before its fsync
    ("ack-before-fsync", "disk", {"durability", "recovery", "prefix-agreement"}),
]


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize(("bug", "profile", "expected"), BUG_HUNTS)
def test_planted_bug_is_found_within_a_few_seeds(
    tmp_path: Path, bug: str, profile: str, expected: set[str]
) -> None:
    tried: list[str] = []
    for seed in (1, 2, 3):
        done = _cli(
            *f"run --duration 30 --seed {seed} --profile {profile} --bug {bug} --quiet".split(),
            *("--out", str(tmp_path)),
        )
        run_dir = _run_dir_of(done.out)
        _assert_reaped(run_dir)
        violations = _verdict(run_dir)["violations"]
        assert isinstance(violations, list)
        found = {str(v["property"]) for v in violations}
        tried.append(f"seed {seed}: exit {done.code}, {sorted(found)}")
        if done.code == 1 and found & expected:
            return
    pytest.fail(f"--bug {bug} not found with {expected}: " + "; ".join(tried))


# --- interrupted runs ---------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    "sig",
    [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
    ids=["ctrl-c", "sigterm"],
)
def test_interrupted_run_keeps_its_dir_reaps_and_checks(tmp_path: Path, sig: int) -> None:
    args = ["run", "--peers", "3", "--duration", "30", "--seed", "4", "--profile", "pause"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *args, "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # progress lines: interrupt once the faults are under way
            if line.startswith("[") and "leader none" not in line and " faults " in line:
                break
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (1, 3), err[-3000:]  # invalid only if the logs prove it
    run_dir = _run_dir_of(out)
    why = "interrupted" if sig == signal.SIGINT else "terminated"
    assert f"quorum-chaos run: {why}" in err
    assert {"seed", "plan.json", "run.json", "verdict.json"} <= {p.name for p in run_dir.iterdir()}
    assert "verdict: " in out and "replay:  quorum-chaos replay" in out
    events = [json.loads(line) for line in (run_dir / "harness.jsonl").open()]
    assert events[-1]["kind"] == "run_end" and events[-1]["reason"].startswith("error")
    heals = [e for e in events if e["kind"] == "fault" and e["what"] == "heal" and e["step"] < 0]
    assert heals, "the nemesis did not heal on the way out"
    _assert_reaped(run_dir)
