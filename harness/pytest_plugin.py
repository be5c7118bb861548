"""The quorum-chaos pytest plugin: `--chaos-*` options, the `chaos` marker, fixtures, and
the failure report section with the reproduction commands.

This module owns how a pytest run talks to the harness: it resolves per-test settings
(marker > CLI > env > ini > default, as pytest-timeout does), derives each test's seed,
gives every test its own run dir (unique per xdist worker), starts and reaps clusters
through `harness.cluster`, binds a nemesis to them, runs the checker, and on failure
adds a "quorum-chaos" section with the seed, the plan summary, the violations, the run
dir and the exact commands that reproduce it. It must not import anything but pytest
and the stdlib at module level: it is loaded (entry point `pytest11`) into every pytest
run of the environment, and unrelated runs must pay nothing for it.

Example (a whole chaos test):

    @pytest.mark.chaos(peers=3, duration=10, profile="partitions")
    def test_partitions(chaos_cluster, chaos_nemesis, chaos_check):
        cluster = chaos_cluster()
        chaos_nemesis().run()
        chaos_check().assert_valid()
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shlex
import shutil
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from faults.nemesis import Nemesis
    from faults.plan import Plan
    from harness.checker import Verdict
    from harness.cluster import Cluster, ClusterSpec

ENV_PREFIX = "QUORUM_CHAOS_"
MARKER_KEYS = frozenset({"peers", "duration", "profile", "bug", "seed", "observers", "timing"})
RUN_ID_PREFIX = "chaos-run-"
SEED_LIMIT = 1 << 31
_FROM_SETTINGS = "(from settings)"  # default of chaos_cluster(bug=...): the test's bug


# --- settings ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Option:
    """One setting with its CLI, ini and environment twins."""

    name: str  # dest and ini name suffix: chaos_<name>
    kind: Callable[[str], Any]
    default: Any
    help: str
    env: str = ""  # extra environment name besides QUORUM_CHAOS_<NAME>

    @property
    def flag(self) -> str:
        return "--chaos-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "chaos_" + self.name

    @property
    def envs(self) -> tuple[str, ...]:
        own = ENV_PREFIX + self.name.upper()
        return (own, self.env) if self.env else (own,)


def _nonneg_int(text: str) -> int:
    value = int(str(text).strip(), 0)
    if value < 0:
        raise ValueError(f"expected an integer >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = int(str(text).strip(), 0)
    if value < 1:
        raise ValueError(f"expected an integer >= 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = float(str(text).strip())
    if not value > 0:
        raise ValueError(f"expected a positive number, got {text!r}")
    return value


def _flag(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean (1/0, true/false, yes/no), got {text!r}")


def _text(text: str) -> str:
    return str(text).strip()


OPTIONS: tuple[_Option, ...] = (
    _Option(name="seed", kind=_nonneg_int, default=None, help="base seed (default: random)"),
    _Option(
        name="runs",
        kind=_positive_int,
        default=1,
        help="repeat each chaos test N times with seeds derived from the base seed",
    ),
    _Option(name="duration", kind=_positive_float, default=10.0, help="seconds of faults"),
    _Option(name="peers", kind=_positive_int, default=3, help="voting peers per cluster"),
    _Option(name="keep", kind=_flag, default=False, help="keep run dirs of passing tests too"),
    _Option(
        name="replay",
        kind=_text,
        default=None,
        help="take seed, plan and peers from this recorded run dir",
    ),
    _Option(
        name="toxiproxy",
        kind=_text,
        default=None,
        help="use this Toxiproxy server (URL) instead of the embedded one",
        env="TOXIPROXY_URL",
    ),
    _Option(
        name="dir",
        kind=_text,
        default=None,
        help="parent of run dirs (default: under pytest's basetemp)",
    ),
)
_BY_NAME = {option.name: option for option in OPTIONS}


@dataclass(frozen=True, slots=True)
class Resolved:
    """A setting's value and where it came from (marker, cli, env, ini, default)."""

    value: Any
    source: str


