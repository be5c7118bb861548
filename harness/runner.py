"""Run orchestration: one `quorum-chaos run` (or `replay`) from options to exit code.

This module owns the order of a run and what survives it. It validates the options,
makes a fresh run dir, writes the run's inputs (`seed`, the expanded `plan.json`,
`run.json`) before anything starts, then drives the launcher (`harness.cluster`), the
workload (`harness.workload`) and the nemesis (`faults.nemesis`), waits the plan's quiet
period, tears everything down, and hands the run dir to the checker (`harness.runlog`)
and the report (`harness.report`). It applies no fault itself, judges nothing itself,
and reads no flag or environment variable (that is `harness.cli`).

Guarantees, whatever happens (an exception, Ctrl-C, SIGTERM): the run dir keeps its
logs, plan and seed; the nemesis heals (its `run` does so on the way out); every
process is reaped (the cluster's `close`); the checker still runs on what was recorded
when there is a `cluster.json` to read.

Exit codes: 0 valid, 1 invalid, 2 unknown or bad input, 3 infrastructure failure (the
cluster could not be set up: a peer could not spawn, the proxy server is down) or an
incomplete run (interrupted, or the harness failed mid-run). A run whose recorded logs
prove a violation exits 1 even when it was cut short: a violation is a fact of the logs,
not of how the run ended.
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO, assert_never

from faults.nemesis import Nemesis
from faults.plan import (
    GENERATOR_VERSION,
    PLAN_VERSION,
    PROFILES,
    Plan,
    Resolution,
    Step,
    generate,
)
from faults.planfile import load_plan, save_plan
from harness import procs
from harness.cluster import Cluster, ClusterSpec
from harness.errors import HarnessError, WaitTimeout
from harness.events import HISTORY_LOG
from harness.progress import ProgressDisplay, ProgressSnapshot
from harness.workload import Workload, WorkloadConfig
from peer.domain import TIMING_PROFILES, Bug, Timing

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNKNOWN = 2
EXIT_INFRA = 3

RUN_JSON = "run.json"
PLAN_JSON = "plan.json"
SEED_FILE = "seed"
# What the pytest plugin recorded before it wrote run.json; replay still reads it.
PLUGIN_OPTIONS_JSON = "options.json"
# 2: one schema for every run dir (CLI and pytest plugin), with "source" and "observers";
# fields the source does not know (the plugin's workload, rate, clients) are null.
RUN_JSON_VERSION = 2
START_TIMEOUT_S = 10.0  # peers and the proxy server must be listening within this


class RunOutcome(StrEnum):
    """How the harness's part of a run ended (the verdict is the checker's part)."""

    COMPLETE = "complete"  # the whole plan and quiet period ran, teardown was clean
    SETUP_FAILED = "setup_failed"  # the cluster could not be set up: infrastructure
    INCOMPLETE = "incomplete"  # interrupted, terminated, or the harness failed mid-run


class RunError(HarnessError):
    """A run could not be set up or finished by the harness (infrastructure: exit 3)."""


class RunUsageError(HarnessError):
    """The options or an input file are unusable (bad usage: exit 2)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """Everything `quorum-chaos run` was asked to do; recorded in `run.json`."""

    peers: int
    seed: int
    duration_s: float
    profile: str
    plan_path: Path | None
    bug: str | None
    out_dir: Path
    timing: str
    rate: float
    clients: int
    toxiproxy_url: str | None
    progress: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    run_dir: Path
    verdict: dict[str, Any] | None
    exit_code: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedRun:
    """Validated inputs of one run: nothing is started or written yet."""

    options: RunOptions
    plan: Plan
    timing: Timing
    bug: Bug | None
    workload: WorkloadConfig
    replay_of: Path | None = None

    @property
    def label(self) -> str:
        return self.plan.profile


# --- validation (no I/O but reading a --plan file) -------------------------------------


def _parse_bug(name: str | None) -> Bug | None:
    if name is None:
        return None
    try:
        return Bug(name)
    except ValueError:
        known = ", ".join(b.value for b in Bug)
        raise RunUsageError(f"unknown bug {name!r} (known: {known})") from None


