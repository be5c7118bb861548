"""Cluster config: who the members are, where each peer listens and what it dials.

JSON shape (written by the launcher as `cluster.json`, read by `python -m peer`):

    {
      "version": 1,
      "timing": {"tick_ms": 100, ...},            # optional, or "profile": "fast"
      "members": [
        {"sid": 1, "role": "voter",
         "host": "127.0.0.1",                      # where this peer listens
         "election_port": 0, "quorum_port": 0, "client_port": 0,   # 0 = pick one
         "dial": {"2": {"election": "127.0.0.1:41001", "quorum": "127.0.0.1:41002"}, ...}}
      ]
    }

`dial[j]` is where peer i connects to reach peer j: through the proxy of link i->j
when a harness routes it, or j's own ports directly. Validation happens when the
config is built, and every error names the member and field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peer.domain import TIMING_PROFILES, Role, Timing


class ConfigError(Exception):
    """The cluster config is unusable; the message names the field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, where: str) -> Address:
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{where}: {text!r} is not host:port")
        return cls(host=host, port=int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Dial:
    election: Address
    quorum: Address


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    sid: int
    role: Role
    host: str
    election_port: int
    quorum_port: int
    client_port: int
    dial: Mapping[int, Dial]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    members: Mapping[int, Member]
    timing: Timing

    @property
    def voters(self) -> tuple[int, ...]:
        return tuple(sorted(s for s, m in self.members.items() if m.role is Role.VOTER))

    @property
    def roles(self) -> dict[int, Role]:
        return {sid: m.role for sid, m in self.members.items()}

    def member(self, sid: int) -> Member:
        try:
            return self.members[sid]
        except KeyError:
            raise ConfigError(
                f"sid {sid} is not a member (members: {sorted(self.members)})"
            ) from None

    def to_json(self) -> dict[str, Any]:
        timing = {name: getattr(self.timing, name) for name in Timing.__dataclass_fields__}
        return {
            "version": 1,
            "timing": timing,
            "members": [
                {
                    "sid": m.sid,
                    "role": m.role.value,
                    "host": m.host,
                    "election_port": m.election_port,
                    "quorum_port": m.quorum_port,
                    "client_port": m.client_port,
                    "dial": {
                        str(j): {"election": str(d.election), "quorum": str(d.quorum)}
                        for j, d in sorted(m.dial.items())
                    },
                }
                for m in sorted(self.members.values(), key=lambda m: m.sid)
            ],
        }


def _int(obj: Mapping[str, Any], name: str, where: str, *, low: int = 0) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{where}.{name}: expected an integer >= {low}, got {value!r}")
    return value


def _timing(raw: Any) -> Timing:
    if raw is None:
        return TIMING_PROFILES["fast"]
    if isinstance(raw, str):
        if raw not in TIMING_PROFILES:
            raise ConfigError(f"timing: unknown profile {raw!r} (known: {sorted(TIMING_PROFILES)})")
        return TIMING_PROFILES[raw]
    if not isinstance(raw, dict):
        raise ConfigError("timing: expected an object or a profile name")
    unknown = set(raw) - set(Timing.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"timing: unknown field(s) {sorted(unknown)}")
    try:
        return Timing(**raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def parse_config(raw: Any) -> ClusterConfig:
    """Build and validate a config from decoded JSON (pure)."""
    if not isinstance(raw, dict):
        raise ConfigError("config: expected a JSON object")
    if raw.get("version", 1) != 1:
        raise ConfigError(f"config.version: unsupported {raw.get('version')!r}")
    members_raw = raw.get("members")
    if not isinstance(members_raw, list) or not members_raw:
        raise ConfigError("config.members: expected a non-empty list")
    sids: list[int] = []
    for index, m in enumerate(members_raw):
        if not isinstance(m, dict):
            raise ConfigError(f"members[{index}]: expected an object")
        sids.append(_int(m, "sid", f"members[{index}]", low=1))
    if len(set(sids)) != len(sids):
        raise ConfigError(f"config.members: duplicate sid in {sids}")
    members: dict[int, Member] = {}
    for m, sid in zip(members_raw, sids, strict=True):
        where = f"member {sid}"
        role_raw = m.get("role", "voter")
        try:
            role = Role(role_raw)
        except ValueError:
            why = f"expected voter or observer, got {role_raw!r}"
            raise ConfigError(f"{where}.role: {why}") from None
        host = m.get("host", "127.0.0.1")
        if not isinstance(host, str) or not host:
            raise ConfigError(f"{where}.host: expected a host name")
        dial_raw = m.get("dial", {})
        if not isinstance(dial_raw, dict):
            raise ConfigError(f"{where}.dial: expected an object keyed by sid")
        dial: dict[int, Dial] = {}
        for key, addrs in dial_raw.items():
            if not str(key).isdigit() or int(key) not in sids:
                raise ConfigError(f"{where}.dial: {key!r} names no member (members: {sids})")
            if int(key) == sid:
                raise ConfigError(f"{where}.dial: a peer does not dial itself")
            if not isinstance(addrs, dict):
                raise ConfigError(f"{where}.dial.{key}: expected election and quorum addresses")
            for part in ("election", "quorum"):
                if not isinstance(addrs.get(part), str):
                    raise ConfigError(f"{where}.dial.{key}.{part}: missing host:port")
            dial[int(key)] = Dial(
                election=Address.parse(addrs["election"], f"{where}.dial.{key}.election"),
                quorum=Address.parse(addrs["quorum"], f"{where}.dial.{key}.quorum"),
            )
        members[sid] = Member(
            sid=sid,
            role=role,
            host=host,
            election_port=_int(m, "election_port", where) if "election_port" in m else 0,
            quorum_port=_int(m, "quorum_port", where) if "quorum_port" in m else 0,
            client_port=_int(m, "client_port", where) if "client_port" in m else 0,
            dial=dial,
        )
    if not any(m.role is Role.VOTER for m in members.values()):
        raise ConfigError("config.members: at least one voter is needed")
    return ClusterConfig(members=members, timing=_timing(raw.get("timing")))


def load_config(path: Path) -> ClusterConfig:
    """Read and validate a cluster.json (adapter: file I/O)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from None
    try:
        return parse_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