def _session_value(config: pytest.Config, option: _Option) -> Resolved:
    """CLI > env > ini > default for one option (the marker is per test, see below)."""
    raw = config.getoption("chaos_" + option.name)
    if raw is not None and raw is not False:
        return Resolved(raw, "cli")
    for name in option.envs:
        text = os.environ.get(name)
        if text is not None and text.strip() != "":
            return Resolved(_convert(option, text, f"environment variable {name}"), "env")
    ini = config.getini(option.ini)
    if ini not in ("", None, []):
        return Resolved(_convert(option, str(ini), f"ini option {option.ini}"), "ini")
    return Resolved(option.default, "default")


def _convert(option: _Option, text: str, where: str) -> Any:
    try:
        return option.kind(text)
    except ValueError as exc:
        raise pytest.UsageError(f"quorum-chaos: bad {where}={text!r}: {exc}") from None


def _cli_type(option: _Option) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return option.kind(text)
        except ValueError as exc:
            # argparse turns ArgumentTypeError into "argument --chaos-x: <message>"
            import argparse

            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


@dataclass(frozen=True, slots=True, kw_only=True)
class ChaosSettings:
    """Per-test settings after resolution; `sources` says where each came from."""

    seed: int
    peers: int
    duration: float
    profile: str
    bug: str | None
    observers: int
    timing: str
    keep: bool
    toxiproxy: str | None
    replay: Path | None
    sources: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _TestState:
    """What the plugin knows about one test, for teardown and the report section."""

    settings: ChaosSettings
    run_dir: Path
    clusters: list[Cluster] = field(default_factory=list)
    plan: Plan | None = None
    verdict: Verdict | None = None
    nemeses: list[Nemesis] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # What run.json records besides the plan, known once the first cluster is made.
    run_inputs: dict[str, Any] | None = None


_STATE = pytest.StashKey[_TestState]()
_FAILED = pytest.StashKey[bool]()
_BASE_SEED = pytest.StashKey[Resolved]()


# --- hooks ------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("quorum-chaos", "chaos tests on real processes (quorum-chaos)")
    for option in OPTIONS:
        envs = " or ".join(option.envs)
        if option.kind is _flag:
            group.addoption(
                option.flag,
                action="store_true",
                default=None,
                dest="chaos_" + option.name,
                help=f"{option.help} (env {envs}, ini {option.ini})",
            )
            parser.addini(option.ini, f"{option.help} (quorum-chaos)", type="bool", default=None)
        else:
            group.addoption(
                option.flag,
                type=_cli_type(option),
                default=None,
                dest="chaos_" + option.name,
                metavar=option.name.upper(),
                help=f"{option.help} (env {envs}, ini {option.ini})",
            )
            parser.addini(option.ini, f"{option.help} (quorum-chaos)", default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "chaos(peers=3, duration=10, profile='mixed', bug=None, seed=None, observers=0, "
        "timing='fast'): per-test quorum-chaos settings (they win over --chaos-* options)",
    )
    # Validate session settings now, so a bad env or ini value is a usage error at once.
    for option in OPTIONS:
        _session_value(config, option)
    base = _session_value(config, _BY_NAME["seed"])
    if base.value is None:
        workerinput = getattr(config, "workerinput", None)
        if workerinput is not None and "quorum_chaos_seed" in workerinput:
            base = Resolved(int(workerinput["quorum_chaos_seed"]), "random")
        else:
            base = Resolved(random.SystemRandom().randrange(SEED_LIMIT), "random")
    config.stash[_BASE_SEED] = base


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist (controller side): every worker gets the same random base seed, so a
    test's derived seed does not depend on which worker ran it."""
    node.workerinput["quorum_chaos_seed"] = node.config.stash[_BASE_SEED].value