def _parse_timing(name: str) -> Timing:
    try:
        return TIMING_PROFILES[name]
    except KeyError:
        known = ", ".join(TIMING_PROFILES)
        raise RunUsageError(f"unknown timing {name!r} (known: {known})") from None


def prepare(options: RunOptions, *, replay_of: Path | None = None) -> PreparedRun:
    """Validate `options` and build the plan (generated, or loaded from `plan_path`).
    Raises `RunUsageError` or `PlanError` (both exit 2) naming what is wrong."""
    if isinstance(options.peers, bool) or not isinstance(options.peers, int):
        raise RunUsageError(f"--peers must be an integer, got {options.peers!r}")
    if options.peers < 1:
        raise RunUsageError(f"--peers must be at least 1, got {options.peers}")
    if options.clients < 1:
        raise RunUsageError(f"--clients must be at least 1, got {options.clients}")
    if not options.rate > 0:
        raise RunUsageError(f"--rate must be positive, got {options.rate}")
    if not options.duration_s > 0:
        raise RunUsageError(f"--duration must be positive, got {options.duration_s}")
    if options.seed < 0:
        raise RunUsageError(f"--seed must be >= 0, got {options.seed}")
    bug = _parse_bug(options.bug)
    timing = _parse_timing(options.timing)
    if options.plan_path is None:
        if options.profile not in PROFILES:
            known = ", ".join(PROFILES)
            raise RunUsageError(f"unknown profile {options.profile!r} (known: {known})")
        plan = generate(
            options.profile,
            seed=options.seed,
            peers=options.peers,
            duration_s=options.duration_s,
            timing_tick_ms=timing.tick_ms,
        )
    else:
        if not options.plan_path.is_file():
            raise RunUsageError(f"plan file {str(options.plan_path)!r} does not exist")
        plan = load_plan(options.plan_path)  # PlanError names the step and field
        expected = tuple(range(1, len(plan.peers) + 1))
        if tuple(plan.peers) != expected:
            raise RunUsageError(
                f"plan {str(options.plan_path)!r} names peers {list(plan.peers)}; "
                f"a run needs peers 1..{len(plan.peers)}"
            )
    try:
        workload = WorkloadConfig(clients=options.clients, rate=options.rate, seed=options.seed)
    except ValueError as exc:
        raise RunUsageError(str(exc)) from None
    return PreparedRun(
        options=options,
        plan=plan,
        timing=timing,
        bug=bug,
        workload=workload,
        replay_of=replay_of,
    )


# --- the run dir and its inputs -------------------------------------------------------


