"""The `quorum-chaos` command line: run | replay | check | report | plan | sim | toxiproxy | peer.

Only this module (and the pytest plugin) reads flags and environment variables. Each
subcommand imports what it needs lazily, so `quorum-chaos peer` starts fast.
Exit codes: 0 valid, 1 invalid, 2 unknown or bad usage/input, 3 infrastructure failure.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNKNOWN = 2
EXIT_INFRA = 3

PROFILES = ("mixed", "partitions", "latency", "crash-restart", "pause", "disk", "sequential-start")


def _seed(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("seed must be >= 0")
    return value


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def _seed_range(text: str) -> tuple[int, int]:
    first, sep, last = text.partition("..")
    try:
        low = int(first)
        high = int(last) if sep else low
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A..B, got {text!r}") from None
    if low < 0 or high < low:
        raise argparse.ArgumentTypeError(f"expected 0 <= A <= B, got {text!r}")
    return low, high


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--peers", type=int, default=5, help="number of voting peers (default 5)")
    p.add_argument("--seed", type=_seed, default=None, help="seed (default: random, printed)")
    p.add_argument("--duration", type=_positive(float), default=60.0, help="seconds of faults")
    p.add_argument("--profile", choices=PROFILES, default="mixed", help="fault plan profile")
    p.add_argument("--plan", type=Path, default=None, help="run this plan.json instead")
    p.add_argument("--bug", default=None, help="plant a bug in the peers (see SPEC section 6)")
    p.add_argument("--out", type=Path, default=Path("runs"), help="parent of run dirs")
    p.add_argument("--timing", choices=("fast", "zookeeper"), default="fast")
    p.add_argument("--rate", type=_positive(float), default=50.0, help="client ops/s")
    p.add_argument("--clients", type=int, default=3, help="concurrent clients")
    p.add_argument(
        "--toxiproxy",
        default=os.environ.get("TOXIPROXY_URL"),
        help="use this Toxiproxy server (default: TOXIPROXY_URL, else a real toxiproxy-server "
        "on PATH, else the embedded one)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress display")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quorum-chaos",
        description="Chaos tests of leader election and replication on real processes.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start a cluster, apply a fault plan, check the run")
    _add_run_options(run)

    replay = sub.add_parser("replay", help="run a recorded run dir's plan again")
    replay.add_argument("run_dir", type=Path)
    replay.add_argument("--out", type=Path, default=None, help="parent of the new run dir")
    replay.add_argument("--quiet", action="store_true")
    replay.add_argument("--toxiproxy", default=os.environ.get("TOXIPROXY_URL"))

    check = sub.add_parser("check", help="check a run dir and print the verdict")
    check.add_argument("run_dir", type=Path)
    check.add_argument("--json", action="store_true", help="print verdict.json")

    report = sub.add_parser("report", help="write report.html for a run dir")
    report.add_argument("run_dir", type=Path)

    plan = sub.add_parser("plan", help="print a generated fault plan")
    plan.add_argument("--profile", choices=PROFILES, default="mixed")
    plan.add_argument("--seed", type=_seed, required=True)
    plan.add_argument("--peers", type=int, default=5)
    plan.add_argument("--duration", type=_positive(float), default=60.0)

    sim = sub.add_parser("sim", help="run the peers' cores in the deterministic simulator")
    sim.add_argument("--seed", type=_seed, default=None)
    sim.add_argument("--seeds", type=_seed_range, default=None, help="sweep A..B")
    sim.add_argument("--peers", type=int, default=5)
    sim.add_argument("--duration", type=_positive(float), default=600.0)
    sim.add_argument("--profile", choices=PROFILES, default="mixed")
    sim.add_argument("--bug", default=None)
    sim.add_argument("--out", type=Path, default=Path("runs"))
    sim.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes for --seeds (same output, in seed order; default 1)",
    )

    native = sub.add_parser(
        "native", help="build, show or remove the simulator's compiled core (mypyc)"
    )
    native.add_argument("action", choices=("build", "status", "clean"))
    native.add_argument("--jobs", type=int, default=None, help="C compiler processes")

    sub.add_parser("toxiproxy", help="the embedded Toxiproxy server", add_help=False)
    sub.add_parser("peer", help="run one peer process", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # These two hand their arguments straight to their own parsers.
    passthrough = [a for a in args_list if a != "--debug"]
    if passthrough[:1] == ["toxiproxy"]:
        from faults.toxiproxy.server import main as toxiproxy_main

        return toxiproxy_main(passthrough[1:])
    if passthrough[:1] == ["peer"]:
        from peer.__main__ import main as peer_main

        return peer_main(passthrough[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INFRA
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        print(f"quorum-chaos {args.command}: {exc}", file=sys.stderr)
        return _exit_code_for(exc)


def _exit_code_for(exc: Exception) -> int:
    from faults.errors import FaultError
    from harness.errors import HarnessError
    from harness.runner import RunUsageError

    if isinstance(exc, FaultError | ValueError | FileNotFoundError | RunUsageError):
        return EXIT_UNKNOWN
    if isinstance(exc, HarnessError | OSError):
        return EXIT_INFRA
    return EXIT_INFRA


def _dispatch(args: argparse.Namespace) -> int:
    match args.command:
        case "plan":
            from faults.plan import format_plan, generate

            plan = generate(
                args.profile, seed=args.seed, peers=args.peers, duration_s=args.duration
            )
            print(format_plan(plan))
            return EXIT_VALID
        case "check":
            return _check(args.run_dir, as_json=args.json)
        case "report":
            from harness.report import write_report

            print(write_report(args.run_dir))
            return EXIT_VALID
        case "run":
            from harness.runner import RunOptions, execute_run

            seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
            options = RunOptions(
                peers=args.peers,
                seed=seed,
                duration_s=args.duration,
                profile=args.profile,
                plan_path=args.plan,
                bug=args.bug,
                out_dir=args.out,
                timing=args.timing,
                rate=args.rate,
                clients=args.clients,
                toxiproxy_url=args.toxiproxy,
                progress=not args.quiet,
            )
            return execute_run(options).exit_code
        case "replay":
            from harness.runner import replay_run

            return replay_run(
                args.run_dir,
                out_dir=args.out,
                toxiproxy_url=args.toxiproxy,
                progress=not args.quiet,
            ).exit_code
        case "sim":
            from harness.sim import sim_main

            return sim_main(args)
        case "native":
            from harness.native import native_main

            return native_main(args.action, args.jobs)
        case _:
            raise AssertionError(f"unhandled command {args.command}")


def _check(run_dir: Path, *, as_json: bool) -> int:
    import json

    from harness.runlog import check_run_dir, write_verdict

    if not run_dir.is_dir():
        print(f"quorum-chaos check: {run_dir} is not a directory", file=sys.stderr)
        return EXIT_UNKNOWN
    verdict = check_run_dir(run_dir)
    write_verdict(run_dir, verdict)
    data = verdict.to_json()
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(format_verdict(data))
    return {"valid": EXIT_VALID, "invalid": EXIT_INVALID}.get(data["verdict"], EXIT_UNKNOWN)


def format_verdict(data: dict[str, object]) -> str:
    """One screen for people: the verdict, each violation with its evidence, the notes."""
    lines = [f"verdict: {data['verdict']}"]
    why = data.get("why")
    if why:
        lines.append(f"why: {why}")
    violations = data.get("violations") or []
    assert isinstance(violations, list)
    for v in violations:
        lines.append(f"  VIOLATION {v.get('property')}: {v.get('message')}")
        for ev in (v.get("evidence") or [])[:6]:
            lines.append(f"      at {ev.get('where')}: {ev.get('kind')}")
    notes = data.get("notes") or []
    assert isinstance(notes, list)
    for note in notes[:10]:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
