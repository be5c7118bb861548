"""Recorded seeds (`tests/seeds/*.json`) replayed on real processes: each expanded plan,
with its options, must give its recorded verdict, and an invalid one at least its
recorded properties (a real-process run may find more). Records marked `slow` run
only with `-m slow`. Add a failing run with `python -m harness.seeds add RUN_DIR`."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.seeds import load_record, record_from_run, replay, save_record

SEEDS = sorted((Path(__file__).parent / "seeds").glob("*.json"))


def _param(path: Path) -> object:
    record = load_record(path)
    marks = [pytest.mark.integration] + ([pytest.mark.slow] if record.slow else [])
    return pytest.param(path, id=record.name, marks=marks)


def test_there_are_recorded_seeds() -> None:
    outcomes = {load_record(p).expect for p in SEEDS}
    assert {"valid", "invalid"} <= outcomes


@pytest.mark.parametrize("path", [_param(p) for p in SEEDS])
def test_recorded_seed_gives_its_verdict(path: Path, tmp_path: Path) -> None:
    record = load_record(path)
    verdict = replay(record, tmp_path / "run")
    found = {p.value for p in verdict.properties_violated()}
    detail = f"run dir {tmp_path / 'run'}: {verdict.to_json()}"
    assert verdict.outcome.value == record.expect, detail
    assert set(record.properties) <= found, detail


def test_add_records_a_run_dir(tmp_path: Path) -> None:
    # A run dir as `quorum-chaos run` leaves it: the record keeps its plan and verdict.
    source = load_record(SEEDS[0])
    run = tmp_path / "run"
    run.mkdir()
    (run / "plan.json").write_text((Path(__file__).parent / "seeds" / SEEDS[0].name).read_text())
    import json

    raw = json.loads((run / "plan.json").read_text())["plan"]
    (run / "plan.json").write_text(json.dumps(raw))
    (run / "seed").write_text("9\n")
    verdict = {"verdict": "invalid", "violations": [{"property": "election-safety"}]}
    (run / "verdict.json").write_text(json.dumps(verdict))
    record = record_from_run(run, bug="no-step-down")
    assert (record.seed, record.expect, record.properties) == (9, "invalid", ("election-safety",))
    assert record.plan == source.plan and record.bug == "no-step-down"
    again = load_record(save_record(record, tmp_path / "seeds"))
    assert again == record


@pytest.mark.parametrize("layout", ["run.json", "options.json"])
def test_add_reads_bug_peers_and_timing_from_the_run_dir(tmp_path: Path, layout: str) -> None:
    # run.json (every writer since version 2) and a plugin's older options.json both
    # carry the bug, peer count and timing, so `seeds add RUN_DIR` needs no flags.
    import json

    source = load_record(SEEDS[0])
    run = tmp_path / "run"
    run.mkdir()
    raw = json.loads(SEEDS[0].read_text())["plan"]
    (run / "plan.json").write_text(json.dumps(raw))
    (run / "verdict.json").write_text(json.dumps({"verdict": "valid", "violations": []}))
    options = {"seed": 31, "peers": len(source.plan.peers), "bug": "ack-before-fsync"}
    options["timing"] = "zookeeper"
    body = {"source": "pytest", "options": options} if layout == "run.json" else options
    (run / layout).write_text(json.dumps(body))
    record = record_from_run(run)
    assert (record.seed, record.bug, record.timing) == (31, "ack-before-fsync", "zookeeper")
    assert record.peers == len(source.plan.peers)
