"""One simulated run, start to verdict.

This module owns the run dir of a simulated run and the order of its life: write
`plan.json`, `seed`, `cluster.json` and `run.json` (`harness.runner.run_record`, the
schema every run dir has, with `"source": "sim"`), boot
the plan's initial peers in a `World`, apply each step at its `at_ms` of simulated
time, heal at the end as the real nemesis does, drain the workload, stop the peers,
then check (`harness.runlog.check_run_dir`) and report (`harness.report.write_report`).
Peer data dirs live in a temporary directory (under /dev/shm when there is one, so the
few fsyncs `harness.sim.disk.SimStorage` still makes cost no disk) that is deleted
afterwards. It reads no clock except to report time to people (`SimResult.wall_s`,
`cpu_s`), which no log contains. Sweeps over many seeds are `harness.sim.sweep`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from faults.plan import ClusterView, Plan, generate
from faults.planfile import save_plan
from harness.checker import Outcome, Verdict
from harness.runlog import check_run_dir, write_verdict
from harness.sim.world import NS_PER_MS, SimError, World, WorldSpec
from harness.workload import WorkloadConfig
from peer.config import Address, ClusterConfig, Dial, Member
from peer.domain import FAST, TIMING_PROFILES, Bug, Role, Timing

SIMULATED_HOST = "127.0.0.1"
# After the last planned instant, clients get this long to finish what they started
# (their timeout), then the peers are stopped.
DRAIN_MARGIN_NS = 100 * NS_PER_MS


@dataclass(frozen=True, slots=True, kw_only=True)
class SimOptions:
    """What a simulated run needs; the plan is generated from (profile, seed) unless given."""

    seed: int
    peers: int = 5
    duration_s: float = 600.0
    profile: str = "mixed"
    bug: Bug | None = None
    timing: Timing = FAST
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    report: bool = True  # write report.html (the sweep skips it for passing seeds)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimResult:
    run_dir: Path
    seed: int
    verdict: Verdict
    simulated_s: float
    wall_s: float
    cpu_s: float  # this process's CPU time for the simulation: the one-core figure
    events: int  # scheduler actions executed

    @property
    def outcome(self) -> Outcome:
        return self.verdict.outcome


def simulated_config(sids: tuple[int, ...], timing: Timing) -> ClusterConfig:
    """A cluster.json for the simulator: real members and timing, placeholder ports
    (nothing listens: the `run.json` marker says so)."""

    def ports(sid: int) -> tuple[int, int, int]:
        return 3 * sid + 1, 3 * sid + 2, 3 * sid + 3

    members: dict[int, Member] = {}
    for sid in sids:
        election, quorum, client = ports(sid)
        dial = {
            j: Dial(
                election=Address(host=SIMULATED_HOST, port=ports(j)[0]),
                quorum=Address(host=SIMULATED_HOST, port=ports(j)[1]),
            )
            for j in sids
            if j != sid
        }
        members[sid] = Member(
            sid=sid,
            role=Role.VOTER,
            host=SIMULATED_HOST,
            election_port=election,
            quorum_port=quorum,
            client_port=client,
            dial=dial,
        )
    return ClusterConfig(members=members, timing=timing)


def _scratch_root() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() else Path(tempfile.gettempdir())


def replay_command(options: SimOptions) -> str:
    """The exact command that runs this seed again."""
    parts = [
        "quorum-chaos sim",
        f"--seed {options.seed}",
        f"--peers {options.peers}",
        f"--duration {options.duration_s:g}",
        f"--profile {options.profile}",
    ]
    if options.bug is not None:
        parts.append(f"--bug {options.bug.value}")
    return " ".join(parts)


def _write_run_json(options: SimOptions, plan: Plan, run_dir: Path) -> None:
    """run.json: `quorum-chaos run`'s schema with source "sim", so `replay` (on real
    processes), `check` and `report` read a simulated run dir like any other. The
    options are the CLI's names; what a simulation has no use for (a proxy URL, the
    progress display, a plan file) is null. A timing that is not a named profile is
    recorded as "custom" (a real replay refuses it rather than guess)."""
    from harness.runner import run_record, write_run_json  # heavy: cluster, nemesis

    names = [name for name, timing in TIMING_PROFILES.items() if timing == options.timing]
    timing_name = names[0] if names else "custom"
    workload = options.workload
    record = run_record(
        source="sim",
        options={
            "peers": len(plan.peers),
            "seed": options.seed,
            "duration_s": options.duration_s,
            "profile": plan.profile,
            "bug": options.bug.value if options.bug else None,
            "out_dir": run_dir.parent,
            "timing": timing_name,
            "rate": workload.rate,
            "clients": workload.clients,
        },
        plan=plan,
        observers=0,
        timing_name=timing_name,
        timing=options.timing,
        workload=workload,
        replay_of=None,
        started_at=datetime.now(UTC),  # for people, like the wall time: no log holds it
    )
    write_run_json(run_dir, record)


def run_sim(options: SimOptions, run_dir: Path, *, plan: Plan | None = None) -> SimResult:
    """Run one simulated run into `run_dir` (created; must not hold an earlier run)."""
    if plan is None:
        plan = generate(
            options.profile,
            seed=options.seed,
            peers=options.peers,
            duration_s=options.duration_s,
            timing_tick_ms=options.timing.tick_ms,
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    if any(run_dir.iterdir()):
        raise SimError(f"run dir {run_dir} is not empty")
    config = simulated_config(plan.peers, options.timing)
    save_plan(plan, run_dir / "plan.json")
    (run_dir / "seed").write_text(f"{options.seed}\n", encoding="utf-8")
    (run_dir / "cluster.json").write_text(
        json.dumps(config.to_json(), indent=2) + "\n", encoding="utf-8"
    )
    _write_run_json(options, plan, run_dir)
    spec = WorldSpec(seed=options.seed, config=config, bug=options.bug, workload=options.workload)
    started = time.perf_counter()  # for people only: never logged
    cpu_started = time.process_time()
    scratch = Path(tempfile.mkdtemp(prefix="quorum-sim-", dir=_scratch_root()))
    try:
        world = World(spec, run_dir, scratch)
        try:
            drive(world, plan, seed=options.seed)
        finally:
            world.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    verdict = check_run_dir(run_dir)
    write_verdict(run_dir, verdict)
    if options.report:
        from harness.report import write_report  # heavy; only when a page is wanted

        write_report(run_dir)
    return SimResult(
        run_dir=run_dir,
        seed=options.seed,
        verdict=verdict,
        simulated_s=world.sched.now / 1e9,
        wall_s=wall,
        cpu_s=cpu,
        events=world.sched.executed,
    )


def begin(world: World, plan: Plan, *, seed: int) -> None:
    """run_start, the initial peers, the workload: the state at simulated t=0."""
    world.harness.emit(
        "run_start",
        peers=len(plan.peers),
        observers=0,
        seed=seed,
        bug=world.spec.bug.value if world.spec.bug else None,
        simulated=True,
        profile=plan.profile,
    )
    for sid in plan.initially_running:
        world.start_peer(sid)
    world.view = ClusterView.initial(plan)
    world.net = world.net.bring_up(plan.initially_running)
    world.workload.start()


def drive(world: World, plan: Plan, *, seed: int) -> None:
    """The whole run: steps at their times, the final heal, drain, stop."""
    begin(world, plan, seed=seed)
    sched = world.sched
    for index, step in enumerate(plan.steps):
        sched.run_until(step.at_ms * NS_PER_MS)
        world.apply(step.fault, step=index, at_ms=step.at_ms)
    end = plan.duration_ms * NS_PER_MS
    sched.run_until(end)
    world.heal_all()
    world.workload.stopping = True
    sched.run_until(end + world.workload.timeout_ns + DRAIN_MARGIN_NS)
    world.shutdown("completed")


def with_seed(base: SimOptions, seed: int) -> SimOptions:
    """`base` for another seed (the workload's seed follows it)."""
    return replace(base, seed=seed, workload=replace(base.workload, seed=seed))
