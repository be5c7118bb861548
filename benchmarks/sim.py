"""Simulator throughput: simulated seconds per wall second (5 peers, `mixed` profile) and
seeds checked per minute (run + check, as a sweep does).

    python benchmarks/sim.py [--duration 120] [--seeds 5] [--rate 50] [--jobs N]

Prints figures; asserts nothing (machines are noisy). `--rate` is the workload's
operations per second (the real workload's default is 50), the main cost driver.
The simulator is one thread, so simulated seconds per CPU second is the one-core
figure; per wall second it also counts the time a shared machine gives to others.
It says whether the native core (peer/native.py: `quorum-chaos native build`) ran; run
it with QUORUM_CHAOS_NATIVE=0 for the Python figures. With `--jobs N` it also sweeps the
same seeds on N worker processes (`quorum-chaos sim --seeds A..B --jobs N`) and prints
seeds checked per minute.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from harness.sim import SimOptions, run_sim, sweep
from harness.sim.run import with_seed
from harness.workload import WorkloadConfig
from peer.native import state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120.0, help="simulated s per seed")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--peers", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=0, help="also sweep on N workers")
    args = parser.parse_args()
    base = SimOptions(
        seed=0,
        peers=args.peers,
        duration_s=args.duration,
        profile="mixed",
        workload=WorkloadConfig(rate=args.rate),
        report=False,
    )
    out = Path(tempfile.mkdtemp(prefix="sim-bench-"))
    try:
        simulated = wall_sim = wall_total = cpu_sim = cpu_total = 0.0
        actions = 0
        for seed in range(1, args.seeds + 1):
            options = with_seed(base, seed)
            started = time.perf_counter()
            cpu_started = time.process_time()
            result = run_sim(options, out / f"seed-{seed}")
            wall_total += time.perf_counter() - started
            cpu_total += time.process_time() - cpu_started
            cpu_sim += result.cpu_s
            simulated += result.simulated_s
            wall_sim += result.wall_s
            actions += result.events
            print(
                f"seed {seed}: {result.outcome.value}, {result.simulated_s:.0f} simulated s "
                f"in {result.wall_s:.2f} s ({result.simulated_s / result.wall_s:.0f}x), "
                f"{result.events} scheduler actions",
                flush=True,
            )
            shutil.rmtree(out / f"seed-{seed}")
        print(f"peers={args.peers} profile=mixed workload={args.rate:g} ops/s")
        native = state()
        print(f"native core: {'in use' if native.active else 'not in use'} ({native.reason})")
        print(f"simulated seconds per wall second (simulation only): {simulated / wall_sim:.0f}")
        print(f"simulated seconds per wall second (with check): {simulated / wall_total:.0f}")
        print(f"simulated seconds per CPU second (simulation only): {simulated / cpu_sim:.0f}")
        print(f"simulated seconds per CPU second (with check): {simulated / cpu_total:.0f}")
        print(f"scheduler actions per wall second: {actions / wall_sim:.0f}")
        print(
            f"seeds checked per minute at {args.duration:g} s each: "
            f"{60 * args.seeds / wall_total:.1f}"
        )
        if args.jobs > 0:
            started = time.perf_counter()
            swept = sweep(base, range(1, args.seeds + 1), out / "sweep", jobs=args.jobs)
            wall = time.perf_counter() - started
            print(
                f"seeds checked per minute, sweep on {args.jobs} workers: "
                f"{60 * swept.checked / wall:.1f}"
            )
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
