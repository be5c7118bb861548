"""Election speed and footprint of the peer on real processes (issue 2's "what must show").

For each cluster size (3, 5, 7 voters, fast timing profile: 200 ms finalize wait) it
starts the peers directly on 127.0.0.1 (each dials the others' own ports: no proxy,
so the figures are the peer's) and prints:

- spawn -> first `established` event (the first leader): from the instant before the
  first peer is spawned to the first leader's `established` event, over --starts fresh
  clusters, with the split: last peer's `boot` (interpreter and imports done), first
  `decided` (the election itself is at least the 200 ms finalize wait);
- SIGKILL of the leader -> the next `established` event of another peer (median, p95,
  worst over --kills kills; the killed peer is restarted and rejoins between kills);
- SIGSTOP of the leader -> the next `established` event of another peer (the stopped
  peer is then resumed and rejoins);
- the peers' RSS (psutil) at the end of the run.

Times come from the peers' own event logs (`t` = CLOCK_MONOTONIC ns, the clock this
script reads before it sends a signal), so polling adds nothing to them. Run dirs go
to a temporary directory. Peers start as the launcher starts them (`harness.cluster`:
its interpreter flags, PYTHONPATH, warm bytecode cache); `--peer-flags` replaces the
flags, e.g. `--peer-flags=` to compare with a plain `python -m peer`. The load average
is printed: two shared cores make every figure noisy, so repeat and compare runs made
side by side.

    python benchmarks/election.py [--peers 3 5 7] [--starts 5] [--kills 20] [--stops 5]
        [--peer-flags "-S"]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tests.peer.test_integration_support as support
from harness.cluster import PEER_PYTHON_FLAGS, peer_argv, peer_env, precompile_peer
from peer.domain import FAST, Bug
from tests.peer.test_integration_support import DirectPeers

LEADER_TIMEOUT_S = 30.0
MIB = 1024 * 1024


class Tail:
    """New `established` events in the peers' logs, read incrementally."""

    def __init__(self, peers: DirectPeers) -> None:
        self.peers = peers
        self.offsets = {sid: 0 for sid in peers.sids}

    def skip(self) -> None:
        """Forget everything logged so far."""
        for sid in self.peers.sids:
            path = self.peers.log_path(sid)
            self.offsets[sid] = path.stat().st_size if path.exists() else 0

    def established(self) -> list[tuple[int, int, int]]:
        """(t, sid, epoch) of every established event logged since the last call."""
        found: list[tuple[int, int, int]] = []
        for sid in self.peers.sids:
            path = self.peers.log_path(sid)
            if not path.exists():
                continue
            with path.open("rb") as handle:
                handle.seek(self.offsets[sid])
                data = handle.read()
            complete = data.rfind(b"\n") + 1  # leave a line being written for next time
            self.offsets[sid] += complete
            for raw in data[:complete].splitlines():
                if b'"established"' not in raw:
                    continue
                record = json.loads(raw)
                if record.get("kind") == "established":
                    found.append((int(record["t"]), sid, int(record["epoch"])))
        return found

    def wait(self, after_ns: int, exclude: int | None, what: str) -> tuple[int, int]:
        """(t, sid) of the first established event after `after_ns` by a peer other
        than `exclude`."""
        deadline = time.monotonic() + LEADER_TIMEOUT_S
        while time.monotonic() < deadline:
            hits = [(t, s) for t, s, _ in self.established() if t > after_ns and s != exclude]
            if hits:
                return min(hits)
            time.sleep(0.01)
        raise TimeoutError(f"no established event within {LEADER_TIMEOUT_S}s {what}")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def fmt(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"median {statistics.median(values):6.1f} ms  p95 {p95(values):6.1f} ms  "
        f"worst {max(values):6.1f} ms  (n={len(values)})"
    )


def launch_as_harness(flags: tuple[str, ...]) -> None:
    """Make DirectPeers spawn peers with the launcher's command line (with `flags` as
    the interpreter flags) instead of the tests' plain `python -m peer`."""

    def argv(
        sid: int, config_path: Path, data: Path, events: Path, bug: Bug | str | None = None
    ) -> list[str]:
        line = peer_argv(sys.executable, sid, config_path, data, events, None)
        line[1 : 1 + len(PEER_PYTHON_FLAGS)] = flags
        return line + (["--bug", str(bug)] if bug is not None else [])

    support.peer_argv = argv


