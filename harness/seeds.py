"""Recorded seeds: expanded fault plans with their options and expected verdict, kept as
`tests/seeds/*.json` and replayed on real processes by `tests/test_seeds.py`.

This module owns the record format, turning a run dir into a record (`add`), and
replaying a record (`replay`: a cluster, a workload and a nemesis running the stored
plan as is, then the checker). It generates no plans and holds no checking rule.

Add a failing run to the suite:

    python -m harness.seeds add RUN_DIR [--name NAME] [--dir tests/seeds] [--slow]

RUN_DIR needs `plan.json` and `verdict.json` (what `quorum-chaos run` and the pytest
plugin leave); the peers' count, bug and timing come from the run dir's run.json (or
a plugin's older `options.json`) when present, else from `--peers/--bug/--timing`.
The record expects the run's verdict and violated properties, so the replay test fails
if the bug stops being found.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faults.plan import Plan, parse_plan, plan_to_json
from harness.errors import HarnessError

RECORD_VERSION = 1
OUTCOMES = ("valid", "invalid", "unknown")


class SeedError(HarnessError):
    """A seed record or run dir that cannot be used, with the file and what is wrong."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedRecord:
    name: str
    description: str
    seed: int
    peers: int
    bug: str | None
    timing: str
    plan: Plan
    expect: str
    properties: tuple[str, ...]
    slow: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "name": self.name,
            "description": self.description,
            "options": {
                "seed": self.seed,
                "peers": self.peers,
                "bug": self.bug,
                "timing": self.timing,
            },
            "expect": {"verdict": self.expect, "properties": list(self.properties)},
            "slow": self.slow,
            "plan": plan_to_json(self.plan),
        }