def make_run_dir(out_dir: Path, label: str, seed: int, *, now: datetime | None = None) -> Path:
    """Create `out_dir/<UTC yyyymmdd-hhmmss>-<label>-s<seed>`, adding `-2`, `-3`, ... when
    taken (mkdir is the atomic claim, so parallel runs never share a dir)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{label}-s{seed}"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunUsageError(f"cannot create --out {str(out_dir)!r}: {exc.strerror}") from None
    for n in range(1, 1000):
        path = out_dir / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RunError("no free run dir name", out_dir=str(out_dir), base=base)


def _versions() -> dict[str, Any]:
    from importlib import metadata

    try:
        package = metadata.version("quorum-chaos")
    except metadata.PackageNotFoundError:
        package = "unknown (not installed)"
    return {
        "quorum_chaos": package,
        "python": platform.python_version(),
        "plan": PLAN_VERSION,
        "generator": GENERATOR_VERSION,
        "run_json": RUN_JSON_VERSION,
    }


def run_record(
    *,
    source: str,
    options: Mapping[str, Any],
    plan: Plan,
    observers: int,
    timing_name: str,
    timing: Timing,
    workload: WorkloadConfig | None,
    replay_of: Path | None,
    started_at: datetime,
) -> dict[str, Any]:
    """The content of run.json, for every writer of run dirs (`source`: "cli" for
    `quorum-chaos run`/`replay`, "pytest" for the plugin): `options` holds every
    `RunOptions` field (null where the source has no such option), then the plan's
    shape, the resolved timing and bug, the workload (null when a test drove its own),
    versions. `replay` reads `options` back."""
    known = {name: options.get(name) for name in RunOptions.__dataclass_fields__}
    bug = known["bug"]
    return {
        "source": source,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in known.items()},
        "seed": known["seed"],
        "peers": len(plan.peers),
        "observers": observers,
        "profile": plan.profile,
        "duration_ms": plan.duration_ms,
        "quiet_ms": plan.quiet_ms,
        "bug": bug,
        "timing": {"name": timing_name, **asdict(timing)},
        "workload": asdict(workload) if workload is not None else None,
        "replay_of": str(replay_of) if replay_of is not None else None,
        "started_at": started_at.isoformat(timespec="seconds"),
        "argv": list(sys.argv),
        "versions": _versions(),
    }


def run_json(prep: PreparedRun, *, started_at: datetime) -> dict[str, Any]:
    """run.json of a CLI run: every option, the resolved timing and bug, versions."""
    return run_record(
        source="cli",
        options=_options_dict(prep.options),
        plan=prep.plan,
        observers=0,
        timing_name=prep.options.timing,
        timing=prep.timing,
        workload=prep.workload,
        replay_of=prep.replay_of,
        started_at=started_at,
    )


def write_run_json(run_dir: Path, record: Mapping[str, Any]) -> Path:
    """Write run.json (temp file + rename: the plugin rewrites it once the plan is known,
    and a reader must never see half of it)."""
    path = run_dir / RUN_JSON
    tmp = path.with_name(f".{RUN_JSON}.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _options_dict(options: RunOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in RunOptions.__dataclass_fields__}


def write_inputs(run_dir: Path, prep: PreparedRun, *, started_at: datetime) -> None:
    """`seed`, `plan.json` (the expanded plan) and `run.json`, before anything starts."""
    (run_dir / SEED_FILE).write_text(f"{prep.options.seed}\n", encoding="utf-8")
    save_plan(prep.plan, run_dir / PLAN_JSON)
    write_run_json(run_dir, run_json(prep, started_at=started_at))


# --- public API -------------------------------------------------------------------------


def execute_run(options: RunOptions) -> RunResult:
    """Run a cluster through a fault plan and check it; see the module docstring."""
    prep = prepare(options)
    return _execute(prep)


def replay_run(
    run_dir: Path, *, out_dir: Path | None, toxiproxy_url: str | None, progress: bool
) -> RunResult:
    """Run the plan, workload and cluster config recorded in `run_dir` again, on fresh
    processes, into a new run dir (default: beside the old one)."""
    old = Path(run_dir)
    if not old.is_dir():
        raise RunUsageError(f"run dir {str(old)!r} does not exist")
    plan_path = old / PLAN_JSON
    if not plan_path.is_file():
        raise RunUsageError(f"{str(old)!r} has no {PLAN_JSON}: nothing to replay")
    recorded = recorded_options(old)
    seed = _recorded_seed(old, recorded)

    def pick(name: str, kinds: tuple[type, ...], default: Any) -> Any:
        value = recorded.get(name)
        if value is None:
            return default
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise RunUsageError(f"{str(old)!r}: recorded option {name!r} is {value!r}")
        return value

    plan = load_plan(plan_path)
    options = RunOptions(
        peers=len(plan.peers),
        seed=seed,
        duration_s=plan.duration_ms / 1000,  # the plan's own, whatever was asked
        profile=plan.profile,
        plan_path=plan_path,
        bug=pick("bug", (str,), None),
        out_dir=out_dir if out_dir is not None else old.parent,
        timing=str(pick("timing", (str,), "fast")),
        rate=float(pick("rate", (int, float), 50.0)),
        clients=int(pick("clients", (int,), 3)),
        toxiproxy_url=toxiproxy_url,
        progress=progress,
    )
    return _execute(prepare(options, replay_of=old))


def recorded_options(run_dir: Path) -> Mapping[str, Any]:
    """The options a run dir records: run.json's `options` (every run dir since
    run.json version 2), else options.json (pytest plugin run dirs made before). A
    run.json with no `options` object at all (the simulator's) is read as the options."""
    for name, key in ((RUN_JSON, "options"), (PLUGIN_OPTIONS_JSON, None)):
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunUsageError(f"cannot read {str(path)!r}: {exc}") from None
        if key is not None and isinstance(data, dict) and key in data:
            data = data[key]
        if not isinstance(data, dict):
            raise RunUsageError(f"{str(path)!r} does not hold an options object")
        if isinstance(data.get("timing"), dict):  # tolerate {"name": ...}
            data = {**data, "timing": data["timing"].get("name")}
        return data
    raise RunUsageError(f"{str(run_dir)!r} has neither {RUN_JSON} nor {PLUGIN_OPTIONS_JSON}")


def _recorded_seed(run_dir: Path, recorded: Mapping[str, Any]) -> int:
    seed_file = run_dir / SEED_FILE
    if seed_file.is_file():
        text = seed_file.read_text(encoding="utf-8").strip()
        if not text.isdigit():
            raise RunUsageError(f"{str(seed_file)!r} holds {text!r}, not a seed")
        return int(text)
    seed = recorded.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0:
        return seed
    raise RunUsageError(f"{str(run_dir)!r} records no seed")


# --- one run ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Live:
    """Counters the progress display samples (written by the main thread only)."""

    started: float
    steps_done: int = 0
    phase: str = "starting"


def _execute(prep: PreparedRun, *, out: TextIO | None = None) -> RunResult:
    stdout = out if out is not None else sys.stdout
    options = prep.options
    started_at = datetime.now(UTC)
    run_dir = make_run_dir(options.out_dir, prep.label, options.seed, now=started_at)
    write_inputs(run_dir, prep, started_at=started_at)
    total_s = prep.plan.duration_ms / 1000
    what = "replay of " + str(prep.replay_of) if prep.replay_of is not None else prep.label
    print(
        f"quorum-chaos: {what}, seed {options.seed}, {len(prep.plan.peers)} peers, "
        f"{total_s:.0f} s, bug {prep.bug.value if prep.bug else 'none'}\n"
        f"run dir: {run_dir}",
        file=stdout,
        flush=True,
    )
    # SIGTERM/SIGHUP become SystemExit in the main thread for the whole run, so the
    # teardown and the checker run (nested with the cluster's own hold).
    with procs.SignalGuard.held():
        outcome, problem = _drive(prep, run_dir)
    return _finish(run_dir, outcome, problem, stdout)


def _drive(prep: PreparedRun, run_dir: Path) -> tuple[RunOutcome, str | None]:
    """Start, fault, stop; returns how it ended and why when not complete."""
    options, plan = prep.options, prep.plan
    spec = ClusterSpec(
        peers=len(plan.peers),
        timing=prep.timing,
        bug=prep.bug,
        toxiproxy_url=options.toxiproxy_url,
        seed=options.seed,
    )
    live = _Live(started=time.monotonic())
    stop = threading.Event()
    workload: Workload | None = None
    display: ProgressDisplay | None = None
    phase = "setup"
    try:
        with Cluster(spec, run_dir) as cluster:
            try:
                cluster.start(plan.initially_running, timeout=START_TIMEOUT_S)
                if 2 * len(plan.initially_running) > len(plan.peers):
                    _await_first_leader(cluster, prep.timing)
                workload = Workload(
                    prep.workload,
                    sids=cluster.sids,
                    address=cluster.client_address,
                    history_path=run_dir / HISTORY_LOG,
                )
                nemesis = Nemesis(cluster, plan, seed=options.seed, workload=workload.set_enabled)
                phase = "run"
                live.started = time.monotonic()
                if options.progress:
                    display = ProgressDisplay(_sampler(live, prep, cluster, nemesis, workload))
                    display.start()
                workload.start()
                live.phase = "faults"

                def on_step(index: int, step: Step, resolution: Resolution) -> None:
                    live.steps_done = index + 1

                nemesis.run(stop=stop, on_step=on_step)
                live.phase = "quiet"
                # The fault-free time the liveness check needs at the end, counted from
                # the last step actually applied (a late step still gets all of it).
                stop.wait(plan.quiet_ms / 1000)
                live.phase = "stopping"
            finally:
                stop.set()
                if display is not None:
                    display.stop()
                if workload is not None:
                    workload.stop()
                for sid in cluster.running():  # graceful: peers log their shutdown
                    try:
                        cluster.stop(sid)
                    except HarnessError as exc:
                        print(f"stopping peer {sid}: {exc}", file=sys.stderr)
    except HarnessError as exc:
        if phase == "setup":
            return RunOutcome.SETUP_FAILED, f"could not set the cluster up: {exc}"
        return RunOutcome.INCOMPLETE, f"harness failure: {exc}"
    except (KeyboardInterrupt, SystemExit) as exc:
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"terminated ({exc})"
        return RunOutcome.INCOMPLETE, why
    except Exception as exc:  # a bug of ours or of a component: still check what exists
        why = f"{type(exc).__name__}: {exc}"
        failed = RunOutcome.SETUP_FAILED if phase == "setup" else RunOutcome.INCOMPLETE
        return failed, why
    return RunOutcome.COMPLETE, None


def _await_first_leader(cluster: Cluster, timing: Timing) -> None:
    """Wait for an established leader before faults start. No leader in time is a
    finding about the peers, not a harness failure: say so and go on (the checker's
    liveness properties judge it)."""
    # An election plus discovery: several notification rounds and init_limit ticks.
    timeout = max(15.0, 3 * (timing.init_limit * timing.tick_ms) / 1000)
    try:
        cluster.wait_for_leader(timeout)
    except WaitTimeout as exc:
        print(
            f"warning: no leader within {timeout:.0f} s of start; running the plan anyway "
            f"({exc.awaited})",
            file=sys.stderr,
        )


def _sampler(
    live: _Live, prep: PreparedRun, cluster: Cluster, nemesis: Nemesis, workload: Workload
) -> Callable[[], ProgressSnapshot]:
    def sample() -> ProgressSnapshot:
        stats = workload.stats
        return ProgressSnapshot(
            elapsed_s=time.monotonic() - live.started,
            total_s=prep.plan.duration_ms / 1000,
            steps_done=live.steps_done,
            steps_total=len(prep.plan.steps),
            steps_failed=len(nemesis.failures),
            leader=cluster.leader() if live.phase in ("faults", "quiet") else None,
            acked=stats.ok,
            failed=stats.fail,
            unknown=stats.info,
            phase=live.phase,
        )

    return sample


def _finish(run_dir: Path, outcome: RunOutcome, problem: str | None, stdout: TextIO) -> RunResult:
    """Check what was recorded, write verdict.json and report.html, print, pick the code."""
    from harness.cli import format_verdict
    from harness.report import write_report
    from harness.runlog import CONFIG_FILE, check_run_dir, write_verdict

    if problem is not None:
        print(f"quorum-chaos run: {problem}", file=sys.stderr)
    data: dict[str, Any] | None = None
    report: Path | None = None
    if (run_dir / CONFIG_FILE).exists():
        verdict = check_run_dir(run_dir)
        write_verdict(run_dir, verdict)
        data = verdict.to_json()
        try:
            report = write_report(run_dir)
        except Exception as exc:  # the verdict stands without its picture
            print(f"quorum-chaos run: report not written: {exc}", file=sys.stderr)
        print(format_verdict(data), file=stdout)
    else:
        print("verdict: none (the cluster never started: nothing to check)", file=stdout)
    print(f"run dir: {run_dir}", file=stdout)
    if report is not None:
        print(f"report:  {report}", file=stdout)
    print(f"replay:  quorum-chaos replay {shlex.quote(str(run_dir))}", file=stdout, flush=True)
    return RunResult(run_dir=run_dir, verdict=data, exit_code=_exit_code(outcome, data))


def _exit_code(outcome: RunOutcome, data: Mapping[str, Any] | None) -> int:
    verdict = None if data is None else data.get("verdict")
    if verdict == "invalid":
        return EXIT_INVALID  # proven by the logs, however the run ended
    match outcome:
        case RunOutcome.COMPLETE:
            return EXIT_VALID if verdict == "valid" else EXIT_UNKNOWN
        case RunOutcome.SETUP_FAILED | RunOutcome.INCOMPLETE:
            return EXIT_INFRA
        case _:
            assert_never(outcome)
