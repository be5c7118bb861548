"""PeerClient's side of the client protocol: framing, id matching, and every failure
mode mapped to the right error with `sent` telling definite from unknown outcomes.

The far end here is a scripted TCP server that answers each request line with a
given reaction (a reply template, silence, a close, garbage): it exercises the
client's wire handling. The real peer is exercised by the integration tests in
test_cluster.py."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.client import PeerClient, PeerErrorCode
from harness.errors import ClientError, ClientTimeout, Rejected

Reaction = Callable[[dict[str, Any]], bytes | None]  # None = close the connection


class ScriptedServer:
    """Loopback server on port 0: each request line gets the next reaction's bytes."""

    def __init__(self, reactions: list[Reaction]) -> None:
        self.reactions = reactions
        self.requests: list[dict[str, Any]] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            buffer = b""
            for react in self.reactions:
                while b"\n" not in buffer:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buffer += chunk
                line, _, buffer = buffer.partition(b"\n")
                request = json.loads(line)
                self.requests.append(request)
                out = react(request)
                if out is None:
                    return
                conn.sendall(out)
            # Out of reactions: hold the connection open, silent, until the client goes.
            while conn.recv(4096):
                pass

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=5)


def reply(**fields: Any) -> Reaction:
    return lambda request: (json.dumps({"id": request["id"], **fields}) + "\n").encode()


def silence(request: dict[str, Any]) -> bytes:
    return b""


@pytest.fixture
def server_factory() -> Iterator[Callable[[list[Reaction]], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(reactions: list[Reaction]) -> ScriptedServer:
        servers.append(ScriptedServer(reactions))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_write_read_status_round_trip(server_factory: Any) -> None:
    status = {"sid": 2, "state": "FOLLOWING", "leader": 3, "serving": True}
    server = server_factory(
        [
            reply(ok=True, zxid=4294967297),
            reply(ok=True, value="v", zxid=7),
            reply(ok=True, **status),
        ]
    )
    with PeerClient("127.0.0.1", server.port, timeout=5.0) as client:
        assert client.write("k", "v") == 1 << 32 | 1
        assert client.read("k") == ("v", 7)
        got = client.status()
    assert {k: got[k] for k in status} == status
    assert [r["op"] for r in server.requests] == ["write", "read", "status"]
    assert [r["id"] for r in server.requests] == [1, 2, 3]
    assert server.requests[0] == {"id": 1, "op": "write", "key": "k", "value": "v"}


def test_read_of_missing_key_is_none(server_factory: Any) -> None:
    server = server_factory([reply(ok=True, value=None, zxid=0)])
    with PeerClient("127.0.0.1", server.port, timeout=5.0) as client:
        assert client.read("absent") == (None, 0)


def test_rejection_carries_code_and_leader_hint(server_factory: Any) -> None:
    server = server_factory([reply(ok=False, error="not_leader", leader=3)])
    with (
        PeerClient("127.0.0.1", server.port, timeout=5.0) as client,
        pytest.raises(Rejected) as info,
    ):
        client.write("k", "v")
    assert info.value.error == PeerErrorCode.NOT_LEADER
    assert info.value.leader == 3
    assert info.value.sent
    assert "not_leader" in str(info.value) and str(server.port) in str(info.value)


def test_connection_refused_is_definitely_not_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connects are refused
        with pytest.raises(ClientError) as info:
            PeerClient("127.0.0.1", port, timeout=2.0).write("k", "v")
    assert not info.value.sent
    assert info.value.op == "write"
    assert f"127.0.0.1:{port}" in str(info.value)


def test_silent_peer_times_out_with_unknown_outcome(server_factory: Any) -> None:
    server = server_factory([silence])
    with (
        PeerClient("127.0.0.1", server.port, timeout=0.3) as client,
        pytest.raises(ClientTimeout) as info,
    ):
        client.write("k", "v")
    assert info.value.sent
    assert "no reply" in str(info.value)


def test_close_before_reply_is_unknown_outcome(server_factory: Any) -> None:
    server = server_factory([lambda request: None])
    with (
        PeerClient("127.0.0.1", server.port, timeout=5.0) as client,
        pytest.raises(ClientError, match="closed") as info,
    ):
        client.status()
    assert info.value.sent and not isinstance(info.value, ClientTimeout)


@pytest.mark.parametrize(
    "reaction, why",
    [
        (lambda request: b"not json\n", "not JSON"),
        (lambda request: b"[1, 2]\n", "not a JSON object"),
        (reply(ok="yes"), "no boolean ok"),
        (lambda request: b'{"id": 99, "ok": true, "zxid": 1}\n', "reply id 99"),
        (reply(ok=True, zxid="12"), "zxid is not an integer"),
    ],
)
def test_garbage_replies_are_named(server_factory: Any, reaction: Reaction, why: str) -> None:
    server = server_factory([reaction])
    with (
        PeerClient("127.0.0.1", server.port, timeout=5.0) as client,
        pytest.raises(ClientError, match=why),
    ):
        client.write("k", "v")


def test_reconnects_after_an_error(server_factory: Any) -> None:
    first = server_factory([lambda request: None])
    client = PeerClient("127.0.0.1", first.port, timeout=5.0)
    with pytest.raises(ClientError):
        client.status()
    # Same client, next call: a fresh connection (the old one was dropped).
    second = server_factory([reply(ok=True, zxid=5)])
    client.port = second.port
    assert client.write("a", "b") == 5
    client.close()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="port"):
        PeerClient("127.0.0.1", 0)
    with pytest.raises(ValueError, match="timeout"):
        PeerClient("127.0.0.1", 80, timeout=0)
