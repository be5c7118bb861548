"""Hypothesis-driven chaos on real processes: fault plans drawn from
`faults.strategies.plans` run against 3 correct peers must give a valid verdict. When
one does not, hypothesis shrinks the plan (fewer, simpler, earlier steps) and prints
the minimal one; the assertion message names the run dir of the failing run.

The default budget is tiny (2 short plans: each costs a cluster start, the plan and a
5 s quiet period); the bigger search is `@pytest.mark.slow`."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faults.plan import Plan, format_plan
from faults.strategies import plans
from harness.seeds import SeedRecord, replay

pytestmark = pytest.mark.integration
_RUNS = itertools.count()
# The parent of both tests' settings (hypothesis copies what a child does not set).
_SETTINGS = settings(
    deadline=None,
    database=None,  # a replayed example costs seconds; do not re-run old ones blindly
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same plans every run: the default suite stays predictable
)


def _run(plan: Plan, base: Path, seed: int) -> None:
    record = SeedRecord(
        name="hypothesis",
        description="",
        seed=seed,
        peers=len(plan.peers),
        bug=None,
        timing="fast",
        plan=plan,
        expect="valid",
        properties=(),
    )
    run_dir = base / f"example-{next(_RUNS)}"
    verdict = replay(record, run_dir)
    assert verdict.outcome.value == "valid", (
        f"run dir {run_dir}\nplan:\n{format_plan(plan)}\nverdict: {verdict.to_json()}"
    )


@settings(_SETTINGS, max_examples=2)
@given(plan=plans(peers=3, max_steps=2), seed=st.integers(0, 2**31 - 1))
def test_small_plans_keep_correct_peers_valid(
    plan: Plan, seed: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _run(plan, tmp_path_factory.mktemp("hypothesis"), seed)


@pytest.mark.slow
@settings(_SETTINGS, max_examples=15)
@given(plan=plans(peers=3, max_steps=6), seed=st.integers(0, 2**31 - 1))
def test_plans_keep_correct_peers_valid(
    plan: Plan, seed: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _run(plan, tmp_path_factory.mktemp("hypothesis"), seed)
