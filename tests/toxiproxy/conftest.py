"""Fixtures for the Toxiproxy contract tests: one server per worker, echo upstreams.

The server is the embedded one started as a real process through `spawn_server`, or a
real toxiproxy-server when TOXIPROXY_URL is set (the same tests then check it).
"""

from __future__ import annotations

import http.client
import itertools
import json
import socket
import socketserver
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from faults.toxiproxy.client import ToxiproxyClient
from faults.toxiproxy.process import resolve_toxiproxy, spawn_server, stop_server

_names = itertools.count()


@pytest.fixture(scope="session")
def toxiproxy_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = resolve_toxiproxy()
    if external is not None:
        yield external
        return
    log = tmp_path_factory.mktemp("toxiproxy") / "server.log"
    proc, url = spawn_server(seed=1234, log_path=log)
    try:
        yield url
    finally:
        assert stop_server(proc) == 0, log.read_text()


@pytest.fixture(scope="session")
def embedded_only() -> None:
    if resolve_toxiproxy() is not None:
        pytest.skip("checks a deliberate difference of the embedded server")


@pytest.fixture
def api(toxiproxy_url: str) -> ToxiproxyClient:
    return ToxiproxyClient(toxiproxy_url, timeout=5.0)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A proxy name unique in this worker's server."""
    return f"p{next(_names)}_{request.node.name[:30]}".replace("[", "_").replace("]", "_")


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw(url: str, method: str, path: str, body: bytes | str | None = None, **headers: str) -> Reply:
    """One HTTP exchange with http.client, returning status, headers and exact bytes."""
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=5)
    try:
        data = body.encode() if isinstance(body, str) else body
        conn.request(
            method, path, body=data, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )
        response = conn.getresponse()
        return Reply(
            status=response.status,
            headers={k.lower(): v for k, v in response.getheaders()},
            body=response.read(),
        )
    finally:
        conn.close()


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        try:
            while data := sock.recv(65536):
                sock.sendall(data)
        except OSError:
            pass


class _AckHandler(socketserver.BaseRequestHandler):
    """Reads to EOF, then replies with the byte count (8 bytes): the half-close test."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        total = 0
        try:
            while data := sock.recv(65536):
                total += len(data)
            sock.sendall(total.to_bytes(8, "big"))
        except OSError:
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(handler: type[socketserver.BaseRequestHandler]) -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def echo() -> Iterator[str]:
    yield from _serve(_EchoHandler)


@pytest.fixture
def ack_server() -> Iterator[str]:
    yield from _serve(_AckHandler)


def connect(listen: str) -> socket.socket:
    host, port = listen.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def exchange(sock: socket.socket, payload: bytes, *, wait: float = 5.0) -> tuple[bytes, float]:
    """Send `payload`, read until as many bytes came back (or EOF/timeout); bytes, seconds."""
    start = time.monotonic()
    sock.sendall(payload)
    sock.settimeout(wait)
    got = b""
    try:
        while len(got) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    except TimeoutError:
        pass
    return got, time.monotonic() - start


def read_outcome(sock: socket.socket, wait: float) -> str:
    """'eof', 'reset', 'timeout' or 'data' for the next read within `wait` seconds."""
    sock.settimeout(wait)
    try:
        return "data" if sock.recv(65536) else "eof"
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return "timeout"
