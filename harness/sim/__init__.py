"""The deterministic simulator: the peer's cores over a simulated network, disk and clock.

This package owns `quorum-chaos sim` (`sim_main`) and its parts: `world` (scheduler,
network, processes, nemesis, workload around the real cores and storage), `run` (one
run dir from plan to verdict) and `sweep` (seeds in order, on one or more cores). One
seed gives one run, event for event; the run dir has the same files as a real run,
`run.json` in the same schema with `"source": "sim"`, so `check`, `report`, `replay`
and the timeline work unchanged.
It must not change the peer's rules: everything protocol-shaped comes from
`peer.election`, `peer.replication` and `peer.storage`.
"""

from __future__ import annotations

import argparse
import sys

from faults.errors import FaultError
from harness.checker import Outcome
from harness.procs import SignalGuard
from harness.sim.run import SimOptions, SimResult, replay_command, run_sim, simulated_config
from harness.sim.sweep import SweepResult, seed_run_dir, sweep
from harness.sim.world import SimError, World, WorldSpec
from peer.domain import Bug
from peer.native import state

__all__ = [
    "SimError",
    "SimOptions",
    "SimResult",
    "SweepResult",
    "World",
    "WorldSpec",
    "replay_command",
    "run_sim",
    "sim_main",
    "simulated_config",
    "sweep",
]

EXIT_CODES = {Outcome.VALID: 0, Outcome.INVALID: 1, Outcome.UNKNOWN: 2}


def _describe(result: SimResult) -> str:
    verdict = result.verdict
    line = f"seed {result.seed}: {verdict.outcome.value}"
    if verdict.violations:
        names = sorted({v.prop.value for v in verdict.violations})
        line += f" ({', '.join(names)})"
    elif verdict.why:
        line += f" ({'; '.join(verdict.why)})"
    return line


def sim_main(args: argparse.Namespace) -> int:
    """`quorum-chaos sim`: one seed, or a sweep that stops at the first violation.
    Exit 0 valid, 1 invalid, 2 unknown (also for bad arguments)."""
    bug: Bug | None = None
    if args.bug is not None:
        try:
            bug = Bug(args.bug)
        except ValueError:
            known = ", ".join(b.value for b in Bug)
            print(f"sim: unknown --bug {args.bug!r} (known: {known})", file=sys.stderr)
            return 2
    if args.seed is not None and args.seeds is not None:
        print("sim: give --seed or --seeds, not both", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print(f"sim: --jobs must be at least 1, got {args.jobs}", file=sys.stderr)
        return 2
    if not isinstance(args.peers, int) or not 1 <= args.peers <= 99:
        print(f"sim: --peers must be 1..99, got {args.peers!r}", file=sys.stderr)
        return 2
    base = SimOptions(
        seed=args.seed if args.seed is not None else 0,
        peers=args.peers,
        duration_s=args.duration,
        profile=args.profile,
        bug=bug,
        report=args.seeds is None,
    )
    native = state()
    if args.seeds is not None and not native.active:
        print(
            f"sim: note: the simulator runs as Python ({native.reason}); "
            "`quorum-chaos native build` compiles its core, about 1.4x as fast",
            file=sys.stderr,
        )
    # SIGTERM/SIGHUP (a cancelled CI job) unwind like Ctrl-C: the scratch data dirs are
    # removed and sweep workers reaped (forked workers inherit the handler)
    with SignalGuard.held():
        try:
            if args.seeds is None:
                run_dir = seed_run_dir(args.out, base.seed)
                if run_dir.exists() and any(run_dir.iterdir()):
                    why = f"sim: {run_dir} already holds a run; remove it first"
                    print(why, file=sys.stderr)
                    return 2
                result = run_sim(base, run_dir)
                print(f"seed: {result.seed}")
                print(f"verdict: {_describe(result)}")
                print(f"run dir: {result.run_dir}")
                print(
                    f"simulated {result.simulated_s:.1f} s in {result.wall_s:.1f} s wall "
                    f"({result.simulated_s / max(result.wall_s, 1e-9):.0f}x, "
                    f"{'native core' if native.active else 'as Python'})"
                )
                return EXIT_CODES[result.outcome]
            low, high = args.seeds
            swept = sweep(
                base,
                range(low, high + 1),
                args.out,
                jobs=args.jobs,
                on_seed=lambda r: print(_describe(r), flush=True),
            )
        except (SimError, FaultError) as exc:
            print(f"sim: {exc}", file=sys.stderr)
            return 2
    failure = swept.first_failure
    if failure is None:
        print(f"all {swept.checked} seeds valid ({low}..{high})")
        return 0
    print(f"first failing seed: {failure.seed}")
    print(f"verdict: {_describe(failure)}")
    print(f"run dir: {failure.run_dir}")
    replay = SimOptions(
        seed=failure.seed,
        peers=base.peers,
        duration_s=base.duration_s,
        profile=base.profile,
        bug=bug,
    )
    print(f"replay: {replay_command(replay)}")
    return EXIT_CODES[failure.outcome]