def first_leader(size: int, root: Path, env: dict[str, str]) -> dict[str, float]:
    """One cold start of `size` empty peers: ms from just before the first spawn to
    the last `boot`, the first `decided` and the first `established`."""
    with DirectPeers(root, range(1, size + 1), timing=FAST, env=env) as peers:
        tail = Tail(peers)
        t0 = time.monotonic_ns()
        peers.start()
        t_first, _ = tail.wait(t0, None, "after spawning")
        boots = [e.t for sid in peers.sids for e in peers.events(sid, "boot")]
        decided = [e.t for sid in peers.sids for e in peers.events(sid, "decided")]
    return {
        "first": (t_first - t0) / 1e6,
        "last_boot": (max(boots) - t0) / 1e6,
        "decided": (min(decided) - t0) / 1e6,
    }


def run_size(
    size: int, root: Path, starts: int, kills: int, stops: int, env: dict[str, str]
) -> dict[str, object]:
    cold = [first_leader(size, root / f"start-{i}", env) for i in range(starts)]
    with DirectPeers(root / "faults", range(1, size + 1), timing=FAST, env=env) as peers:
        peers.start()
        leader = peers.wait_for_leader(LEADER_TIMEOUT_S)
        tail = Tail(peers)

        kill_ms: list[float] = []
        for _ in range(kills):
            tail.skip()
            t_kill = time.monotonic_ns()
            peers.kill(leader)
            t_new, _ = tail.wait(t_kill, leader, f"after SIGKILL of {leader}")
            kill_ms.append((t_new - t_kill) / 1e6)
            peers.start(leader)  # restart the killed peer; it must rejoin
            leader = peers.wait_for_leader(LEADER_TIMEOUT_S)

        stop_ms: list[float] = []
        for _ in range(stops):
            tail.skip()
            t_stop = time.monotonic_ns()
            peers.pause(leader)
            t_new, _ = tail.wait(t_stop, leader, f"after SIGSTOP of {leader}")
            stop_ms.append((t_new - t_stop) / 1e6)
            peers.resume(leader)
            leader = peers.wait_for_leader(LEADER_TIMEOUT_S)

        rss = [psutil.Process(peers.pid(sid)).memory_info().rss / MIB for sid in peers.sids]
    return {
        "first_ms": [c["first"] for c in cold],
        "boot_ms": [c["last_boot"] for c in cold],
        "decided_ms": [c["decided"] for c in cold],
        "kill_ms": kill_ms,
        "stop_ms": stop_ms,
        "rss": rss,
    }


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, nargs="+", default=[3, 5, 7])
    parser.add_argument("--starts", type=int, default=5, help="cold starts per size")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--stops", type=int, default=5)
    parser.add_argument(
        "--peer-flags",
        default=" ".join(PEER_PYTHON_FLAGS),
        help="the peers' interpreter flags (default: the launcher's)",
    )
    args = parser.parse_args()
    if any(n < 3 for n in args.peers) or args.starts < 1 or args.kills < 1 or args.stops < 0:
        parser.error("--peers must be >= 3 each, --starts >= 1, --kills >= 1, --stops >= 0")
    flags = tuple(shlex.split(args.peer_flags))
    launch_as_harness(flags)
    env = peer_env()
    precompile_peer(env)
    print(f"fast profile: finalize wait {FAST.finalize_wait_ms} ms, tick {FAST.tick_ms} ms")
    print(f"peer command: python {' '.join(flags)} -m peer ...; {load()}")
    with tempfile.TemporaryDirectory(prefix="qc-election-") as tmp:
        for size in args.peers:
            result = run_size(
                size, Path(tmp) / f"n{size}", args.starts, args.kills, args.stops, env
            )
            rss = result["rss"]
            assert isinstance(rss, list)
            print(f"--- {size} peers")
            print(f"  spawn -> first established : {fmt(result['first_ms'])}")  # type: ignore[arg-type]
            print(f"    spawn -> last peer's boot: {fmt(result['boot_ms'])}")  # type: ignore[arg-type]
            print(f"    spawn -> first decided   : {fmt(result['decided_ms'])}")  # type: ignore[arg-type]
            print(f"  SIGKILL leader -> established: {fmt(result['kill_ms'])}")  # type: ignore[arg-type]
            print(f"  SIGSTOP leader -> established: {fmt(result['stop_ms'])}")  # type: ignore[arg-type]
            print(f"  RSS per peer: max {max(rss):.1f} MiB, mean {statistics.mean(rss):.1f} MiB")
            print(f"  {load()}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
