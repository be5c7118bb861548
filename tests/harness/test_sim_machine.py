"""A hypothesis state machine over the simulator: faults are rules, the checker's safety
properties are invariants, a leader after heal is the liveness check. A failure
shrinks to a minimal fault sequence (printed by hypothesis as the rule calls)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from faults.plan import Crash, Heal, OneWay, Partition, Pause, Plan, Restart, Resume, Sym
from faults.topology import Shape
from harness.checker import Property
from harness.runlog import check_run_dir
from harness.sim import World, WorldSpec, simulated_config
from harness.sim.run import begin
from peer.domain import FAST

SAFETY = frozenset(Property) - {Property.MAJORITY_SURVIVAL, Property.MINORITY_SILENCE}
SIDS = (1, 2, 3)
MS = 1_000_000


class SimMachine(RuleBasedStateMachine):
    """Three peers; each rule applies one fault (logged like a nemesis step) and lets
    simulated time pass."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="sim-machine-"))
        self.world: World | None = None
        self.step = 0

    @initialize(seed=st.integers(min_value=0, max_value=2**16))
    def boot(self, seed: int) -> None:
        config = simulated_config(SIDS, FAST)
        run_dir = self.tmp / "run"
        run_dir.mkdir()
        (run_dir / "cluster.json").write_text(json.dumps(config.to_json()))
        self.world = World(WorldSpec(seed=seed, config=config), run_dir, self.tmp / "data")
        plan = Plan(
            profile="machine",
            seed=seed,
            peers=SIDS,
            duration_ms=0,
            quiet_ms=0,
            initially_running=SIDS,
            steps=(),
        )
        begin(self.world, plan, seed=seed)
        self._wait(2_000)

    def _wait(self, ms: int) -> None:
        assert self.world is not None
        self.world.sched.run_until(self.world.sched.now + ms * MS)

    def _apply(self, fault: object, wait_ms: int) -> None:
        assert self.world is not None
        self.world.apply(fault, step=self.step)  # type: ignore[arg-type]
        self.step += 1
        self._wait(wait_ms)

    def _up(self) -> list[int]:
        assert self.world is not None
        return [s for s in SIDS if self.world.running(s)]

    @rule(shape=st.sampled_from([Shape.HALVES, Shape.ISOLATE_LEADER, Shape.BRIDGE]))
    def partition(self, shape: Shape) -> None:
        self._apply(Partition(shape=shape), 1_500)

    @rule(src=st.sampled_from(SIDS), dst=st.sampled_from(SIDS))
    def one_way(self, src: int, dst: int) -> None:
        self._apply(OneWay(src=src, dst=dst), 1_000)

    @rule()
    def heal(self) -> None:
        self._apply(Heal(), 1_000)

    @precondition(lambda self: len(self._up()) == len(SIDS))
    @rule(who=st.sampled_from([Sym.LEADER, Sym.FOLLOWER, 1, 2, 3]))
    def crash(self, who: Sym | int) -> None:
        self._apply(Crash(target=who), 1_000)

    @rule()
    def restart(self) -> None:
        self._apply(Restart(target=Sym.ALL), 1_000)

    @precondition(lambda self: self.world is not None and not self.world.net.paused)
    @rule(who=st.sampled_from([Sym.LEADER, Sym.FOLLOWER]))
    def pause(self, who: Sym) -> None:
        self._apply(Pause(target=who), 1_500)

    @rule()
    def resume(self) -> None:
        self._apply(Resume(target=Sym.ALL), 500)

    @invariant()
    def safe(self) -> None:
        if self.world is None:
            return
        self.world.flush()
        verdict = check_run_dir(self.world.run_dir)
        broken = [v for v in verdict.violations if v.prop in SAFETY]
        assert not broken, [str(v) for v in broken]

    def teardown(self) -> None:
        try:
            if self.world is not None:
                # liveness: heal everything, restart everyone, a leader must follow
                for fault in (Heal(), Resume(target=Sym.ALL), Restart(target=Sym.ALL)):
                    self.world.apply(fault, step=self.step)
                    self.step += 1
                self._wait(8_000)
                leader = self.world.leader()
                self.world.flush()
                assert leader is not None, "no leader 8 s after heal"
        finally:
            if self.world is not None:
                self.world.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


SimMachine.TestCase.settings = settings(
    max_examples=3,
    stateful_step_count=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSimMachine = SimMachine.TestCase


class SlowSimMachine(SimMachine):
    pass


SlowSimMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSlowSimMachine = pytest.mark.slow(SlowSimMachine.TestCase)
