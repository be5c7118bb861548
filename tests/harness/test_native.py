"""The native core (peer/native.py, harness/native.py): a mypyc build of the simulator's
hot modules, loaded only for exactly the source it was built from, and indistinguishable
from Python except in speed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.cli import main
from harness.native import NativeBuildError, build, prune, status_lines
from peer.native import (
    MANIFEST,
    NATIVE_MODULES,
    build_key,
    read_manifest,
    source_root,
)
from tests.harness.cli_group import cli_group

PROBE = (
    "import harness.sim.world, harness.checker, peer.node, peer.native as n; "
    "s = n.state(); print(s.active, ','.join(n.loaded()), s.reason, sep='|')"
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUORUM_CHAOS_NATIVE")}
    env.update(extra)
    return env


def _probe(env: dict[str, str]) -> tuple[bool, list[str], str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    active, loaded, reason = out.split("|")
    return active == "True", [m for m in loaded.split(",") if m], reason


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_key_follows_every_byte_and_path_of_the_source(tmp_path: Path) -> None:
    _tree(tmp_path, {"peer/a.py": "x = 1\n", "harness/b.py": "", "faults/c.py": "", "x.txt": ""})
    key = build_key(tmp_path)
    assert build_key(tmp_path) == key
    (tmp_path / "x.txt").write_text("not source")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.py").write_text("y = 2\n")
    assert build_key(tmp_path) == key  # only the three packages' Python files count
    (tmp_path / "peer" / "a.py").write_text("x = 2\n")
    assert build_key(tmp_path) != key
    (tmp_path / "peer" / "a.py").write_text("x = 1\n")
    assert build_key(tmp_path) == key
    (tmp_path / "harness" / "b.py").rename(tmp_path / "harness" / "b2.py")
    assert build_key(tmp_path) != key
    (tmp_path / "harness" / "b2.py").rename(tmp_path / "harness" / "b.py")
    (tmp_path / "faults" / "sub").mkdir()
    (tmp_path / "faults" / "sub" / "d.py").write_text("")
    assert build_key(tmp_path) != key


@pytest.mark.parametrize(
    ("manifest", "why"),
    [
        ("{not json", "unreadable"),
        (json.dumps({"modules": ["peer.domain"]}), "not a build of"),
        (json.dumps({"modules": list(NATIVE_MODULES)}), "missing"),
    ],
)
def test_a_broken_build_is_named_and_left_unused(tmp_path: Path, manifest: str, why: str) -> None:
    build_dir = tmp_path / build_key(source_root())
    build_dir.mkdir()
    (build_dir / MANIFEST).write_text(manifest)
    with pytest.raises(ValueError, match=why):
        read_manifest(build_dir)
    active, loaded, reason = _probe(_env(QUORUM_CHAOS_NATIVE_DIR=str(tmp_path)))
    assert (active, loaded) == (False, [])
    assert "build not used" in reason and why in reason


def test_nothing_built_or_switched_off_runs_python(tmp_path: Path) -> None:
    empty = tmp_path / "cache"
    assert _probe(_env(QUORUM_CHAOS_NATIVE_DIR=str(empty))) == (
        False,
        [],
        f"no build in {empty}",
    )
    empty.mkdir()
    active, loaded, reason = _probe(_env(QUORUM_CHAOS_NATIVE_DIR=str(empty)))
    assert (active, loaded) == (False, []) and reason.startswith("no build of this source")
    off = _env(QUORUM_CHAOS_NATIVE_DIR=str(empty), QUORUM_CHAOS_NATIVE="0")
    assert _probe(off) == (False, [], "turned off by QUORUM_CHAOS_NATIVE=0")
    # no HOME and no XDG_CACHE_HOME: the home dir comes from the passwd entry (where a
    # developer's own build may be), or the lookup gives up quietly; imports go on
    homeless = {k: v for k, v in _env().items() if k not in ("HOME", "XDG_CACHE_HOME")}
    active, loaded, _ = _probe(homeless)
    assert loaded == (list(NATIVE_MODULES) if active else [])


def test_a_failed_build_says_why_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUORUM_CHAOS_NATIVE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # a C compiler that fails at once
    with pytest.raises(NativeBuildError, match=r"mypyc build failed \(exit 1\)"):
        build(jobs=1)
    assert list(tmp_path.iterdir()) == []  # no build, no half-built temp dir
    assert main(["native", "status"]) == 0
    printed = capsys.readouterr().out
    assert f"cache: {tmp_path}" in printed and "built: no (quorum-chaos native build)" in printed


def test_clean_removes_every_build_and_leftover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUORUM_CHAOS_NATIVE_DIR", str(tmp_path))
    for name in ("0" * 32, "f" * 32, ".build-killed"):  # two keys, a build cut short
        (tmp_path / name / "peer").mkdir(parents=True)
        (tmp_path / name / "peer" / "x.so").write_bytes(b"")
    assert main(["native", "clean"]) == 0
    assert capsys.readouterr().out == f"removed 3 build(s) from {tmp_path}\n"
    assert list(tmp_path.iterdir()) == []
    assert main(["native", "clean"]) == 0
    assert capsys.readouterr().out == f"removed 0 build(s) from {tmp_path}\n"


def _running(process: psutil.Process) -> bool:
    """Alive, not a zombie (a killed compiler whose parent died waits for init)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _compiling(process: psutil.Process) -> bool:
    try:
        return process.name() in ("gcc", "cc", "cc1", "as")
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_build_reaps_its_compilers_and_leaves_nothing(
    tmp_path: Path, signum: int
) -> None:
    env = _env(QUORUM_CHAOS_NATIVE_DIR=str(tmp_path))
    with cli_group("native", "build", env=env) as building:
        # wait for the C compiler (after mypy's pass): grandchildren in the build's own
        # process group, which only reaping the group stops
        deadline = time.monotonic() + 120
        children: list[psutil.Process] = []
        while not any(_compiling(p) for p in children):
            assert building.poll() is None, building.communicate()[0]
            assert time.monotonic() < deadline, "the build started no compiler"
            time.sleep(0.1)
            children = psutil.Process(building.pid).children(recursive=True)
        os.killpg(building.pid, signum)
        output, _ = building.communicate(timeout=60)
    assert building.returncode != 0, output
    # gone already, not just finishing their file: a compiler left alone runs for many
    # seconds more (the big C file takes most of the minute)
    time.sleep(0.2)
    assert [p for p in children if _running(p)] == []
    assert list(tmp_path.iterdir()) == []  # no build, no temp dir


