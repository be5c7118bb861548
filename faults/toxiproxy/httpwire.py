"""A small HTTP/1.1 server on asyncio streams, enough for Toxiproxy's API clients.

This module owns HTTP framing only: request line, headers, a body by Content-Length or
chunked encoding, persistent connections, and writing a `Response` with the headers Go's
net/http sends. What a request means is `api`'s business. Timeouts follow the real
server: 15 s to read a request, 60 s idle between requests.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import logging
import os
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from faults.toxiproxy.api import Response

log = logging.getLogger("faults.toxiproxy.http")

READ_TIMEOUT = 15.0
IDLE_TIMEOUT = 60.0
MAX_BODY = 16 << 20

Handler = Callable[[str, str, dict[str, str], bytes], Awaitable[Response]]

_ids = itertools.count()
_ID_PREFIX = os.urandom(6).hex()


class BadRequest(Exception):
    """The client sent something that is not HTTP/1.x we can parse."""


def _request_id() -> str:
    return f"{_ID_PREFIX}{next(_ids):08x}"


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = await reader.readline()
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise BadRequest(f"bad chunk size {size_line!r}") from exc
            if size == 0:
                while (await reader.readline()).strip():
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise BadRequest("request body too large")
            chunks.append(await reader.readexactly(size))
            await reader.readline()
    length_text = headers.get("content-length", "0") or "0"
    if not length_text.isdigit():
        raise BadRequest(f"bad Content-Length {length_text!r}")
    length = int(length_text)
    if length > MAX_BODY:
        raise BadRequest("request body too large")
    return await reader.readexactly(length) if length else b""


def encode_response(response: Response, *, keep_alive: bool) -> bytes:
    reason = HTTPStatus(response.status).phrase
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    if response.content_type is not None:
        lines.append(f"Content-Type: {response.content_type}")
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    lines.append(f"X-Toxiproxy-Request-Id: {_request_id()}")
    lines.append(f"Date: {email.utils.formatdate(usegmt=True)}")
    if response.status != 204:
        lines.append(f"Content-Length: {len(response.body)}")
    if not keep_alive:
        lines.append("Connection: close")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("latin-1") + (b"" if response.status == 204 else response.body)


async def serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler
) -> None:
    """Serve requests on one connection until the client closes or a timeout."""
    try:
        first = True
        while True:
            try:
                line = await asyncio.wait_for(
                    reader.readline(), IDLE_TIMEOUT if not first else READ_TIMEOUT
                )
                first = False
                if not line:
                    return
                if not line.strip():
                    continue  # tolerate a stray CRLF between requests
                method, target, version = _parse_request_line(line)
                headers = await asyncio.wait_for(_read_headers(reader), READ_TIMEOUT)
                body = await asyncio.wait_for(_read_body(reader, headers), READ_TIMEOUT)
            except (BadRequest, asyncio.IncompleteReadError, ValueError) as exc:
                log.debug("bad request: %s", exc)
                writer.write(
                    encode_response(
                        Response(
                            status=400,
                            body=b"400 Bad Request",
                            content_type="text/plain; charset=utf-8",
                        ),
                        keep_alive=False,
                    )
                )
                await writer.drain()
                return
            except TimeoutError:
                return
            connection = headers.get("connection", "").lower()
            keep_alive = (version == "HTTP/1.1" and connection != "close") or (
                connection == "keep-alive"
            )
            response = await handler(method, target, headers, body)
            log.debug("%s %s -> %d", method, target, response.status)
            writer.write(encode_response(response, keep_alive=keep_alive))
            await writer.drain()
            if not keep_alive:
                return
    except (ConnectionError, OSError):
        return
    finally:
        writer.close()


def _parse_request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.decode("latin-1").strip().split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"bad request line {line[:100]!r}")
    return parts[0], parts[1], parts[2]


async def _read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(200):
        line = await reader.readline()
        if not line:
            raise BadRequest("connection closed inside the headers")
        text = line.decode("latin-1").rstrip("\r\n")
        if not text:
            return headers
        name, sep, value = text.partition(":")
        if not sep:
            raise BadRequest(f"bad header line {text[:100]!r}")
        headers[name.strip().lower()] = value.strip()
    raise BadRequest("too many header lines")
