"""Flow control: a reader that does not read never grows the proxy's memory without bound.

A source pushes up to 128 MiB through the proxy to a client that reads nothing, until
its send stalls; then the client drains. With flow control the proxy stops reading the
source once its write buffer (1 MiB) or toxic queue (16 MiB) is full, so only socket
buffers plus that much get through before the stall, the proxy's RSS grows by less than
that, and every byte sent arrives, in order, once the reader reads. Both the direct path
(no toxic) and the toxic path (a latency toxic queues chunks) are checked, on a server
of our own (its RSS is read with psutil). And since every proxied socket reads into one
shared buffer, concurrent connections must each get back exactly their own bytes.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from faults.toxiproxy.client import ToxiproxyClient
from faults.toxiproxy.process import spawn_server, stop_server
from tests.toxiproxy.conftest import connect

OFFER = 128 << 20
BOUND = 48 << 20  # socket buffers (autotuned, up to tcp_rmem max) + proxy buffers
PATTERN = bytes(range(256)) * 256  # 64 KiB
_ROLL = bytes(range(256)) * ((1 << 20) // 256 + 1)  # any 1 MiB window of the stream


class _StallingSource:
    """Accepts one connection, sends PATTERN repeatedly until `send` makes no progress
    for `stall` seconds (or OFFER is reached), records the count, then closes."""

    def __init__(self, stall: float = 1.0) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.sent = 0
        self.stalled = threading.Event()
        self._stall = stall
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.listener.settimeout(10)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            self.stalled.set()
            return
        with conn:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            conn.settimeout(self._stall)
            view = memoryview(PATTERN)
            try:
                while self.sent < OFFER:
                    offset = self.sent % len(PATTERN)
                    self.sent += conn.send(view[offset:])
            except (TimeoutError, OSError):
                pass
            self.stalled.set()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(10)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[ToxiproxyClient, psutil.Process]]:
    proc, url = spawn_server(seed=5, log_path=tmp_path / "server.log")
    try:
        yield ToxiproxyClient(url, timeout=5.0), psutil.Process(proc.pid)
    finally:
        assert stop_server(proc) == 0, (tmp_path / "server.log").read_text()


@pytest.mark.parametrize("toxic", [False, True], ids=["direct-path", "latency-toxic"])
def test_slow_reader_bounds_memory_and_loses_nothing(
    own_server: tuple[ToxiproxyClient, psutil.Process], toxic: bool
) -> None:
    api, server = own_server
    source = _StallingSource()
    try:
        proxy = api.create_proxy("flow", "127.0.0.1:0", source.address)
        if toxic:
            api.add_toxic("flow", type="latency", attributes={"latency": 5})
        rss_before = server.memory_info().rss
        host, port = proxy.listen.rsplit(":", 1)
        with socket.socket() as sock:
            # A small receive buffer before connecting caps the client's TCP window.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.settimeout(10)
            sock.connect((host, int(port)))
            assert source.stalled.wait(30), "the source never stalled (no flow control?)"
            rss_stalled = server.memory_info().rss
            assert source.sent < BOUND, f"{source.sent} bytes went through a non-reader"
            assert rss_stalled - rss_before < BOUND
            received = 0
            while chunk := sock.recv(1 << 20):
                # Byte i of the stream is i % 256: this checks order and loss together.
                start = received % 256
                assert chunk == _ROLL[start : start + len(chunk)], f"corrupt at {received}"
                received += len(chunk)
            assert received == source.sent
    finally:
        source.close()


def test_concurrent_connections_keep_their_own_bytes(
    api: ToxiproxyClient, name: str, echo: str
) -> None:
    # All proxied sockets of a server read into one shared buffer; several connections
    # streaming at once through two proxies (one with a toxic, which copies and queues)
    # must each get back exactly their own bytes.
    toxic_name = name + "_t"
    plain = api.create_proxy(name, "127.0.0.1:0", echo)
    toxic = api.create_proxy(toxic_name, "127.0.0.1:0", echo)
    api.add_toxic(toxic_name, type="latency", attributes={"latency": 1})
    results: dict[int, bytes] = {}
    payloads = {i: bytes([i]) * 97 + bytes(range(256)) * 1024 for i in range(6)}

    def run(index: int, listen: str) -> None:
        with connect(listen) as sock:
            sock.settimeout(10)
            sender = threading.Thread(target=sock.sendall, args=(payloads[index],))
            sender.start()
            got = bytearray()
            while len(got) < len(payloads[index]):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
            sender.join(10)
            results[index] = bytes(got)

    try:
        threads = [
            threading.Thread(target=run, args=(i, (plain if i % 2 else toxic).listen))
            for i in payloads
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(results) == sorted(payloads)
        for index, payload in payloads.items():
            assert results[index] == payload, f"connection {index} got other bytes"
    finally:
        api.delete_proxy(name)
        api.delete_proxy(toxic_name)
