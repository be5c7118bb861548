"""Seed sweeps: run seeds in order and stop at the first that is not valid.

A sweep answers "which is the first failing seed in A..B", so its answer must not
depend on how it was run. With `jobs > 1` the seeds run in worker processes (each
simulation is one thread; a sweep is the one place where more cores help), but the
results are taken strictly in seed order: `on_seed` sees the same seeds in the same
order, the sweep stops at the same first failure, and seeds after it that a worker
had already started are thrown away, run dirs included. The output of a sweep is the
same for every `jobs`, only sooner.

Passing run dirs are deleted unless `keep_passing` (a sweep of thousands would fill
the disk); the failing one is kept, with its report. Workers are reaped whatever
happens (an error, Ctrl-C): the pool is shut down with its queue cancelled.
"""

from __future__ import annotations

import copyreg
import multiprocessing
import shutil
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from harness.checker import Bounds, Evidence, Outcome, Verdict, Violation
from harness.sim.run import SimOptions, SimResult, run_sim, with_seed
from peer.domain import Timing

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepResult:
    checked: int
    first_failure: SimResult | None
    last: SimResult | None


def _rebuild(cls: type[_T], items: tuple[tuple[str, Any], ...]) -> _T:
    return cls(**dict(items))


def _by_fields(obj: Any) -> tuple[Any, ...]:
    return (_rebuild, (type(obj), tuple((f.name, getattr(obj, f.name)) for f in fields(obj))))


# The frozen dataclasses that cross to and from workers (in SimOptions and SimResult).
# Compiled by the native build (peer/native.py), they would unpickle by setting their
# attributes one by one, which a frozen class refuses; through the constructor they
# cross in both builds.
for _frozen in (Timing, Verdict, Violation, Evidence, Bounds):
    copyreg.pickle(_frozen, _by_fields)


def seed_run_dir(out: Path, seed: int) -> Path:
    """A seed's run dir under `out`, for a sweep and for `quorum-chaos sim --seed`."""
    return out / f"sim-seed-{seed}"


def _run_seed(base: SimOptions, seed: int, out: Path) -> SimResult:
    """One seed of a sweep, in this process or a worker (module level: picklable)."""
    run_dir = seed_run_dir(out, seed)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    return run_sim(with_seed(base, seed), run_dir)


Results = Generator[SimResult, None, None]


def _in_process(base: SimOptions, seeds: range, out: Path) -> Results:
    for seed in seeds:
        yield _run_seed(base, seed, out)


def _in_workers(base: SimOptions, seeds: range, out: Path, jobs: int) -> Results:
    """Results in seed order from `jobs` workers, at most 2 * jobs seeds ahead. When
    the consumer stops early, what was started after is discarded and its run dirs
    removed."""
    # fork: workers start at once with the modules already imported, and leave no
    # helper process behind (spawn and forkserver start a resource tracker that
    # outlives the sweep). No World exists between seeds, so nothing of one is inherited.
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"))
    pending: deque[tuple[int, Future[SimResult]]] = deque()
    queued = iter(seeds)

    def submit_next() -> None:
        for seed in queued:
            pending.append((seed, pool.submit(_run_seed, base, seed, out)))
            return

    try:
        for _ in range(2 * jobs):
            submit_next()
        while pending:
            _, future = pending.popleft()
            yield future.result()
            submit_next()
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        for seed, future in pending:  # started before the stop: not part of the answer
            if not future.cancelled():
                shutil.rmtree(seed_run_dir(out, seed), ignore_errors=True)


def sweep(
    base: SimOptions,
    seeds: range,
    out: Path,
    *,
    jobs: int = 1,
    keep_passing: bool = False,
    on_seed: Callable[[SimResult], None] | None = None,
) -> SweepResult:
    """Run `seeds` in order (on `jobs` processes); stop at the first that is not valid."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    results = _in_process(base, seeds, out) if jobs == 1 else _in_workers(base, seeds, out, jobs)
    checked = 0
    last: SimResult | None = None
    try:
        for result in results:
            checked += 1
            last = result
            if on_seed is not None:
                on_seed(result)
            if result.outcome is not Outcome.VALID:
                if not base.report:
                    from harness.report import write_report

                    write_report(result.run_dir)
                return SweepResult(checked=checked, first_failure=result, last=result)
            if not keep_passing:
                shutil.rmtree(result.run_dir, ignore_errors=True)
    finally:
        results.close()  # the workers' clean-up runs now, not at garbage collection
    return SweepResult(checked=checked, first_failure=None, last=last)
