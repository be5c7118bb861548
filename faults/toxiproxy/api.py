"""Toxiproxy 2.12's REST API: routes, request decoding, JSON shapes and error bodies.

This module owns the contract clients see: which route answers which method, the status
codes, the exact error messages (worded as Go's encoding/json words them), the key
order of every JSON object and the content types. It drives proxies through `Registry`
and never touches a socket itself; the HTTP framing lives in `httpwire`.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import struct
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

from faults.toxiproxy import toxics
from faults.toxiproxy.address import check_listen, parse_port, split_host_port
from faults.toxiproxy.errors import ApiError
from faults.toxiproxy.proxy import Connection, Proxy, Toxic

VERSION = "2.12.0"  # clients gate PATCH support on >= 2.6.0

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def _json(value: Any, status: int = 200) -> Response:
    return Response(status=status, body=dumps(value).encode(), content_type=JSON)


def _error(exc: ApiError) -> Response:
    # Go's http.Error: JSON text sent as text/plain, nosniff, trailing newline.
    body = dumps({"error": exc.message, "status": exc.status}) + "\n"
    return Response(
        status=exc.status,
        body=body.encode(),
        content_type=TEXT,
        headers=(("X-Content-Type-Options", "nosniff"),),
    )


NOT_FOUND = Response(
    status=404,
    body=b"404 page not found\n",
    content_type=TEXT,
    headers=(("X-Content-Type-Options", "nosniff"),),
)
BROWSER_BLOCKED = Response(
    status=403,
    body=b"User agent not allowed\n",
    content_type=TEXT,
    headers=(("X-Content-Type-Options", "nosniff"),),
)
METHOD_NOT_ALLOWED = Response(status=405)


class Float32:
    """A toxicity, serialized as Go serializes a float32 (1, 0.5, 0.1, 2.5)."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value

    def __str__(self) -> str:
        value = struct.unpack("f", struct.pack("f", self.value))[0]
        if value == 0:
            return "0"
        # The shortest decimal that reads back as the same float32, in Go's layout.
        for digits in range(1, 10):
            text = f"{value:.{digits}g}"
            if struct.unpack("f", struct.pack("f", float(text)))[0] == value:
                break
        exponent = math.floor(math.log10(abs(value)))
        if -7 < exponent < 21:
            text = f"{float(text):f}".rstrip("0").rstrip(".")
        return text


def dumps(value: Any) -> str:
    """Compact JSON in insertion order, with Float32 values written as Go does."""
    if isinstance(value, Float32):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value, separators=(",", ":"))


# --- request decoding (Go encoding/json behaviour) ---------------------------------


def decode_body(body: bytes) -> Any:
    """Decode the first JSON value of a body; trailing bytes are ignored, as in Go."""
    text = body.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if not text:
        raise ApiError(400, "bad request body: EOF")
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            raise ApiError(400, "bad request body: unexpected EOF") from exc
        char = text[exc.pos]
        raise ApiError(
            400, f"bad request body: invalid character {char!r} looking for beginning of value"
        ) from exc
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    return "array" if isinstance(value, list) else "object"


