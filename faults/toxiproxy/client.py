"""A small typed client for the Toxiproxy 2.x REST API (ours or a real toxiproxy-server).

This module owns talking to a Toxiproxy server from the harness: every call has a
timeout, every error reply becomes a `ToxiproxyError` carrying the status and the
server's message, and replies become frozen `Proxy`/`Toxic` values. It uses only the
documented API (PATCH for updates, `/populate` for bulk), so it works unchanged against
toxiproxy-server >= 2.6. It holds no global state: each client has its own URL.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from faults.toxiproxy.errors import ToxiproxyError

__all__ = ["Proxy", "Toxic", "ToxiproxyClient", "ToxiproxyError"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Toxic:
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: Mapping[str, int]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Toxic:
        return cls(
            name=str(data["name"]),
            type=str(data["type"]),
            stream=str(data["stream"]),
            toxicity=float(data["toxicity"]),
            attributes=dict(data.get("attributes") or {}),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Proxy:
    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: tuple[Toxic, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Proxy:
        return cls(
            name=str(data["name"]),
            listen=str(data["listen"]),
            upstream=str(data["upstream"]),
            enabled=bool(data["enabled"]),
            toxics=tuple(Toxic.from_json(t) for t in data.get("toxics") or ()),
        )

    @property
    def port(self) -> int:
        """The listen port (after start the server reports the bound port)."""
        return int(self.listen.rsplit(":", 1)[1])


class ToxiproxyClient:
    """Typed calls to one Toxiproxy server, e.g. `ToxiproxyClient("http://127.0.0.1:8474")`."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        if "://" not in url:
            url = "http://" + url  # as the Go client does for TOXIPROXY_URL
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"not a Toxiproxy URL: {url!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("User-Agent", "quorum-chaos-toxiproxy-client")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        where = f"{method} {self.url}{path}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            message = raw.decode(errors="replace").strip()
            with contextlib.suppress(ValueError, KeyError, TypeError):
                message = str(json.loads(raw)["error"])
            raise ToxiproxyError(exc.code, message, url=where) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ToxiproxyError(0, str(reason), url=where) from exc
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ToxiproxyError(0, f"reply is not JSON: {raw[:200]!r}", url=where) from exc

    @staticmethod
    def _quote(name: str) -> str:
        return urllib.parse.quote(name, safe="")

    def version(self) -> str:
        reply = self._call("GET", "/version")
        return str(reply["version"]) if isinstance(reply, dict) else str(reply)

    def proxies(self) -> dict[str, Proxy]:
        reply = self._call("GET", "/proxies")
        return {name: Proxy.from_json(data) for name, data in reply.items()}

    def proxy(self, name: str) -> Proxy:
        return Proxy.from_json(self._call("GET", f"/proxies/{self._quote(name)}"))

    def create_proxy(self, name: str, listen: str, upstream: str, enabled: bool = True) -> Proxy:
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return Proxy.from_json(self._call("POST", "/proxies", body))

    def update_proxy(
        self,
        name: str,
        *,
        listen: str | None = None,
        upstream: str | None = None,
        enabled: bool | None = None,
    ) -> Proxy:
        body: dict[str, Any] = {}
        if listen is not None:
            body["listen"] = listen
        if upstream is not None:
            body["upstream"] = upstream
        if enabled is not None:
            body["enabled"] = enabled
        return Proxy.from_json(self._call("PATCH", f"/proxies/{self._quote(name)}", body))

    def delete_proxy(self, name: str) -> None:
        self._call("DELETE", f"/proxies/{self._quote(name)}")

    def populate(self, proxies: Sequence[Mapping[str, Any]]) -> list[Proxy]:
        reply = self._call("POST", "/populate", [dict(p) for p in proxies])
        return [Proxy.from_json(p) for p in reply.get("proxies") or ()]

    def add_toxic(
        self,
        proxy: str,
        *,
        type: str,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        attributes: Mapping[str, int] | None = None,
    ) -> Toxic:
        body: dict[str, Any] = {
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": dict(attributes or {}),
        }
        if name is not None:
            body["name"] = name
        return Toxic.from_json(self._call("POST", f"/proxies/{self._quote(proxy)}/toxics", body))

    def update_toxic(
        self,
        proxy: str,
        name: str,
        *,
        toxicity: float | None = None,
        attributes: Mapping[str, int] | None = None,
    ) -> Toxic:
        body: dict[str, Any] = {}
        if toxicity is not None:
            body["toxicity"] = toxicity
        if attributes is not None:
            body["attributes"] = dict(attributes)
        path = f"/proxies/{self._quote(proxy)}/toxics/{self._quote(name)}"
        return Toxic.from_json(self._call("PATCH", path, body))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{self._quote(proxy)}/toxics/{self._quote(name)}")

    def toxics(self, proxy: str) -> list[Toxic]:
        return [
            Toxic.from_json(t) for t in self._call("GET", f"/proxies/{self._quote(proxy)}/toxics")
        ]

    def reset(self) -> None:
        self._call("POST", "/reset")
