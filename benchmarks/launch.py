"""Launch time: from nothing to a first established leader, for 3, 5 and 7 peers.

Each trial starts a Toxiproxy server, creates every proxy, spawns the peers behind
them and waits for `Cluster.wait_for_leader`; it prints the set-up (proxies +
cluster.json), the spawn-to-listening and the listening-to-leader times separately,
then the median and worst of the totals. Run dirs go to a temporary directory.

    python benchmarks/launch.py [--sizes 3 5 7] [--trials 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faults.toxiproxy.process import resolve_toxiproxy
from harness.cluster import Cluster, ClusterSpec


def trial(peers: int, run_dir: Path, toxiproxy_url: str | None) -> tuple[float, float, float]:
    with Cluster(ClusterSpec(peers=peers, toxiproxy_url=toxiproxy_url), run_dir) as cluster:
        t0 = time.perf_counter()
        cluster.start(sids=[])
        t1 = time.perf_counter()
        cluster.start(timeout=30.0)
        t2 = time.perf_counter()
        cluster.wait_for_leader(60.0)
        t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 5, 7])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    url = resolve_toxiproxy()
    print(f"toxiproxy: {url or 'own server (toxiproxy-server on PATH, else embedded)'}")
    print(
        f"{'peers':>5} {'trial':>5} {'setup_s':>8} {'listen_s':>8} {'leader_s':>8} {'total_s':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="qc-launch-") as tmp:
        for peers in args.sizes:
            totals: list[float] = []
            for index in range(args.trials):
                setup, listen, leader = trial(peers, Path(tmp) / f"n{peers}-{index}", url)
                total = setup + listen + leader
                totals.append(total)
                print(
                    f"{peers:>5} {index:>5} {setup:>8.3f} {listen:>8.3f} "
                    f"{leader:>8.3f} {total:>8.3f}",
                    flush=True,
                )
            print(
                f"{peers:>5} median total {statistics.median(totals):.3f}s, "
                f"worst {max(totals):.3f}s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
