"""Proxy overhead figures, side by side: direct loopback vs the embedded Toxiproxy server
(vs a real toxiproxy-server when TOXIPROXY_URL is set or one is on PATH).

Prints bulk throughput, 64-byte round trip p50/p99, the error of a 50 ms latency toxic
(p50/p95/p99), proxy CPU seconds per GiB moved and the proxy's peak RSS while a slow
reader drains a large transfer. Run: `python benchmarks/proxy.py [--bulk-mib N]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faults.toxiproxy.client import ToxiproxyClient
from faults.toxiproxy.process import resolve_toxiproxy, spawn_server, stop_server

BLOCK = b"x" * (1 << 20)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    bulk_bytes = 0


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while data := sock.recv(65536):
                sock.sendall(data)
        except OSError:
            pass


class _Source(socketserver.BaseRequestHandler):
    """Sends `bulk_bytes` then closes."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        left = self.server.bulk_bytes  # type: ignore[attr-defined]
        try:
            while left > 0:
                n = min(left, len(BLOCK))
                sock.sendall(BLOCK[:n])
                left -= n
        except OSError:
            pass


@contextmanager
def serve(handler: type[socketserver.BaseRequestHandler], bulk: int = 0) -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), handler)
    server.bulk_bytes = bulk
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _connect(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def bulk(address: str, total: int) -> float:
    """Bytes per second reading `total` bytes from a source server."""
    buf = bytearray(1 << 20)
    with _connect(address) as sock:
        got = 0
        start = time.perf_counter()
        while got < total:
            n = sock.recv_into(buf)
            if not n:
                break
            got += n
        took = time.perf_counter() - start
    return got / took


def round_trips(address: str, count: int) -> list[float]:
    payload = b"p" * 64
    samples = []
    with _connect(address) as sock:
        for _ in range(count):
            start = time.perf_counter()
            sock.sendall(payload)
            got = 0
            while got < 64:
                got += len(sock.recv(64 - got))
            samples.append(time.perf_counter() - start)
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def slow_reader_peak_rss(address: str, proc: psutil.Process, seconds: float) -> int:
    peak = proc.memory_info().rss
    with _connect(address) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sock.recv(16384)
            time.sleep(0.005)
            peak = max(peak, proc.memory_info().rss)
    return peak


def measure(
    label: str, url: str | None, pid: int | None, args: argparse.Namespace
) -> dict[str, str]:
    total = args.bulk_mib << 20
    row: dict[str, str] = {"target": label}
    client = ToxiproxyClient(url) if url else None
    proc = psutil.Process(pid) if pid else None

    def route(upstream: str, name: str) -> str:
        if client is None:
            return upstream
        return client.create_proxy(name, "127.0.0.1:0", upstream).listen

    with serve(_Source, total) as source, serve(_Echo) as echo:
        src = route(source, "bench_bulk")
        cpu0 = sum(proc.cpu_times()[:2]) if proc else 0.0
        rates = [bulk(src, total) for _ in range(args.repeat)]
        cpu1 = sum(proc.cpu_times()[:2]) if proc else 0.0
        row["bulk MB/s"] = f"{max(rates) / 1e6:.0f}"
        moved_gib = total * args.repeat / (1 << 30)
        row["cpu s/GiB"] = f"{(cpu1 - cpu0) / moved_gib:.2f}" if proc else "-"
        ech = route(echo, "bench_rtt")
        round_trips(ech, 200)  # warm up
        rtt = round_trips(ech, args.rtt_count)
        row["rtt p50 us"] = f"{pct(rtt, 0.5) * 1e6:.0f}"
        row["rtt p99 us"] = f"{pct(rtt, 0.99) * 1e6:.0f}"
        if client is not None:
            client.add_toxic("bench_rtt", type="latency", attributes={"latency": 50})
            errors = [(s - 0.05) * 1e3 for s in round_trips(ech, args.latency_count)]
            row["lat50 err p50/p95/p99 ms"] = "/".join(
                f"{pct(errors, q):.2f}" for q in (0.5, 0.95, 0.99)
            )
            client.delete_proxy("bench_rtt")
            client.delete_proxy("bench_bulk")
        else:
            row["lat50 err p50/p95/p99 ms"] = "-"
    if client is not None and proc is not None:
        with serve(_Source, 1 << 30) as source:
            slow = client.create_proxy("bench_slow", "127.0.0.1:0", source).listen
            peak = slow_reader_peak_rss(slow, proc, args.slow_seconds)
            client.delete_proxy("bench_slow")
        row["peak RSS MiB (slow reader)"] = f"{peak / (1 << 20):.1f}"
    else:
        row["peak RSS MiB (slow reader)"] = "-"
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bulk-mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rtt-count", type=int, default=3000)
    parser.add_argument("--latency-count", type=int, default=60)
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    args = parser.parse_args()
    rows = [measure("direct", None, None, args)]
    proc, url = spawn_server(seed=1)
    try:
        rows.append(measure("embedded", url, proc.pid, args))
    finally:
        stop_server(proc)
    external = resolve_toxiproxy()
    real: subprocess.Popen[bytes] | None = None
    if external is None and shutil.which("toxiproxy-server"):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        real = subprocess.Popen(
            ["toxiproxy-server", "-host", "127.0.0.1", "-port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "LOG_LEVEL": "error"},
        )
        external = f"http://127.0.0.1:{port}"
        time.sleep(0.5)
    if external is not None:
        try:
            pid = real.pid if real is not None else None
            rows.append(measure("toxiproxy-server", external, pid, args))
        finally:
            if real is not None:
                real.terminate()
                real.wait(10)
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r.get(c, "-")) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(row.get(c, "-").ljust(widths[c]) for c in columns))
    print(
        f"(bulk {args.bulk_mib} MiB x{args.repeat}, best; "
        f"{args.rtt_count} round trips; cpus={os.cpu_count()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
