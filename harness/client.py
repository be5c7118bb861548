"""The peers' client library: newline-delimited JSON requests over one TCP connection.

This module owns the client side of the peer's client protocol: one request per
line, replies in order, `id` echoed back. `PeerClient` is synchronous and blocking
with a timeout on every call (connect included); it is the adapter used by the
launcher, the workload and tests. It interprets nothing beyond the protocol: a
peer's `ok: false` becomes `Rejected` with the peer's error code, no reply in time
`ClientTimeout`, a broken or garbled connection `ClientError`. After any error the
connection is closed (replies could no longer be matched), and the next call
reconnects.
"""

from __future__ import annotations

import json
import socket
from enum import StrEnum
from types import TracebackType
from typing import Any

from harness.errors import ClientError, ClientTimeout, Rejected

MAX_REPLY_BYTES = 1 << 20  # a reply line longer than this is garbage, not a reply


class PeerErrorCode(StrEnum):
    """The `error` values a peer sends with `ok: false`."""

    NOT_LEADER = "not_leader"
    NOT_SERVING = "not_serving"
    TIMEOUT = "timeout"
    BAD_REQUEST = "bad_request"


class PeerClient:
    """A connection to one peer's client port.

    >>> with PeerClient("127.0.0.1", port, timeout=2.0) as client:
    ...     zxid = client.write("k", "v")
    ...     value, last = client.read("k")
    ...     client.status()["state"]
    """

    def __init__(self, host: str, port: int, timeout: float = 2.0) -> None:
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"PeerClient: port must be 1..65535, got {port!r}")
        if timeout <= 0:
            raise ValueError(f"PeerClient: timeout must be > 0, got {timeout!r}")
        self.host = host
        self.port = port
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._next_id = 1

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> PeerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer = b""

    # --- operations -------------------------------------------------------------

    def write(self, key: str, value: str) -> int:
        """Set key to value; returns the zxid the leader gave the write."""
        reply = self.request({"op": "write", "key": key, "value": value})
        return self._int_field(reply, "zxid", "write")

    def read(self, key: str) -> tuple[str | None, int]:
        """(value or None, zxid of the last txn this peer delivered)."""
        reply = self.request({"op": "read", "key": key})
        value = reply.get("value")
        if value is not None and not isinstance(value, str):
            raise self._garbage("read", f"value is not a string: {value!r}")
        return value, self._int_field(reply, "zxid", "read")

    def status(self) -> dict[str, Any]:
        """The peer's status object (sid, state, leader, round, epochs, zxids, serving)."""
        return self.request({"op": "status"})

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send one request (an `id` is added) and return its reply when `ok` is true."""
        op = str(body.get("op", "?"))
        request_id = self._next_id
        self._next_id += 1
        line = json.dumps({"id": request_id, **body}, separators=(",", ":")) + "\n"
        sock = self._connect(op)
        try:
            sock.sendall(line.encode("utf-8"))
        except TimeoutError:
            self.close()
            raise ClientTimeout(
                f"send timed out after {self.timeout}s", op=op, address=self.address, sent=True
            ) from None
        except OSError as exc:
            self.close()
            # A partial send may have reached the peer: the outcome is unknown.
            raise ClientError(
                f"send failed: {exc.strerror or exc}", op=op, address=self.address, sent=True
            ) from None
        reply = self._read_reply(op)
        if reply.get("id") != request_id:
            raise self._garbage(op, f"reply id {reply.get('id')!r}, expected {request_id}")
        if reply.get("ok") is True:
            return reply
        if reply.get("ok") is False:
            leader = reply.get("leader")
            raise Rejected(
                op=op,
                address=self.address,
                error=str(reply.get("error", "unknown")),
                leader=leader if isinstance(leader, int) and not isinstance(leader, bool) else None,
            )
        raise self._garbage(op, f"reply has no boolean ok: {reply!r}")

    # --- plumbing ---------------------------------------------------------------

    def _connect(self, op: str) -> socket.socket:
        if self._sock is not None:
            return self._sock
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except TimeoutError:
            raise ClientTimeout(
                f"connect timed out after {self.timeout}s",
                op=op,
                address=self.address,
                sent=False,
            ) from None
        except OSError as exc:
            raise ClientError(
                f"cannot connect: {exc.strerror or exc}", op=op, address=self.address, sent=False
            ) from None
        sock.settimeout(self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        return sock

    def _read_reply(self, op: str) -> dict[str, Any]:
        assert self._sock is not None
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_REPLY_BYTES:
                raise self._garbage(op, f"reply longer than {MAX_REPLY_BYTES} bytes")
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                self.close()
                raise ClientTimeout(
                    f"no reply within {self.timeout}s", op=op, address=self.address, sent=True
                ) from None
            except OSError as exc:
                self.close()
                raise ClientError(
                    f"receive failed: {exc.strerror or exc}",
                    op=op,
                    address=self.address,
                    sent=True,
                ) from None
            if not chunk:
                self.close()
                raise ClientError(
                    "connection closed before the reply", op=op, address=self.address, sent=True
                )
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            reply = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self._garbage(op, f"reply is not JSON ({exc})") from None
        if not isinstance(reply, dict):
            raise self._garbage(op, "reply is not a JSON object")
        return reply

    def _int_field(self, reply: dict[str, Any], name: str, op: str) -> int:
        value = reply.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._garbage(op, f"reply field {name} is not an integer: {value!r}")
        return value

    def _garbage(self, op: str, why: str) -> ClientError:
        self.close()
        return ClientError(f"bad reply: {why}", op=op, address=self.address, sent=True)
