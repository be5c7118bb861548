"""The embedded Toxiproxy server process: command line, start-up line, signals.

This module owns the process: it reads flags (Go-style `-host` and GNU-style `--host`
both work), seeds the one RNG every toxic decision draws from, binds the API, loads an
optional `-config` file through the same code as `/populate`, prints one JSON start-up
line on stdout (the launcher reads it to learn the port; nothing else is ever written to
stdout, so an undrained pipe cannot block us), logs for people on stderr, and shuts down
cleanly on SIGTERM or SIGINT.

`-seed` differs from toxiproxy-server on purpose: the real server ignores it, ours seeds
toxicity, jitter and slicer draws so a run can be replayed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import sys
import time
from pathlib import Path

from faults.toxiproxy.address import is_loopback_host, join_host_port
from faults.toxiproxy.api import VERSION, Registry
from faults.toxiproxy.errors import UsageError
from faults.toxiproxy.httpwire import serve_connection
from faults.toxiproxy.timerfd import reduce_timer_slack
from faults.toxiproxy.timerfd import release as release_timers

log = logging.getLogger("faults.toxiproxy")


# Toxiproxy's LOG_LEVEL words, mapped onto stdlib logging.
_LOG_LEVELS = {
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m faults.toxiproxy",
        description="Embedded Toxiproxy 2.x compatible server (loopback only by default).",
        allow_abbrev=False,
    )
    parser.add_argument("-host", "--host", default="127.0.0.1", help="API listen host")
    parser.add_argument("-port", "--port", type=int, default=8474, help="API port (0: any)")
    parser.add_argument("-config", "--config", default=None, help="JSON array, as /populate")
    parser.add_argument(
        "-seed", "--seed", type=int, default=None, help="seed for toxicity/jitter/slicer draws"
    )
    parser.add_argument("-proxy-metrics", "--proxy-metrics", action="store_true")
    parser.add_argument("-runtime-metrics", "--runtime-metrics", action="store_true")
    parser.add_argument("-version", "--version", action="store_true", help="print the version")
    parser.add_argument(
        "--allow-non-loopback",
        "-allow-non-loopback",
        action="store_true",
        help="allow a non-loopback API host and proxy listen addresses",
    )
    return parser


def _start_line(host: str, port: int) -> str:
    # zerolog's field layout, with the keys the launcher needs.
    return json.dumps(
        {
            "level": "info",
            "host": host,
            "port": port,
            "version": VERSION,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "msg": "API HTTP server starting",
        },
        separators=(",", ":"),
    )


async def _load_config(registry: Registry, path: str) -> None:
    try:
        body = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"-config {path}: cannot read: {exc.strerror}") from exc
    response = await registry.populate(body)
    if response.status != 201:
        raise UsageError(f"-config {path}: {response.body.decode(errors='replace')}")


async def serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    reduce_timer_slack()  # latency toxics promise sub-millisecond accuracy
    rng = random.Random(args.seed) if args.seed is not None else random.Random(os.urandom(16))
    registry = Registry(
        rng=rng,
        allow_non_loopback=args.allow_non_loopback,
        metrics_enabled=args.proxy_metrics or args.runtime_metrics,
        loop=loop,
    )
    try:
        api = await asyncio.start_server(
            lambda r, w: serve_connection(r, w, registry.handle), args.host, args.port
        )
    except OSError as exc:
        address = join_host_port(args.host, args.port)
        print(f"toxiproxy: cannot listen on {address}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        if args.config:
            await _load_config(registry, args.config)
        port = int(api.sockets[0].getsockname()[1])
        sys.stdout.write(_start_line(args.host, port) + "\n")
        sys.stdout.flush()
        log.info("API HTTP server listening on %s", join_host_port(args.host, port))
        await stop.wait()
        log.info("shutting down")
    except UsageError as exc:
        print(f"toxiproxy: {exc}", file=sys.stderr)
        return 2
    finally:
        api.close()
        registry.close_all()
        release_timers(loop)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT; return the process exit status."""
    args = _parser().parse_args(argv)
    if args.version:
        print(f"toxiproxy-server version {VERSION} (embedded, quorum-chaos)")
        return 0
    logging.basicConfig(
        stream=sys.stderr,
        level=_LOG_LEVELS.get(os.environ.get("LOG_LEVEL", "info").lower(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not 0 <= args.port <= 65535:
        print(f"toxiproxy: -port {args.port} is out of range 0-65535", file=sys.stderr)
        return 2
    if not args.allow_non_loopback and not is_loopback_host(args.host):
        print(
            f"toxiproxy: -host {args.host!r} is not a loopback address; "
            "pass --allow-non-loopback to listen on it",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
