"""Proxy overhead figures: direct loopback vs the embedded Toxiproxy server (vs a real
toxiproxy-server when TOXIPROXY_URL is set or one is on PATH).

For each proxy server (a fresh one per run), `--runs` times, it measures, in order:
- the 64-byte round trip, direct and proxied *interleaved* in batches (same process,
  same moment, same echo server), so machine noise hits both alike; the overhead is the
  median over batches of (proxied p50 - direct p50), and p95/p99 are pooled;
- the error of a 50 ms latency toxic (round trip - 50 ms), p50/p95/p99, its excess over
  an untoxic round trip after the same 50 ms of idleness (see `latency_samples`), and
  the proxy's CPU per held message (10 ms tick resolution: a rough figure);
- bulk throughput, direct and through the proxy (best of `--repeat`), and the proxy's
  CPU seconds per GiB moved (user + system of the proxy process);
- the proxy's peak RSS while a slow reader drains a 1 GiB transfer (flow control).
It prints one line per run and then the median of the runs, with the min-max spread of
the three latency figures. The echo and source servers are threads of this process with
TCP_NODELAY; the client is a tight blocking loop with a warm-up.

Run: `python benchmarks/proxy.py [--runs 3] [--bulk-mib 256]`.

On a shared machine the overhead moves by +-20 us from one minute to the next (load,
which CPU the proxy lands on), more than most changes to the proxy. To compare two
versions, `--baseline DIR` (a checkout of another version, e.g. from `git archive`)
runs both servers at once and measures the round trip through each in the same
interleaved batches: `python benchmarks/proxy.py --baseline /tmp/base --ab-only`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import socketserver
import statistics
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


def round_trips(sock: socket.socket, count: int) -> list[float]:
    """`count` 64-byte round trips on an open connection (seconds each)."""
    payload = b"p" * 64
    buf = bytearray(64)
    view = memoryview(buf)
    samples = []
    clock = time.perf_counter
    for _ in range(count):
        start = clock()
        sock.sendall(payload)
        got = 0
        while got < 64:
            n = sock.recv_into(view[got:])
            if not n:
                raise ConnectionError("echo closed the connection")
            got += n
        samples.append(clock() - start)
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def interleaved_rtt(
    direct: str, proxied: str, batches: int, per_batch: int
) -> tuple[float, list[float], list[float]]:
    """(median per-batch p50 overhead, pooled direct samples, pooled proxied samples)."""
    with _connect(direct) as d, _connect(proxied) as p:
        round_trips(d, 300)  # warm-up: connection set-up, caches, the proxy's code paths
        round_trips(p, 300)
        overheads: list[float] = []
        all_d: list[float] = []
        all_p: list[float] = []
        for index in range(batches):
            # Alternate which goes first so a load change mid-batch does not bias one.
            first, second = (d, p) if index % 2 == 0 else (p, d)
            a = round_trips(first, per_batch)
            b = round_trips(second, per_batch)
            sd, sp = (a, b) if first is d else (b, a)
            overheads.append(statistics.median(sp) - statistics.median(sd))
            all_d += sd
            all_p += sp
    return statistics.median(overheads), all_d, all_p


def latency_samples(delayed: str, plain: str, count: int) -> tuple[list[float], list[float]]:
    """Round trips through a 50 ms latency toxic, and, interleaved, round trips without
    it after 50 ms of idleness. The second set is the baseline for the first: a message
    after 50 ms of silence pays the wake-up of every idle process on its way (the echo
    server, the client; 0.1-0.5 ms each on a busy or virtual machine), toxic or not."""
    held: list[float] = []
    idle: list[float] = []
    with _connect(delayed) as d, _connect(plain) as p:
        round_trips(d, 3)
        round_trips(p, 3)
        for _ in range(count):
            held += round_trips(d, 1)
            time.sleep(0.05)
            idle += round_trips(p, 1)
    return held, idle


def slow_reader_peak_rss(address: str, proc: psutil.Process, seconds: float) -> tuple[int, int]:
    """(peak RSS of the proxy, bytes the reader got) while a reader drains ~3 MB/s."""
    peak = proc.memory_info().rss
    got = 0
    with _connect(address) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            got += len(sock.recv(16384))
            time.sleep(0.005)
            peak = max(peak, proc.memory_info().rss)
    return peak, got


def measure(url: str, pid: int | None, args: argparse.Namespace) -> dict[str, float]:
    total = args.bulk_mib << 20
    client = ToxiproxyClient(url)
    proc = psutil.Process(pid) if pid else None
    row: dict[str, float] = {}

    def route(upstream: str, name: str) -> str:
        return client.create_proxy(name, "127.0.0.1:0", upstream).listen

    with serve(_Source, total) as source, serve(_Echo) as echo:
        # Small messages first, on a fresh server, as in a chaos run (peers exchange
        # small messages): a bulk transfer first would warm the allocator (glibc raises
        # its mmap threshold after freeing a large block) and hide per-read costs.
        ech = route(echo, "bench_rtt")
        overhead, direct, proxied = interleaved_rtt(echo, ech, args.batches, args.per_batch)
        row["direct p50 us"] = pct(direct, 0.5) * 1e6
        row["rtt +p50 us"] = overhead * 1e6
        row["rtt p95 us"] = pct(proxied, 0.95) * 1e6
        row["rtt p99 us"] = pct(proxied, 0.99) * 1e6
        lat = route(echo, "bench_lat")
        client.add_toxic("bench_lat", type="latency", attributes={"latency": 50})
        cpu0 = sum(proc.cpu_times()[:2]) if proc else 0.0
        held, idle = latency_samples(lat, ech, args.latency_count)
        cpu1 = sum(proc.cpu_times()[:2]) if proc else 0.0
        errors = [(s - 0.05) * 1e3 for s in held]
        for q in (0.5, 0.95, 0.99):
            row[f"lat err p{round(q * 100)} ms"] = pct(errors, q)
        row["lat excess p50 ms"] = (pct(held, 0.5) - 0.05 - pct(idle, 0.5)) * 1e3
        row["lat cpu ms/msg"] = (cpu1 - cpu0) / len(held) * 1e3 if proc else -1
        client.delete_proxy("bench_lat")
        client.delete_proxy("bench_rtt")
        src = route(source, "bench_bulk")
        row["direct MB/s"] = max(bulk(source, total) for _ in range(args.repeat)) / 1e6
        cpu0 = sum(proc.cpu_times()[:2]) if proc else 0.0
        rates = [bulk(src, total) for _ in range(args.repeat)]
        cpu1 = sum(proc.cpu_times()[:2]) if proc else 0.0
        row["bulk MB/s"] = max(rates) / 1e6
        row["cpu s/GiB"] = (cpu1 - cpu0) / (total * args.repeat / (1 << 30)) if proc else -1
        client.delete_proxy("bench_bulk")
    if proc is not None:
        with serve(_Source, 1 << 30) as source:
            slow = route(source, "bench_slow")
            peak, _ = slow_reader_peak_rss(slow, proc, args.slow_seconds)
            client.delete_proxy("bench_slow")
        row["peak RSS MiB"] = peak / (1 << 20)
    return row


def _spawn_baseline(tree: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The embedded server of another checkout (`tree` holds its `faults` package)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "faults.toxiproxy", "--host", "127.0.0.1", "--port", "0"],
        cwd=tree,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the server's one start-up line
    try:
        return proc, f"http://127.0.0.1:{int(json.loads(line)['port'])}"
    except (ValueError, KeyError) as exc:
        stop_server(proc)
        raise SystemExit(f"baseline server in {tree} did not start: {line!r}") from exc


def ab_rtt(tree: Path, args: argparse.Namespace) -> None:
    """RTT overhead of this checkout and of `tree`, in the same interleaved batches."""
    servers = {"this": spawn_server(seed=1), "baseline": _spawn_baseline(tree)}
    try:
        with serve(_Echo) as echo:
            routes = {"direct": echo}
            for label, (_, url) in servers.items():
                proxy = ToxiproxyClient(url).create_proxy("bench_ab", "127.0.0.1:0", echo)
                routes[label] = proxy.listen
            socks = {label: _connect(address) for label, address in routes.items()}
            try:
                for sock in socks.values():
                    round_trips(sock, 300)
                overheads: dict[str, list[float]] = {"this": [], "baseline": []}
                labels = list(socks)
                for index in range(args.batches):
                    # Rotate the order so a load change mid-batch does not bias one.
                    order = labels[index % 3 :] + labels[: index % 3]
                    p50 = {
                        label: statistics.median(round_trips(socks[label], args.per_batch))
                        for label in order
                    }
                    for label in overheads:
                        overheads[label].append(p50[label] - p50["direct"])
            finally:
                for sock in socks.values():
                    sock.close()
    finally:
        for proc, _ in servers.values():
            stop_server(proc)
    for label, values in overheads.items():
        print(
            f"  rtt +p50 us, {label:8s}: median {statistics.median(values) * 1e6:.1f}, "
            f"range {min(values) * 1e6:.1f} .. {max(values) * 1e6:.1f} over {len(values)} batches"
        )


def _real_server() -> tuple[subprocess.Popen[bytes], str] | None:
    if not shutil.which("toxiproxy-server"):
        return None
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
    time.sleep(0.5)
    return real, f"http://127.0.0.1:{port}"


def _print_table(label: str, rows: list[dict[str, float]]) -> None:
    columns = list(rows[0])
    median = {c: statistics.median(r[c] for r in rows) for c in columns}

    def fmt(row: dict[str, float]) -> list[str]:
        digits = [3 if "/msg" in c else 2 if "ms" in c or "/GiB" in c else 0 for c in columns]
        return [f"{row[c]:.{d}f}" for c, d in zip(columns, digits, strict=True)]

    cells = [fmt(r) for r in [*rows, median]]
    names = [f"{label} run {i + 1}" for i in range(len(rows))] + [f"{label} MEDIAN"]
    first = max(len(n) for n in names)
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    for name, row in zip(["", *names], [columns, *cells], strict=True):
        print(name.ljust(first), *(v.rjust(w) for v, w in zip(row, widths, strict=True)), sep="  ")
    for key in ("rtt +p50 us", "lat err p50 ms", "lat excess p50 ms"):
        values = [r[key] for r in rows]
        print(f"  {key}: median {median[key]:.3g}, range {min(values):.3g} .. {max(values):.3g}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="repeat everything; report medians")
    parser.add_argument("--bulk-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="bulk transfers per run (best)")
    parser.add_argument("--batches", type=int, default=20, help="interleaved RTT batches")
    parser.add_argument("--per-batch", type=int, default=250, help="round trips per batch")
    parser.add_argument("--latency-count", type=int, default=150)
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    parser.add_argument("--no-real", action="store_true", help="skip a real toxiproxy-server")
    parser.add_argument(
        "--baseline", type=Path, default=None, help="another checkout: A/B its RTT overhead"
    )
    parser.add_argument("--ab-only", action="store_true", help="with --baseline: only the A/B")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    if args.baseline is not None:
        print(f"A/B against {args.baseline} (1-min load avg {load_before:.1f}):")
        for _ in range(args.runs):
            ab_rtt(args.baseline.resolve(), args)
        if args.ab_only:
            print(f"(1-min load avg {os.getloadavg()[0]:.1f} after)")
            return 0
    rows: list[dict[str, float]] = []
    for _ in range(args.runs):
        proc, url = spawn_server(seed=1)
        try:
            rows.append(measure(url, proc.pid, args))
        finally:
            stop_server(proc)
    _print_table("embedded", rows)
    external = resolve_toxiproxy()
    real = None if external is not None or args.no_real else _real_server()
    if real is not None:
        external = real[1]
    if external is not None:
        try:
            pid = real[0].pid if real is not None else None
            real_rows = [measure(external, pid, args) for _ in range(args.runs)]
            _print_table("toxiproxy-server", real_rows)
        finally:
            if real is not None:
                real[0].terminate()
                real[0].wait(10)
    print(
        f"(bulk {args.bulk_mib} MiB x{args.repeat}, best; RTT {args.batches}x{args.per_batch} "
        f"interleaved; {args.latency_count} latency samples; cpus={os.cpu_count()}; "
        f"1-min load avg {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; the "
        "machine's other work inflates every figure, so compare runs at similar load)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