def test_prune_keeps_the_newest_builds_and_builds_in_progress(tmp_path: Path) -> None:
    for age, name in enumerate(["a" * 32, "b" * 32, "c" * 32, "d" * 32, ".build-x"]):
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, ns=(0, (10 - age) * 10**9))  # a is the newest
    removed = prune(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == ["c" * 32, "d" * 32]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".build-x", "a" * 32, "b" * 32]


def _sim(out: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`quorum-chaos sim ... --out OUT` in a process of its own (its own native state)."""
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "sim", *args, "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _sim_run_dir(out: Path, env: dict[str, str], *args: str) -> Path:
    done = _sim(out, env, *args)
    assert done.returncode in (0, 1), done.stderr
    (run_dir,) = out.iterdir()
    return run_dir


# (profile, seed, duration, bug): the correct peer under every kind of fault, and bugs
# whose violations the checker must word identically
CASES = [
    ("mixed", "2", "30", None),
    ("pause", "3", "20", None),
    ("disk", "1", "20", None),
    ("partitions", "2", "20", "no-step-down"),
    ("crash-restart", "1", "20", "ack-before-fsync"),
    ("crash-restart", "6", "30", "trunc-too-far"),
]


@pytest.mark.skipif(
    shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler on this machine"
)
def test_the_native_build_runs_the_simulator_byte_for_byte_as_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("QUORUM_CHAOS_NATIVE_DIR", str(cache))
    built = build(jobs=2)
    assert built == cache / build_key(source_root())
    assert set(read_manifest(built)) == {*NATIVE_MODULES, "quorum_chaos_native__mypyc"}
    stamp = (built / MANIFEST).stat().st_mtime_ns
    assert build(jobs=2) == built and (built / MANIFEST).stat().st_mtime_ns == stamp
    assert f"built: {built}" in status_lines()
    assert not any(p.name.startswith(".build-") for p in cache.iterdir())

    native = _env(QUORUM_CHAOS_NATIVE_DIR=str(cache))
    python = _env(QUORUM_CHAOS_NATIVE="0")
    active, loaded, _ = _probe(native)
    assert active and loaded == list(NATIVE_MODULES)  # the real peer's Node imports too
    for n, (profile, seed, duration, bug) in enumerate(CASES):
        args = ["--seed", seed, "--duration", duration, "--profile", profile]
        args += ["--bug", bug] if bug else []
        fast = _sim_run_dir(tmp_path / f"native-{n}", native, *args)
        slow = _sim_run_dir(tmp_path / f"python-{n}", python, *args)
        names = sorted(p.name for p in slow.iterdir())
        assert sorted(p.name for p in fast.iterdir()) == names
        for name in names:
            if name == "run.json":  # argv, out dir and start time differ by design
                a, b = json.loads((fast / name).read_text()), json.loads((slow / name).read_text())
                for key in ("argv", "started_at", "options"):
                    a.pop(key), b.pop(key)
                assert a == b
            else:
                same = (fast / name).read_bytes() == (slow / name).read_bytes()
                assert same, f"{profile} seed {seed} bug {bug}: {name} differs"
        verdict = json.loads((fast / "verdict.json").read_text())
        assert verdict["verdict"] == ("valid" if bug is None else "invalid"), (profile, bug)

    # a sweep on two workers: options and results cross processes (pickled) both ways
    sweep = ["--seeds", "1..4", "--jobs", "2", "--duration", "20", "--profile", "partitions"]
    sweep += ["--bug", "no-step-down"]
    printed = []
    for name, env in (("native-sweep", native), ("python-sweep", python)):
        out = tmp_path / name
        done = _sim(out, env, *sweep)
        assert done.returncode == 1, done.stderr
        printed.append(done.stdout.replace(str(out), "OUT"))
        assert ("native build" in done.stderr) is (env is python)  # the hint, when it helps
    assert printed[0] == printed[1]
    assert "first failing seed: 2" in printed[0]
