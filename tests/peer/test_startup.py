"""How a peer process starts: the launcher's command line and environment
(`harness.cluster.peer_argv`, `peer_env`, `precompile_peer`) and the promise they rest
on, that the peer runs on the standard library alone (it is started with `python -S`).
No timing is asserted here: start-up speed is benchmarks/election.py's business."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cluster import (
    PEER_PYTHON_FLAGS,
    _cached_path,
    _is_fresh,
    peer_argv,
    peer_env,
    precompile_peer,
)
from peer.domain import Bug
from tests.peer.test_integration_support import direct_config

PROJECT_PACKAGES = {"peer", "harness", "__main__"}
START_TIMEOUT_S = 30.0  # generous: shared, busy cores


def test_argv_runs_the_peer_module_with_the_launch_flags(tmp_path: Path) -> None:
    bug = Bug.TRUNC_TOO_FAR
    argv = peer_argv("py", 3, tmp_path / "c.json", tmp_path / "d", tmp_path / "e", bug)
    assert argv[: 1 + len(PEER_PYTHON_FLAGS)] == ["py", *PEER_PYTHON_FLAGS]
    assert argv[1 + len(PEER_PYTHON_FLAGS) :] == [
        "-m",
        "peer",
        "--id",
        "3",
        "--config",
        str(tmp_path / "c.json"),
        "--data",
        str(tmp_path / "d"),
        "--events",
        str(tmp_path / "e"),
        "--bug",
        "trunc-too-far",
    ]


def test_env_caches_bytecode_outside_the_tree_when_writing_is_off() -> None:
    env = peer_env({"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": "/elsewhere"})
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPYCACHEPREFIX"]
    assert env["PYTHONPATH"].split(":")[1:] == ["/elsewhere"]
    # A prefix chosen by the user is kept, and so is their "do not write" then.
    mine = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": "/mine"}
    assert peer_env(mine)["PYTHONPYCACHEPREFIX"] == "/mine"
    assert peer_env(mine)["PYTHONDONTWRITEBYTECODE"] == "1"
    assert "PYTHONPYCACHEPREFIX" not in peer_env({})


def test_precompile_warms_up_what_the_peer_loads_once(tmp_path: Path) -> None:
    env = peer_env({"PYTHONPYCACHEPREFIX": str(tmp_path / "pyc")})
    assert precompile_peer(env)
    assert not precompile_peer(env)  # fresh now: no second warm-up
    assert not precompile_peer({"PYTHONDONTWRITEBYTECODE": "1"})
    node = Path(__file__).resolve().parents[2] / "peer" / "node.py"
    assert _is_fresh(node, _cached_path(node, env["PYTHONPYCACHEPREFIX"]))
    # The interpreter agrees: run with that prefix it loads peer.node from the cache.
    run = subprocess.run(
        [sys.executable, *PEER_PYTHON_FLAGS, "-v", "-c", "import peer.node"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert re.search(r"matches .*peer/node\.py", run.stderr), "peer.node was not loaded from cache"


# Runs the peer as `python -S -m peer ...` would, and writes the modules it had
# loaded, at exit, to the file named by argv[1].
_RUN_PEER = """
import atexit, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(
    name for name, module in sys.modules.items() if module is not None))))
sys.argv[0] = "peer"
runpy.run_module("peer", run_name="__main__", alter_sys=True)
"""


@pytest.mark.integration
def test_a_peer_started_as_launched_imports_only_the_standard_library(tmp_path: Path) -> None:
    """A one-voter peer started with the launcher's flags and environment reaches
    `listening`; every module it loaded is stdlib or the project's own (an optional
    import that fails, like orjson without site-packages, is fine)."""
    config = tmp_path / "cluster.json"
    config.write_text(json.dumps(direct_config([1]).to_json()), encoding="utf-8")
    events = tmp_path / "peer-1.jsonl"
    (tmp_path / "data").mkdir()
    argv = peer_argv(sys.executable, 1, config, tmp_path / "data", events)
    modules = tmp_path / "modules"
    flags = argv[1 : argv.index("-m")]
    argv = [sys.executable, *flags, "-c", _RUN_PEER, str(modules), *argv[argv.index("peer") + 1 :]]
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(argv, env=peer_env(), stdout=err, stderr=err)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while b'"listening"' not in (events.read_bytes() if events.exists() else b""):
                assert proc.poll() is None, f"peer exited: {stderr.read_text()}"
                assert time.monotonic() < deadline, "peer did not log `listening` in time"
                time.sleep(0.02)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    loaded = modules.read_text().split()
    assert "peer.node" in loaded
    known = sys.stdlib_module_names | PROJECT_PACKAGES
    foreign = [name for name in loaded if name.split(".")[0] not in known]
    assert foreign == []
