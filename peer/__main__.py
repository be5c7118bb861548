"""`python -m peer --id 3 --config cluster.json --data DIR [--events FILE] [--bug NAME]`.

Reads and validates everything before it binds a port: a bad argument, config or
bug name is one clear line on stderr and exit code 2; a data dir that fails recovery
(mid-log corruption, acceptedEpoch < currentEpoch) is exit code 2 too, naming the
file and offset. The first event of every boot is `boot`, carrying the planted bug.

The peer needs only the standard library: the launcher starts it with `python -S`
(`harness.cluster.PEER_PYTHON_FLAGS`), so it must not import third-party packages.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m peer", description="A ZooKeeper-style quorum peer (FLE + ZAB)."
    )
    parser.add_argument("--id", type=int, required=True, help="this peer's sid")
    parser.add_argument("--config", type=Path, required=True, help="cluster.json")
    parser.add_argument("--data", type=Path, required=True, help="data dir (log, snapshots)")
    parser.add_argument("--events", type=Path, default=None, help="JSONL event log (appended)")
    parser.add_argument("--bug", default=None, help="plant a bug (refused unless named)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Imports here keep `--help` fast and let argparse errors come first.
    import asyncio

    from harness.events import EventWriter
    from peer.config import ConfigError, load_config
    from peer.domain import Bug, Role
    from peer.election import Election
    from peer.errors import PeerError
    from peer.node import Node
    from peer.replication import Replica
    from peer.storage import Storage

    def fail(message: str) -> int:
        print(f"peer {args.id}: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT

    bug: Bug | None = None
    if args.bug is not None:
        try:
            bug = Bug(args.bug)
        except ValueError:
            return fail(f"unknown --bug {args.bug!r} (known: {', '.join(b.value for b in Bug)})")
    try:
        config = load_config(args.config)
        member = config.member(args.id)
    except ConfigError as exc:
        return fail(f"bad config: {exc}")
    missing = sorted(set(config.members) - set(member.dial) - {args.id})
    if missing:
        return fail(f"bad config: member {args.id} has no dial address for {missing}")
    try:
        storage, recovered = Storage.open(args.data)
        boot = storage.next_boot()
    except (PeerError, OSError) as exc:
        return fail(f"cannot recover from {args.data}: {exc}")
    events_path = args.events or (args.data / "events.jsonl")
    events = EventWriter(events_path, sid=args.id, boot=boot)
    events.emit(
        "boot",
        recovered.boot_fields(),
        bug=bug.value if bug else None,
        role=member.role.value,
        pid=_pid(),
    )
    events.emit("recovered", recovered.recovered_fields())
    roles: dict[int, Role] = config.roles
    election = Election(sid=args.id, roles=roles, timing=config.timing, bug=bug)
    replica = Replica(
        sid=args.id,
        roles=roles,
        timing=config.timing,
        bug=bug,
        snapshot_zxid=recovered.snapshot_zxid,
        state=recovered.state,
        txns=recovered.txns,
        accepted_epoch=recovered.accepted_epoch,
        current_epoch=recovered.current_epoch,
        seed=args.id * 1_000_003 + boot,
    )
    node = Node(
        sid=args.id,
        config=config,
        storage=storage,
        election=election,
        replica=replica,
        events=events,
        bug=bug,
    )
    try:
        asyncio.run(node.serve())
    except OSError as exc:
        events.emit("shutdown", reason=f"cannot listen: {exc}")
        return fail(f"cannot listen: {exc}")
    finally:
        events.close()
    return 0


def _pid() -> int:
    import os

    return os.getpid()


if __name__ == "__main__":
    sys.exit(main())
