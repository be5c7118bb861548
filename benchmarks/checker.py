"""Checker throughput: generate a large valid run dir, then time reading + checking it.

Usage: python benchmarks/checker.py [--events 1000000] [--peers 5] [--keep DIR]

The run is realistic in shape: `--peers` voters, a leader per epoch rotating after a
step-down, every write proposed, fsynced on every peer, ACKed, committed, delivered
everywhere and acknowledged to a client, plus votes, a fault and a restart per epoch.
Prints events/s for reading, for checking and for both (end to end, as `quorum-chaos
check` does), with the CPU time of each and the load average (figures are noisy on a
shared machine). The run must be judged valid; anything else is a bug in this generator
or in the checker, and the script says so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.checker import Outcome, check
from harness.runlog import load_run
from peer.domain import make_zxid

MS = 1_000_000


class Gen:
    def __init__(self, run_dir: Path, peers: int) -> None:
        self.sids = list(range(1, peers + 1))
        self.files = {sid: (run_dir / f"peer-{sid}.jsonl").open("w") for sid in self.sids}
        self.harness = (run_dir / "harness.jsonl").open("w")
        self.history = (run_dir / "history.jsonl").open("w")
        self.boot = dict.fromkeys(self.sids, 0)
        self.t = 0
        self.count = 0
        members = [{"sid": s, "role": "voter"} for s in self.sids]
        config = {"version": 1, "timing": "fast", "members": members}
        (run_dir / "cluster.json").write_text(json.dumps(config))

    def tick(self, ms: float = 0.01) -> int:
        self.t += int(ms * MS)
        return self.t

    def peer(self, sid: int, kind: str, **fields: Any) -> None:
        record = {"t": self.t, "kind": kind, "sid": sid, "boot": self.boot[sid], **fields}
        self.files[sid].write(json.dumps(record, separators=(",", ":")) + "\n")
        self.count += 1

    def hv(self, kind: str, **fields: Any) -> None:
        self.harness.write(json.dumps({"t": self.t, "kind": kind, **fields}) + "\n")
        self.count += 1

    def client(self, kind: str, **fields: Any) -> None:
        self.history.write(json.dumps({"t": self.t, "kind": kind, **fields}) + "\n")
        self.count += 1

    def close(self) -> None:
        for handle in (*self.files.values(), self.harness, self.history):
            handle.close()


def generate(run_dir: Path, *, events: int, peers: int) -> int:
    g = Gen(run_dir, peers)
    g.hv("run_start", peers=g.sids, seed=1)
    last = 0
    for sid in g.sids:
        g.tick(1)
        g.hv("spawn", pid=1000 + sid, sid=sid)
        g.peer(
            sid,
            "boot",
            last_zxid=0,
            current_epoch=0,
            accepted_epoch=0,
            snapshot_zxid=0,
            bug=None,
            role="voter",
        )
    epoch = 0
    op = 0
    writes_per_epoch = max(10, events // (16 + 2 * peers) // 200)
    while g.count < events:
        epoch += 1
        leader = g.sids[epoch % len(g.sids)]
        followers = [s for s in g.sids if s != leader]
        g.tick(50)
        for sid in g.sids:
            g.peer(sid, "state", state="LOOKING", round=epoch)
            for other in g.sids:
                g.peer(
                    sid,
                    "vote_sent",
                    to=other,
                    leader=leader,
                    zxid=last,
                    peer_epoch=epoch - 1,
                    round=epoch,
                    state="LOOKING",
                )
        g.tick(200)
        for sid in g.sids:
            state = "LEADING" if sid == leader else "FOLLOWING"
            g.peer(sid, "decided", leader=leader, round=epoch, peer_epoch=epoch - 1, state=state)
        g.tick(5)
        g.peer(leader, "epoch_accepted", epoch=epoch)
        for f in followers:
            g.peer(f, "epoch_accepted", epoch=epoch)
        g.tick(5)
        g.peer(leader, "established", epoch=epoch)
        g.peer(leader, "epoch_current", epoch=epoch)
        for f in followers:
            g.peer(leader, "sync", mode="DIFF", peer=f, **{"from": last, "to": last})
            g.peer(f, "epoch_current", epoch=epoch)
        for counter in range(1, writes_per_epoch + 1):
            z = make_zxid(epoch, counter)
            key, value = f"k{op % 100}", f"v{op}"
            g.tick(0.5)
            g.client("invoke", process=op % 4, op="write", id=op, key=key, value=value)
            g.peer(leader, "propose", zxid=z, key=key, value=value)
            for sid in g.sids:
                g.peer(sid, "logged", zxid=z)
            for f in followers:
                g.peer(leader, "ack", zxid=z, **{"from": f, "to": leader})
            g.peer(leader, "commit", zxid=z)
            for sid in g.sids:
                g.peer(sid, "deliver", zxid=z, key=key, value=value)
            g.client("ok", process=op % 4, op="write", id=op, key=key, value=value, zxid=z)
            op += 1
            last = z
        # The leader steps down (a fault isolates it briefly), then heals.
        g.tick(10)
        g.hv(
            "fault",
            step=epoch,
            what="isolate",
            targets=[leader],
            down=[],
            paused=[],
            cut=[[leader, f] for f in followers] + [[f, leader] for f in followers],
        )
        g.tick(600)
        g.peer(leader, "step_down", reason="lost quorum")
        g.tick(10)
        g.hv("fault", step=epoch, what="heal", targets=[], down=[], paused=[], cut=[])
    g.tick(100)
    g.hv("run_end", reason="done")
    g.close()
    return g.count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--peers", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="write the run dir here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.keep or Path(tmp)
        run_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        count = generate(run_dir, events=args.events, peers=args.peers)
        print(f"generated {count} events in {time.perf_counter() - started:.1f} s")
        cpu_started, started = time.process_time(), time.perf_counter()
        run = load_run(run_dir)
        cpu_loaded, loaded = time.process_time(), time.perf_counter()
        verdict = check(run)
        cpu_done, done = time.process_time(), time.perf_counter()
    # Wall time is the figure; CPU time of this process is printed beside it because
    # on a shared machine it moves much less with the load of other processes.
    for name, wall, cpu in (
        ("read ", loaded - started, cpu_loaded - cpu_started),
        ("check", done - loaded, cpu_done - cpu_loaded),
        ("total", done - started, cpu_done - cpu_started),
    ):
        line = f"{name}  : {wall:6.2f} s  {count / wall:10,.0f} events/s  (cpu {cpu:6.2f} s)"
        print(line + (" (read + check)" if name == "total" else ""))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"verdict: {verdict.outcome.value}; {len(verdict.summary['leaders'])} leaders")
    if verdict.outcome is not Outcome.VALID:
        print(json.dumps(verdict.to_json()["violations"][:3], indent=1)[:3000])
        print(f"why: {verdict.why}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