def _fields(value: Any, go_type: str) -> dict[str, Any]:
    """An object's fields with lower-cased keys (Go matches names case-insensitively)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(
            400,
            f"bad request body: json: cannot unmarshal {_kind(value)} "
            f"into Go value of type {go_type}",
        )
    return {key.lower(): item for key, item in value.items() if item is not None}


def _typed(fields: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = fields.get(key)
    if value is None:
        return None
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok:
        go = {str: "string", bool: "bool", float: "float32"}[kind]
        raise ApiError(
            400,
            f"bad request body: json: cannot unmarshal {_kind(value)} into Go struct field "
            f"{where}.{key} of type {go}",
        )
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyInput:
    name: str
    listen: str
    upstream: str
    enabled: bool


def _proxy_input(value: Any, go_type: str) -> tuple[dict[str, Any], ProxyInput]:
    fields = _fields(value, go_type)
    name = _typed(fields, "name", str, "Proxy") or ""
    listen = _typed(fields, "listen", str, "Proxy") or ""
    upstream = _typed(fields, "upstream", str, "Proxy") or ""
    enabled = _typed(fields, "enabled", bool, "Proxy")
    return fields, ProxyInput(
        name=name, listen=listen, upstream=upstream, enabled=True if enabled is None else enabled
    )


# --- the registry ------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class Metrics:
    """Byte counters per (proxy, listener, upstream, direction), added on close."""

    received: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    sent: dict[tuple[str, str, str, str], int] = field(default_factory=dict)


class Registry:
    """Every proxy of the server, and the operations the API performs on them."""

    def __init__(
        self,
        *,
        rng: random.Random,
        allow_non_loopback: bool,
        metrics_enabled: bool = False,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.rng = rng
        self.allow_non_loopback = allow_non_loopback
        self.metrics_enabled = metrics_enabled
        self.metrics = Metrics()
        self.proxies: dict[str, Proxy] = {}
        self.loop = loop

    # -- rendering --

    @staticmethod
    def toxic_json(toxic: Toxic) -> dict[str, Any]:
        return {
            "attributes": dict(toxic.attributes),
            "name": toxic.name,
            "type": str(toxic.type),
            "stream": toxic.stream,
            "toxicity": Float32(toxic.toxicity),
        }

    def proxy_json(self, proxy: Proxy) -> dict[str, Any]:
        return {
            "name": proxy.name,
            "listen": proxy.listen,
            "upstream": proxy.upstream,
            "enabled": proxy.enabled,
            "Logger": {},  # Toxiproxy serializes its logger by accident; kept for parity
            "toxics": [self.toxic_json(t) for t in proxy.ordered_toxics()],
        }

    def _get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise ApiError(404, "proxy not found")
        return proxy

    def _new_proxy(self, entry: ProxyInput) -> Proxy:
        return Proxy(
            name=entry.name,
            listen=entry.listen,
            upstream=entry.upstream,
            loop=self.loop,
            rng=self.rng,
            on_closed=self._count,
        )

    def _count(self, proxy: Proxy, conn: Connection) -> None:
        if not self.metrics_enabled:
            return
        for link in (conn.up, conn.down):
            if link is None:
                continue
            key = (proxy.name, proxy.listen, proxy.upstream, str(link.direction))
            self.metrics.received[key] = self.metrics.received.get(key, 0) + link.moved
            self.metrics.sent[key] = self.metrics.sent.get(key, 0) + link.moved

    # -- proxies --

    async def create(self, body: bytes) -> Response:
        _, entry = _proxy_input(decode_body(body), "toxiproxy.Proxy")
        if not entry.name:
            raise ApiError(400, "missing required field: name")
        if not entry.upstream:
            raise ApiError(400, "missing required field: upstream")
        if entry.name in self.proxies:
            raise ApiError(409, "proxy already exists")
        check_listen(entry.listen, allow_non_loopback=self.allow_non_loopback)
        proxy = self._new_proxy(entry)
        if entry.enabled:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return _json(self.proxy_json(proxy), 201)

    async def update(self, name: str, body: bytes) -> Response:
        proxy = self._get(name)
        fields = _fields(decode_body(body), "toxiproxy.Proxy")
        listen = _typed(fields, "listen", str, "Proxy")
        upstream = _typed(fields, "upstream", str, "Proxy")
        enabled = _typed(fields, "enabled", bool, "Proxy")
        new_listen = proxy.listen if listen is None else listen
        new_upstream = proxy.upstream if upstream is None else upstream
        want_enabled = proxy.enabled if enabled is None else enabled
        if new_listen != proxy.listen:
            check_listen(new_listen, allow_non_loopback=self.allow_non_loopback)
            # Toxiproxy resolves the new address first; a bad one is a 500.
            parse_port(new_listen, split_host_port(new_listen)[1])
        if new_listen != proxy.listen or new_upstream != proxy.upstream:
            proxy.stop()  # closes the listener and every live connection
            proxy.listen, proxy.upstream = new_listen, new_upstream
            if want_enabled:
                await proxy.start()
        elif want_enabled and not proxy.enabled:
            await proxy.start()
        elif not want_enabled and proxy.enabled:
            proxy.stop()
        return _json(self.proxy_json(proxy))

    def delete(self, name: str) -> Response:
        proxy = self._get(name)
        proxy.stop()
        del self.proxies[name]
        return Response(status=204)

    async def populate(self, body: bytes) -> Response:
        applied: list[Proxy] = []
        try:
            value = decode_body(body)
            if value is None:
                value = []
            if not isinstance(value, list):
                raise ApiError(
                    400,
                    f"bad request body: json: cannot unmarshal {_kind(value)} into Go value of "
                    'type []struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }',
                )
            entries = [_proxy_input(item, "toxiproxy.Proxy")[1] for item in value]
            for number, entry in enumerate(entries, start=1):
                if not entry.name:
                    raise ApiError(400, f"missing required field: name at proxy {number}")
                if not entry.upstream:
                    raise ApiError(400, f"missing required field: upstream at proxy {number}")
                try:
                    check_listen(entry.listen, allow_non_loopback=self.allow_non_loopback)
                except ApiError as exc:
                    raise ApiError(exc.status, f"{exc.message} at proxy {number}") from exc
            for entry in entries:
                applied.append(await self._add_or_replace(entry))
        except ApiError as exc:
            body_json = {
                "error": exc.message,
                "status": exc.status,
                "proxies": [self.proxy_json(p) for p in applied] if applied else None,
            }
            return _json(body_json, exc.status)
        proxies = [self.proxy_json(p) for p in applied] if applied else None
        return _json({"proxies": proxies}, 201)

    async def _add_or_replace(self, entry: ProxyInput) -> Proxy:
        existing = self.proxies.get(entry.name)
        if existing is not None:
            if self._same_address(existing, entry):
                return existing  # kept exactly: toxics and enabled state untouched
            existing.stop()
            del self.proxies[entry.name]
        proxy = self._new_proxy(entry)
        if entry.enabled:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    @staticmethod
    def _same_address(proxy: Proxy, entry: ProxyInput) -> bool:
        """Compare as Toxiproxy does: the entry's listen resolved, against the bound one."""
        if entry.upstream != proxy.upstream:
            return False
        if entry.listen == proxy.listen:
            return True
        try:
            host, port = split_host_port(entry.listen)
            have_host, have_port = split_host_port(proxy.listen)
        except ApiError:
            return False
        if port != have_port:
            return False
        same_host = host == have_host or (host == "localhost" and have_host == "127.0.0.1")
        return same_host

    async def reset(self) -> Response:
        for proxy in list(self.proxies.values()):
            if not proxy.enabled:
                await proxy.start()
            for toxic in list(proxy.toxics):
                proxy.remove_toxic(toxic.name)
        return Response(status=204)

    # -- toxics --

    def add_toxic(self, name: str, body: bytes) -> Response:
        proxy = self._get(name)
        fields = _fields(decode_body(body), "toxics.ToxicWrapper")
        toxic_name = _typed(fields, "name", str, "ToxicWrapper") or ""
        type_raw = _typed(fields, "type", str, "ToxicWrapper") or ""
        stream_raw = _typed(fields, "stream", str, "ToxicWrapper") or ""
        toxicity = _typed(fields, "toxicity", float, "ToxicWrapper")
        stream_raw = stream_raw or "downstream"
        direction = toxics.parse_stream(stream_raw)
        if direction is None:
            raise ApiError(400, "stream was invalid, can be either upstream or downstream")
        kind = toxics.parse_type(type_raw)
        if kind is None:
            raise ApiError(400, "invalid toxic type")
        toxic_name = toxic_name or f"{type_raw}_{stream_raw}"
        if proxy.find_toxic(toxic_name) is not None:
            raise ApiError(409, "toxic already exists")
        try:
            attributes = toxics.merge_attributes(
                kind,
                toxics.default_attributes(kind),
                fields.get("attributes"),
                field_prefix=f"{toxics.GO_STRUCT[kind]}.attributes",
            )
        except toxics.AttributeDecodeError as exc:
            raise ApiError(400, f"bad request body: {exc}") from exc
        toxic = Toxic(
            name=toxic_name,
            type=kind,
            stream=stream_raw,
            direction=direction,
            toxicity=1.0 if toxicity is None else float(toxicity),
            attributes=attributes,
        )
        proxy.add_toxic(toxic)
        return _json(self.toxic_json(toxic))

    def _get_toxic(self, proxy: Proxy, name: str) -> Toxic:
        toxic = proxy.find_toxic(name)
        if toxic is None:
            raise ApiError(404, "toxic not found")
        return toxic

    def update_toxic(self, name: str, toxic_name: str, body: bytes) -> Response:
        proxy = self._get(name)
        toxic = self._get_toxic(proxy, toxic_name)
        fields = _fields(decode_body(body), "struct { Attributes interface {}; Toxicity float32 }")
        toxicity = _typed(fields, "toxicity", float, "")
        try:
            attributes = toxics.merge_attributes(
                toxic.type, toxic.attributes, fields.get("attributes"), field_prefix=".attributes"
            )
        except toxics.AttributeDecodeError as exc:
            raise ApiError(400, f"bad request body: {exc}") from exc
        updated = replace(
            toxic,
            attributes=attributes,
            toxicity=toxic.toxicity if toxicity is None else float(toxicity),
        )
        proxy.update_toxic(updated)
        return _json(self.toxic_json(updated))

    def metrics_text(self) -> str:
        lines: list[str] = []
        for metric, table in (
            ("toxiproxy_proxy_received_bytes_total", self.metrics.received),
            ("toxiproxy_proxy_sent_bytes_total", self.metrics.sent),
        ):
            lines.append(f"# HELP {metric} Total bytes through the proxy (counted on close).")
            lines.append(f"# TYPE {metric} counter")
            for (proxy, listener, upstream, direction), value in sorted(table.items()):
                labels = (
                    f'direction="{direction}",listener="{listener}",'
                    f'proxy="{proxy}",upstream="{upstream}"'
                )
                lines.append(f"{metric}{{{labels}}} {value}")
        return "\n".join(lines) + "\n"

    # -- routing --

    async def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Response:
        """Answer one request. `headers` has lower-cased names."""
        if headers.get("user-agent", "").startswith("Mozilla/"):
            return BROWSER_BLOCKED
        path = unquote(target.split("?", 1)[0])
        parts = path.split("/")[1:] if path.startswith("/") else []
        try:
            return await self._route(method, parts, body)
        except ApiError as exc:
            return _error(exc)

    async def _route(self, method: str, parts: list[str], body: bytes) -> Response:
        if any(part == "" for part in parts):
            return NOT_FOUND  # exact paths only: no trailing slash, no empty segment
        match parts:
            case ["version"]:
                if method != "GET":
                    return METHOD_NOT_ALLOWED
                return Response(
                    status=200,
                    body=f'{{"version": "{VERSION}"}}\n'.encode(),
                    content_type="application/json;charset=utf-8",
                )
            case ["reset"]:
                return await self.reset() if method == "POST" else METHOD_NOT_ALLOWED
            case ["populate"]:
                return await self.populate(body) if method == "POST" else METHOD_NOT_ALLOWED
            case ["metrics"]:
                if not self.metrics_enabled:
                    return NOT_FOUND
                return Response(
                    status=200,
                    body=self.metrics_text().encode(),
                    content_type="text/plain; version=0.0.4; charset=utf-8",
                )
            case ["proxies"]:
                if method == "GET":
                    return _json(
                        {n: self.proxy_json(self.proxies[n]) for n in sorted(self.proxies)}
                    )
                return await self.create(body) if method == "POST" else METHOD_NOT_ALLOWED
            case ["proxies", name]:
                if method == "GET":
                    return _json(self.proxy_json(self._get(name)))
                if method in ("POST", "PATCH"):
                    return await self.update(name, body)
                return self.delete(name) if method == "DELETE" else METHOD_NOT_ALLOWED
            case ["proxies", name, "toxics"]:
                if method == "GET":
                    proxy = self._get(name)
                    return _json([self.toxic_json(t) for t in proxy.ordered_toxics()])
                return self.add_toxic(name, body) if method == "POST" else METHOD_NOT_ALLOWED
            case ["proxies", name, "toxics", toxic_name]:
                if method == "GET":
                    return _json(self.toxic_json(self._get_toxic(self._get(name), toxic_name)))
                if method in ("POST", "PATCH"):
                    return self.update_toxic(name, toxic_name, body)
                if method == "DELETE":
                    self._get_toxic(self._get(name), toxic_name)
                    self._get(name).remove_toxic(toxic_name)
                    return Response(status=204)
                return METHOD_NOT_ALLOWED
            case _:
                return NOT_FOUND

    def close_all(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
