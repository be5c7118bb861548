"""Election speed and footprint of the peer on real processes (issue 2's "what must show").

For each cluster size (3, 5, 7 voters, fast timing profile: 200 ms finalize wait) it
starts the peers directly on 127.0.0.1 (each dials the others' own ports: no proxy,
so the figures are the peer's) and prints:

- spawn -> first `established` event (the first leader), per trial;
- SIGKILL of the leader -> the next `established` event of another peer (median, p95,
  worst over --kills kills; the killed peer is restarted and rejoins between kills);
- SIGSTOP of the leader -> the next `established` event of another peer (the stopped
  peer is then resumed and rejoins);
- the peers' RSS (psutil) at the end of the run.

Times come from the peers' own event logs (`t` = CLOCK_MONOTONIC ns, the clock this
script reads before it sends a signal), so polling adds nothing to them. Run dirs go
to a temporary directory.

    python benchmarks/election.py [--peers 3 5 7] [--kills 20] [--stops 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peer.domain import FAST
from tests.peer.test_integration_support import DirectPeers, peer_env

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


def cached_env(cache: Path) -> dict[str, str]:
    """The peers' environment with bytecode caching on, into `cache` (not the repo):
    a shell with PYTHONDONTWRITEBYTECODE=1 would otherwise make every peer start
    compile its modules from source, which is not what a deployment does."""
    env = peer_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    warm = "import peer.__main__, peer.node, peer.storage, harness.events"
    subprocess.run([sys.executable, "-c", warm], env=env, check=True)
    return env


def run_size(
    size: int, root: Path, kills: int, stops: int, env: dict[str, str]
) -> dict[str, object]:
    with DirectPeers(root, range(1, size + 1), timing=FAST, env=env) as peers:
        tail = Tail(peers)
        t0 = time.monotonic_ns()
        peers.start()
        t_first, _ = tail.wait(t0, None, "after spawning")
        first_ms = (t_first - t0) / 1e6
        # Split: interpreter start-up until the last peer listens, then the election.
        listening = [e.t for sid in peers.sids for e in peers.events(sid, "listening")]
        listen_ms = (max(listening) - t0) / 1e6
        leader = peers.wait_for_leader(LEADER_TIMEOUT_S)

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
        "listen_ms": listen_ms,
        "first_ms": first_ms,
        "kill_ms": kill_ms,
        "stop_ms": stop_ms,
        "rss": rss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, nargs="+", default=[3, 5, 7])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--stops", type=int, default=5)
    args = parser.parse_args()
    if any(n < 3 for n in args.peers) or args.kills < 1 or args.stops < 0:
        parser.error("--peers must be >= 3 each, --kills >= 1, --stops >= 0")
    print(f"fast profile: finalize wait {FAST.finalize_wait_ms} ms, tick {FAST.tick_ms} ms")
    with tempfile.TemporaryDirectory(prefix="qc-election-") as tmp:
        env = cached_env(Path(tmp) / "pycache")
        for size in args.peers:
            result = run_size(size, Path(tmp) / f"n{size}", args.kills, args.stops, env)
            rss = result["rss"]
            assert isinstance(rss, list)
            print(f"--- {size} peers")
            print(
                f"  spawn -> first established : {result['first_ms']:.1f} ms "
                f"(last peer listening at {result['listen_ms']:.1f} ms)"
            )
            print(f"  SIGKILL leader -> established: {fmt(result['kill_ms'])}")  # type: ignore[arg-type]
            print(f"  SIGSTOP leader -> established: {fmt(result['stop_ms'])}")  # type: ignore[arg-type]
            print(f"  RSS per peer: max {max(rss):.1f} MiB, mean {statistics.mean(rss):.1f} MiB")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