def _need(raw: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = raw.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise SeedError(f"{where}: field {key!r} missing or not {kind}", value=value)
    return value


def load_record(path: Path) -> SeedRecord:
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise SeedError("cannot read seed record", path=str(path), error=str(exc)) from None
    where = str(path)
    if not isinstance(raw, dict) or raw.get("version") != RECORD_VERSION:
        raise SeedError(f"{where}: not a seed record of version {RECORD_VERSION}")
    options = _need(raw, "options", dict, where)
    expect = _need(raw, "expect", dict, where)
    outcome = _need(expect, "verdict", str, where)
    if outcome not in OUTCOMES:
        raise SeedError(f"{where}: expect.verdict must be one of {OUTCOMES}", got=outcome)
    bug = options.get("bug")
    if bug is not None and not isinstance(bug, str):
        raise SeedError(f"{where}: options.bug must be a name or null", got=bug)
    return SeedRecord(
        name=_need(raw, "name", str, where),
        description=str(raw.get("description", "")),
        seed=_need(options, "seed", int, where),
        peers=_need(options, "peers", int, where),
        bug=bug,
        timing=str(options.get("timing", "fast")),
        plan=parse_plan(raw.get("plan")),
        expect=outcome,
        properties=tuple(str(p) for p in expect.get("properties") or ()),
        slow=bool(raw.get("slow", False)),
    )


def save_record(record: SeedRecord, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record.name}.json"
    path.write_text(json.dumps(record.to_json(), indent=2) + "\n", "utf-8")
    return path


def record_from_run(
    run_dir: Path,
    *,
    name: str | None = None,
    peers: int | None = None,
    bug: str | None = None,
    timing: str | None = None,
    slow: bool = False,
) -> SeedRecord:
    """A record of a finished run dir, expecting the verdict it got."""
    plan_path, verdict_path = run_dir / "plan.json", run_dir / "verdict.json"
    for path in (plan_path, verdict_path):
        if not path.is_file():
            raise SeedError(
                f"{path.name} missing: is this a finished run dir?", run_dir=str(run_dir)
            )
    plan = parse_plan(json.loads(plan_path.read_text("utf-8")))
    verdict = json.loads(verdict_path.read_text("utf-8"))
    from harness.runner import RunUsageError, recorded_options

    try:
        options: Mapping[str, Any] = recorded_options(run_dir)
    except RunUsageError:
        options = {}  # a run dir with neither run.json nor options.json: the plan decides
    seed_text = (run_dir / "seed").read_text().strip() if (run_dir / "seed").is_file() else ""
    seed = int(seed_text) if seed_text else options.get("seed", plan.seed or 0)
    chosen_bug = bug if bug is not None else options.get("bug")
    properties = sorted({str(v.get("property")) for v in verdict.get("violations") or ()})
    default_name = re.sub(
        r"[^A-Za-z0-9_-]+", "-", f"{chosen_bug or 'correct'}-{plan.profile}-{seed}"
    )
    return SeedRecord(
        name=name or default_name,
        description=f"recorded from {run_dir.name}",
        seed=int(seed),
        peers=peers or int(options.get("peers", len(plan.peers))),
        bug=chosen_bug,
        timing=timing or str(options.get("timing", "fast")),
        plan=plan,
        expect=str(verdict.get("verdict")),
        properties=tuple(properties),
        slow=slow,
    )


def replay(record: SeedRecord, run_dir: Path, *, toxiproxy_url: str | None = None) -> Any:
    """Run the record's plan on real processes in `run_dir`; returns the checker's Verdict.
    The run dir gets plan.json, seed, run.json and verdict.json like any run."""
    from faults.nemesis import Nemesis
    from faults.planfile import save_plan
    from harness.cluster import Cluster, ClusterSpec
    from harness.events import HISTORY_LOG
    from harness.runlog import check_run_dir, write_verdict
    from harness.workload import Workload, WorkloadConfig
    from peer.domain import TIMING_PROFILES, Bug

    run_dir.mkdir(parents=True, exist_ok=True)
    save_plan(record.plan, run_dir / "plan.json")
    (run_dir / "seed").write_text(f"{record.seed}\n", "utf-8")
    from harness.runner import RUN_JSON, run_record

    workload_config = WorkloadConfig(clients=2, rate=20.0, seed=record.seed)
    record_json = run_record(
        source="seeds",
        options={
            "seed": record.seed,
            "peers": record.peers,
            "bug": record.bug,
            "timing": record.timing,
            "profile": record.plan.profile,
        },
        plan=record.plan,
        observers=0,
        timing_name=record.timing,
        timing=TIMING_PROFILES[record.timing],
        workload=workload_config,
        replay_of=None,
        started_at=datetime.now(UTC),
    )
    (run_dir / RUN_JSON).write_text(json.dumps(record_json, indent=2) + "\n", "utf-8")
    spec = ClusterSpec(
        peers=record.peers,
        timing=TIMING_PROFILES[record.timing],
        bug=Bug(record.bug) if record.bug else None,
        toxiproxy_url=toxiproxy_url,
        seed=record.seed,
    )
    with Cluster(spec, run_dir) as cluster:
        cluster.start(record.plan.initially_running)
        workload = Workload(
            workload_config,
            sids=cluster.voters,
            address=cluster.client_address,
            history_path=run_dir / HISTORY_LOG,
        )
        with workload:
            nemesis = Nemesis(cluster, record.plan, seed=record.seed, workload=workload.set_enabled)
            nemesis.run()
            time.sleep(record.plan.quiet_ms / 1000)  # the quiet period the liveness check judges
    verdict = check_run_dir(run_dir)
    write_verdict(run_dir, verdict)
    return verdict


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.seeds", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="record a finished run dir as a seed")
    add.add_argument("run_dir", type=Path)
    add.add_argument("--name", default=None)
    add.add_argument("--dir", type=Path, default=Path("tests/seeds"))
    add.add_argument("--peers", type=int, default=None)
    add.add_argument("--bug", default=None)
    add.add_argument("--timing", default=None)
    add.add_argument("--slow", action="store_true", help="only in the slow suite (-m slow)")
    args = parser.parse_args(argv)
    try:
        record = record_from_run(
            args.run_dir,
            name=args.name,
            peers=args.peers,
            bug=args.bug,
            timing=args.timing,
            slow=args.slow,
        )
        path = save_record(record, args.dir)
    except (HarnessError, OSError, ValueError) as exc:
        print(f"harness.seeds: {exc}", file=sys.stderr)
        return 2
    print(f"{path}: expects {record.expect} {', '.join(record.properties)}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