def pytest_report_header(config: pytest.Config) -> str:
    base = config.stash[_BASE_SEED]
    runs = _session_value(config, _BY_NAME["runs"]).value
    return f"quorum-chaos: base seed {base.value} ({base.source}), runs {runs}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    runs = _session_value(metafunc.config, _BY_NAME["runs"]).value
    if runs > 1 and "chaos_run_index" in metafunc.fixturenames:
        metafunc.parametrize(
            "chaos_run_index",
            range(runs),
            indirect=True,
            ids=[f"{RUN_ID_PREFIX}{i}" for i in range(runs)],
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    state = item.stash.get(_STATE, None)
    if state is None:
        return report
    if report.failed:
        item.stash[_FAILED] = True
        if report.when in ("setup", "call"):
            report.sections.append(("quorum-chaos", _failure_section(item, state)))
    return report


# --- seeds ------------------------------------------------------------------------------


def derive_seed(base: int, nodeid: str, run_index: int) -> int:
    """A stable per-test seed: the same (base, test, run) gives the same seed on every
    machine and worker (blake2b, not hash(), which is salted per process)."""
    digest = hashlib.blake2b(f"{base}:{nodeid}:{run_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SEED_LIMIT


def _base_nodeid(item: pytest.Item) -> str:
    """The node id without our `chaos-run-N` parameter id, as it exists when runs=1."""
    nodeid = item.nodeid
    match = re.search(r"\[(.*)\]$", nodeid)
    if match is None:
        return nodeid
    inner = re.sub(rf"(^|-){re.escape(RUN_ID_PREFIX)}\d+(?=-|$)", "", match.group(1)).strip("-")
    head = nodeid[: match.start()]
    return f"{head}[{inner}]" if inner else head


def _marker_kwargs(item: pytest.Item) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    # closest marker last, so a function's marker wins over its class's or module's
    for marker in reversed(list(item.iter_markers("chaos"))):
        if marker.args:
            pytest.fail(
                f"@pytest.mark.chaos takes keyword arguments only, got {marker.args!r}",
                pytrace=False,
            )
        unknown = set(marker.kwargs) - MARKER_KEYS
        if unknown:
            pytest.fail(
                f"@pytest.mark.chaos: unknown setting(s) {sorted(unknown)}; "
                f"known: {sorted(MARKER_KEYS)}",
                pytrace=False,
            )
        merged.update(marker.kwargs)
    return merged


def _check_marker_value(key: str, value: Any) -> Any:
    def bad(why: str) -> BaseException:
        return pytest.fail.Exception(f"@pytest.mark.chaos({key}={value!r}): {why}", pytrace=False)

    match key:
        case "peers":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad("expected an integer >= 1")
        case "observers" | "seed":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise bad("expected an integer >= 0")
        case "duration":
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise bad("expected a positive number of seconds")
            value = float(value)
        case "profile" | "timing":
            if not isinstance(value, str):
                raise bad("expected a string")
        case "bug":
            if value is not None and not isinstance(value, str):
                raise bad("expected a bug name (string) or None")
    return value


def _replay_source(path: Path) -> tuple[int | None, Plan, str | None]:
    """(seed, plan, bug) recorded in a run dir, for --chaos-replay."""
    from faults.planfile import load_plan
    from harness.runner import PLUGIN_OPTIONS_JSON, RUN_JSON, RunUsageError, recorded_options

    if not (path / "plan.json").is_file():
        pytest.fail(f"--chaos-replay {path}: no plan.json in that run dir", pytrace=False)
    plan = load_plan(path / "plan.json")
    seed_file = path / "seed"
    seed = int(seed_file.read_text().strip()) if seed_file.is_file() else plan.seed
    bug = None
    if any((path / name).is_file() for name in (RUN_JSON, PLUGIN_OPTIONS_JSON)):
        try:
            bug = recorded_options(path).get("bug")
        except RunUsageError as exc:
            pytest.fail(f"--chaos-replay {path}: {exc}", pytrace=False)
    return seed, plan, bug


def _settings(item: pytest.Item, run_index: int) -> tuple[ChaosSettings, Plan | None]:
    config = item.config
    marker = _marker_kwargs(item)
    sources: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name in ("peers", "duration", "keep", "toxiproxy", "replay"):
        resolved = _session_value(config, _BY_NAME[name])
        values[name], sources[name] = resolved.value, resolved.source
    for key, default in (("profile", "mixed"), ("bug", None), ("observers", 0), ("timing", "fast")):
        values[key], sources[key] = default, "default"
    for key, value in marker.items():
        if key == "seed":
            continue
        values[key], sources[key] = _check_marker_value(key, value), "marker"

    base = config.stash[_BASE_SEED]
    if "seed" in marker:
        seed, sources["seed"] = _check_marker_value("seed", marker["seed"]), "marker"
        if run_index:
            seed = derive_seed(seed, _base_nodeid(item), run_index)
    elif base.source != "random":
        # An explicit seed is the test's own seed (so `--chaos-seed N` reproduces the
        # report's line exactly); further runs derive from it.
        seed = (
            base.value if run_index == 0 else derive_seed(base.value, _base_nodeid(item), run_index)
        )
        sources["seed"] = base.source
    else:
        seed, sources["seed"] = derive_seed(base.value, _base_nodeid(item), run_index), "random"

    plan: Plan | None = None
    replay = Path(values["replay"]) if values["replay"] else None
    if replay is not None:
        recorded_seed, plan, bug = _replay_source(replay)
        if recorded_seed is not None and "seed" not in marker:
            seed, sources["seed"] = recorded_seed, "replay"
        if sources["peers"] != "marker":
            values["peers"], sources["peers"] = len(plan.peers), "replay"
        if bug is not None and sources["bug"] != "marker":
            values["bug"], sources["bug"] = bug, "replay"
    settings = ChaosSettings(
        seed=seed,
        peers=values["peers"],
        duration=values["duration"],
        profile=values["profile"],
        bug=values["bug"],
        observers=values["observers"],
        timing=values["timing"],
        keep=bool(values["keep"]),
        toxiproxy=values["toxiproxy"],
        replay=replay,
        sources=sources,
    )
    return settings, plan


# --- run dirs ---------------------------------------------------------------------------


def _worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _safe_name(nodeid: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1])
    return name[:80].strip("_") or "test"


def _base_dir(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = _session_value(config, _BY_NAME["dir"]).value
    if chosen:
        return Path(chosen).resolve() / _worker_id()
    # basetemp is already per xdist worker (pytest-N/popen-gwK)
    return tmp_path_factory.getbasetemp() / "chaos"


def _new_run_dir(base: Path, item: pytest.Item, seed: int) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    stem = f"{_safe_name(item.nodeid)}-seed{seed}"
    for n in range(1000):
        candidate = base / (stem if n == 0 else f"{stem}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise pytest.UsageError(f"quorum-chaos: cannot make a run dir under {base}")


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def chaos_run_index(request: pytest.FixtureRequest) -> int:
    """Which repetition of the test this is (0 unless --chaos-runs N > 1)."""
    index: int = getattr(request, "param", 0)
    return index


@pytest.fixture
def _chaos_state(
    request: pytest.FixtureRequest,
    chaos_run_index: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[_TestState]:
    item = request.node
    settings, plan = _settings(item, chaos_run_index)
    run_dir = _new_run_dir(_base_dir(request.config, tmp_path_factory), item, settings.seed)
    (run_dir / "seed").write_text(f"{settings.seed}\n", "utf-8")
    state = _TestState(settings=settings, run_dir=run_dir, plan=plan)
    item.stash[_STATE] = state
    yield state
    problems = _close_all(state)
    failed = item.stash.get(_FAILED, False)
    if not failed and not settings.keep and not problems:
        shutil.rmtree(run_dir, ignore_errors=True)
    if problems:
        pytest.fail("quorum-chaos teardown: " + "; ".join(problems), pytrace=False)


def _close_all(state: _TestState) -> list[str]:
    problems: list[str] = []
    for nemesis in state.nemeses:
        heal = getattr(nemesis, "heal", None)
        if heal is not None:
            try:
                heal()
            except Exception as exc:  # the cluster may already be closed; reap anyway
                del exc
    for cluster in state.clusters:
        try:
            cluster.close(reason="test finished")
        except Exception as exc:
            problems.append(f"closing cluster in {cluster.run_dir}: {exc}")
    return problems


@pytest.fixture
def chaos_settings(_chaos_state: _TestState) -> ChaosSettings:
    """The resolved settings of this test (marker > CLI > env > ini > default)."""
    return _chaos_state.settings


@pytest.fixture
def chaos_seed(_chaos_state: _TestState) -> int:
    """This test's seed: printed on failure, and `--chaos-seed N` gives it back."""
    return _chaos_state.settings.seed


@pytest.fixture
def chaos_run_dir(_chaos_state: _TestState) -> Path:
    """This test's run dir: kept when the test fails (or with --chaos-keep)."""
    return _chaos_state.run_dir


class ClusterFactory:
    """`chaos_cluster(peers=None, *, bug=..., start=True)`: a started `Cluster` in the
    test's run dir (a second cluster gets `cluster-2/` inside it), reaped at teardown."""

    def __init__(self, state: _TestState) -> None:
        self._state = state

    def __call__(
        self,
        peers: int | None = None,
        *,
        observers: int | None = None,
        bug: str | None = _FROM_SETTINGS,
        timing: str | None = None,
        start: bool = True,
        wait_for_leader: float | None = 10.0,
    ) -> Cluster:
        from harness.cluster import Cluster, ClusterSpec
        from peer.domain import TIMING_PROFILES, Bug

        s = self._state.settings
        bug_name = s.bug if bug == _FROM_SETTINGS else bug
        timing_name = timing or s.timing
        if timing_name not in TIMING_PROFILES:
            raise ValueError(
                f"chaos_cluster: unknown timing {timing_name!r} (known: {sorted(TIMING_PROFILES)})"
            )
        try:
            planted = Bug(bug_name) if bug_name else None
        except ValueError:
            known = ", ".join(b.value for b in Bug)
            raise ValueError(f"chaos_cluster: unknown bug {bug_name!r} (known: {known})") from None
        spec = ClusterSpec(
            peers=s.peers if peers is None else peers,
            observers=s.observers if observers is None else observers,
            timing=TIMING_PROFILES[timing_name],
            bug=planted,
            toxiproxy_url=s.toxiproxy,
            seed=s.seed,
        )
        n = len(self._state.clusters)
        run_dir = self._state.run_dir if n == 0 else self._state.run_dir / f"cluster-{n + 1}"
        run_dir.mkdir(parents=True, exist_ok=True)
        if n == 0:
            _record_inputs(self._state, spec, bug=bug_name, timing=timing_name)
        cluster = Cluster(spec, run_dir)
        self._state.clusters.append(cluster)
        if start:
            cluster.start()
            if wait_for_leader is not None:
                cluster.wait_for_leader(wait_for_leader)
        return cluster

    @property
    def current(self) -> Cluster:
        """The first cluster the test started."""
        if not self._state.clusters:
            raise LookupError("chaos_cluster: no cluster started yet in this test")
        return self._state.clusters[0]


def _record_inputs(state: _TestState, spec: ClusterSpec, *, bug: str | None, timing: str) -> None:
    """Before the first cluster starts: `run.json` (the schema `quorum-chaos run` writes,
    so `quorum-chaos replay` reads either) and, unless one is there, a `plan.json` with
    no faults over the test's duration: what the test runs until it makes a nemesis,
    whose plan then replaces it (and is recorded in run.json)."""
    from faults.plan import Plan
    from faults.planfile import save_plan

    s = state.settings
    state.run_inputs = {
        "peers": spec.peers,
        "seed": s.seed,
        "duration_s": s.duration,
        "profile": s.profile,
        "plan_path": s.replay / "plan.json" if s.replay is not None else None,
        "bug": bug,
        "out_dir": state.run_dir.parent,
        "timing": timing,
        "toxiproxy_url": s.toxiproxy,
        "progress": False,
        "observers": spec.observers,
    }
    plan_path = state.run_dir / "plan.json"
    if plan_path.is_file():
        _write_run_json(state, None)
        return
    sids = tuple(range(1, spec.peers + 1))
    plan = Plan(
        generator_version=None,
        profile="no-faults",
        seed=s.seed,
        peers=sids,
        duration_ms=max(1, round(s.duration * 1000)),
        quiet_ms=0,
        initially_running=sids,
        steps=(),
    )
    save_plan(plan, plan_path)
    _write_run_json(state, plan)


def _write_run_json(state: _TestState, plan: Plan | None) -> None:
    """(Re)write the test's run.json with `plan` (None: the plan.json in the run dir)."""
    from faults.planfile import load_plan
    from harness.runner import run_record, write_run_json
    from peer.domain import TIMING_PROFILES

    inputs = state.run_inputs
    if inputs is None:  # no cluster yet: run.json is written when the first one is made
        return
    if plan is None:
        plan = load_plan(state.run_dir / "plan.json")
    record = run_record(
        source="pytest",
        options=inputs,
        plan=plan,
        observers=inputs["observers"],
        timing_name=inputs["timing"],
        timing=TIMING_PROFILES[inputs["timing"]],
        workload=None,  # the test drives its own workload, if any
        replay_of=state.settings.replay,
        started_at=state.started_at,
    )
    write_run_json(state.run_dir, record)


@pytest.fixture
def chaos_cluster(_chaos_state: _TestState) -> ClusterFactory:
    """Factory of started clusters (see `ClusterFactory`)."""
    return ClusterFactory(_chaos_state)


class NemesisFactory:
    """`chaos_nemesis(plan=None, *, cluster=None, workload=None) -> Nemesis`: binds a
    nemesis to the test's cluster. Without a plan it generates one from the test's
    profile, seed, peers and duration (or takes the --chaos-replay run's plan); the
    plan is saved as `plan.json` in the run dir before anything runs. `workload` is a switch such as
    `Workload.set_enabled`, for the plan's workload steps."""

    def __init__(self, state: _TestState, clusters: ClusterFactory) -> None:
        self._state = state
        self._clusters = clusters

    def plan(self, peers: int | None = None) -> Plan:
        """The plan this test runs (generated once, then the same object)."""
        from faults.plan import generate

        if self._state.plan is None:
            s = self._state.settings
            self._state.plan = generate(
                s.profile, seed=s.seed, peers=peers or s.peers, duration_s=s.duration
            )
        return self._state.plan

    def __call__(
        self,
        plan: Plan | None = None,
        *,
        cluster: Cluster | None = None,
        workload: Callable[[bool], None] | None = None,
    ) -> Nemesis:
        from faults.nemesis import Nemesis
        from faults.planfile import save_plan

        target = cluster if cluster is not None else self._clusters.current
        if plan is not None:
            self._state.plan = plan
        chosen = self.plan(target.spec.peers)
        save_plan(chosen, target.run_dir / "plan.json")
        if target.run_dir == self._state.run_dir:
            _write_run_json(self._state, chosen)
        nemesis = Nemesis(target, chosen, seed=self._state.settings.seed, workload=workload)
        self._state.nemeses.append(nemesis)
        return nemesis


@pytest.fixture
def chaos_nemesis(_chaos_state: _TestState, chaos_cluster: ClusterFactory) -> NemesisFactory:
    """Factory of a nemesis bound to the test's cluster (see `NemesisFactory`)."""
    return NemesisFactory(_chaos_state, chaos_cluster)


class CheckResult:
    """A verdict with a readable `assert_valid()` / `assert_invalid(property)`."""

    def __init__(self, verdict: Verdict, run_dir: Path) -> None:
        self.verdict = verdict
        self.run_dir = run_dir

    @property
    def outcome(self) -> str:
        return str(self.verdict.outcome.value)

    @property
    def properties(self) -> set[str]:
        return {str(p.value) for p in self.verdict.properties_violated()}

    def describe(self) -> str:
        from harness.cli import format_verdict

        return f"run dir: {self.run_dir}\n" + format_verdict(self.verdict.to_json())

    def assert_valid(self) -> None:
        if self.outcome != "valid":
            raise AssertionError(f"chaos run is {self.outcome}, expected valid\n{self.describe()}")

    def assert_invalid(self, prop: str | None = None) -> None:
        if self.outcome != "invalid" or (prop is not None and prop not in self.properties):
            want = "invalid" + (f" with {prop}" if prop else "")
            raise AssertionError(f"chaos run is {self.outcome}, expected {want}\n{self.describe()}")


class Checker:
    """`chaos_check(run_dir=None, *, close=True) -> CheckResult`: ends the run (closing
    the test's clusters, so every log is complete), checks the run dir, writes
    verdict.json and remembers the verdict for the failure report."""

    def __init__(self, state: _TestState) -> None:
        self._state = state

    def __call__(self, run_dir: Path | None = None, *, close: bool = True) -> CheckResult:
        if close:
            for cluster in self._state.clusters:
                cluster.close(reason="checking")
        target = run_dir if run_dir is not None else self._state.run_dir
        verdict = _check_and_record(target)
        if run_dir is None or run_dir == self._state.run_dir:
            self._state.verdict = verdict
        return CheckResult(verdict, target)


def _check_and_record(run_dir: Path) -> Verdict:
    """Check a run dir and leave `verdict.json` and `report.html` in it, as a CLI run
    does (the report is best effort: the verdict stands without its picture)."""
    from harness.report import write_report
    from harness.runlog import check_run_dir, write_verdict

    verdict = check_run_dir(run_dir)
    write_verdict(run_dir, verdict)
    try:
        write_report(run_dir)
    except Exception as exc:
        import warnings

        warnings.warn(f"quorum-chaos: report.html not written in {run_dir}: {exc}", stacklevel=2)
    return verdict


@pytest.fixture
def chaos_check(_chaos_state: _TestState) -> Checker:
    """Run the checker on the test's run dir (see `Checker`)."""
    return Checker(_chaos_state)


# --- the failure section --------------------------------------------------------------


def _plan_summary(plan: Plan | None) -> list[str]:
    if plan is None:
        return ["plan: none (no nemesis plan in this test)"]
    kinds: dict[str, int] = {}
    for step in plan.steps:
        name = type(step.fault).__name__
        kinds[name] = kinds.get(name, 0) + 1
    counted = ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items())) or "no steps"
    lines = [
        f"plan: profile {plan.profile}, peers {len(plan.peers)}, {len(plan.steps)} steps "
        f"over {plan.duration_ms / 1000:.1f} s ({counted})"
    ]
    for step in plan.steps[:12]:
        lines.append(f"  at {step.at_ms / 1000:7.2f} s  {step.fault}")
    if len(plan.steps) > 12:
        lines.append(f"  ... {len(plan.steps) - 12} more in plan.json")
    return lines


def _failure_section(item: pytest.Item, state: _TestState) -> str:
    s = state.settings
    lines = [f"seed: {s.seed} ({s.sources.get('seed', '?')})"]
    lines.append(
        f"settings: peers {s.peers}, duration {s.duration:g} s, profile {s.profile}, "
        f"bug {s.bug or 'none'}, timing {s.timing}"
    )
    lines += _plan_summary(state.plan)
    verdict = state.verdict
    if verdict is None and state.clusters:
        # The test failed before checking: end the run now (teardown would anyway) and
        # check it, so the section shows what the logs say.
        try:
            for cluster in state.clusters:
                cluster.close(reason="test failed")
            verdict = _check_and_record(state.run_dir)
            state.verdict = verdict
        except Exception as exc:
            lines.append(f"checker: could not check the run dir: {exc}")
    if verdict is not None:
        lines.append(f"verdict: {verdict.outcome.value}")
        for why in verdict.why:
            lines.append(f"  why: {why}")
        for violation in verdict.violations:
            lines.append(f"  VIOLATION {violation.prop.value}: {violation.message}")
    lines.append(f"run dir: {state.run_dir} (kept)")
    lines.append("reproduce:")
    lines.append("  " + _pytest_line(item, s))
    lines.append(f"  quorum-chaos replay {shlex.quote(str(state.run_dir))}")
    return "\n".join(lines)


def _pytest_line(item: pytest.Item, s: ChaosSettings) -> str:
    words = ["pytest", _base_nodeid(item), "--chaos-seed", str(s.seed)]
    for name in ("peers", "duration"):
        if s.sources.get(name) in ("cli", "env", "ini", "replay"):
            words += [f"--chaos-{name}", f"{getattr(s, name):g}"]
    if s.toxiproxy:
        words += ["--chaos-toxiproxy", s.toxiproxy]
    return shlex.join(words)
