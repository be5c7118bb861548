"""Workload: client threads that write and read through the client proxies while faults
run, recording a Jepsen-style history in `history.jsonl`.

Each operation is an `invoke` followed by exactly one completion: `ok` (acknowledged,
with the zxid the leader gave it), `fail` (definitely not applied: refused by a peer
that is not the leader, or the connection never got the request out), or `info`
(unknown: timeout, connection lost after sending). As in Jepsen, a process whose
operation ended in `info` may still have it in flight, so the thread takes a new
process number for its next operation.

This module owns the threads and the history file; it knows nothing of faults.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.client import PeerClient
from harness.errors import ClientError, ClientTimeout, Rejected
from harness.events import EventWriter

# Errors a peer returns when it did not apply the write (safe to call `fail`).
DEFINITE_REFUSALS = frozenset({"not_leader", "not_serving", "bad_request"})


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadConfig:
    clients: int = 3
    rate: float = 50.0  # operations per second, all clients together
    read_fraction: float = 0.1
    keys: int = 8
    timeout_s: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clients < 1:
            raise ValueError(f"workload.clients must be >= 1, got {self.clients}")
        if self.rate <= 0:
            raise ValueError(f"workload.rate must be > 0, got {self.rate}")
        if not 0.0 <= self.read_fraction <= 1.0:
            raise ValueError(f"workload.read_fraction must be in [0, 1], got {self.read_fraction}")
        if self.keys < 1 or self.timeout_s <= 0:
            raise ValueError("workload.keys must be >= 1 and timeout_s > 0")


@dataclass(slots=True)
class WorkloadStats:
    invoked: int = 0
    ok: int = 0
    fail: int = 0
    info: int = 0


class Workload:
    """Client threads over `sids`; `address(sid)` gives the (host, port) to dial for a peer
    (the client proxy of that peer, so client links can be faulted too)."""

    def __init__(
        self,
        config: WorkloadConfig,
        *,
        sids: Sequence[int],
        address: Callable[[int], tuple[str, int]],
        history_path: Path,
    ) -> None:
        if not sids:
            raise ValueError("workload needs at least one peer")
        self.config = config
        self.sids = tuple(sids)
        self._address = address
        self._history = EventWriter(history_path)
        self._lock = threading.Lock()
        self._running = threading.Event()  # set: operations flow; clear: workload off
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_op = 0
        self._leader_hint: int | None = None
        self.stats = WorkloadStats()

    # --- control ----------------------------------------------------------------

    def start(self) -> None:
        self._running.set()
        for index in range(self.config.clients):
            thread = threading.Thread(
                target=self._client, args=(index,), name=f"workload-{index}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def set_enabled(self, on: bool) -> None:
        """Turn the flow of operations on or off (a fault plan's `workload` step)."""
        if on:
            self._running.set()
        else:
            self._running.clear()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._running.set()  # wake paused clients so they can see the stop
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._history.close()

    def __enter__(self) -> Workload:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def leader_hint(self) -> int | None:
        return self._leader_hint

    # --- one client thread ------------------------------------------------------

    def _client(self, index: int) -> None:
        rng = random.Random(self.config.seed * 1_000_003 + index)
        process = index
        clients: dict[int, PeerClient] = {}
        period = self.config.clients / self.config.rate
        next_at = time.monotonic() + rng.random() * period
        try:
            while not self._stopping.is_set():
                self._running.wait()
                if self._stopping.is_set():
                    break
                delay = next_at - time.monotonic()
                if delay > 0 and self._stopping.wait(delay):
                    break
                next_at = max(next_at + period, time.monotonic())
                sid = self._pick(rng)
                client = clients.get(sid)
                if client is None:
                    host, port = self._address(sid)
                    client = clients[sid] = PeerClient(host, port, self.config.timeout_s)
                key = f"k{rng.randrange(self.config.keys)}"
                if rng.random() < self.config.read_fraction:
                    unknown = self._read(client, process, sid, key)
                else:
                    unknown = self._write(client, process, sid, key)
                if unknown:
                    process += self.config.clients
        finally:
            for client in clients.values():
                client.close()

    def _pick(self, rng: random.Random) -> int:
        hint = self._leader_hint
        if hint is not None and hint in self.sids and rng.random() < 0.9:
            return hint
        return rng.choice(self.sids)

    def _invoke(self, process: int, sid: int, op: str, key: str) -> tuple[int, str | None]:
        """Log the invocation; a write's value is unique: its process and op id."""
        with self._lock:
            op_id = self._next_op
            self._next_op += 1
            self.stats.invoked += 1
            value = f"p{process}-op{op_id}" if op == "write" else None
            self._history.emit(
                "invoke", process=process, op=op, id=op_id, key=key, value=value, peer=sid
            )
        return op_id, value

    def _complete(self, kind: str, **fields: Any) -> None:
        with self._lock:
            setattr(self.stats, kind, getattr(self.stats, kind) + 1)
            self._history.emit(kind, **fields)

    def _write(self, client: PeerClient, process: int, sid: int, key: str) -> bool:
        op_id, value = self._invoke(process, sid, "write", key)
        assert value is not None
        base = {"process": process, "op": "write", "id": op_id, "key": key, "value": value}
        try:
            zxid = client.write(key, value)
        except ClientError as exc:
            return self._failed(exc, base)
        self._leader_hint = sid
        self._complete("ok", **base, zxid=zxid, peer=sid)
        return False

    def _read(self, client: PeerClient, process: int, sid: int, key: str) -> bool:
        op_id, _ = self._invoke(process, sid, "read", key)
        base = {"process": process, "op": "read", "id": op_id, "key": key}
        try:
            value, zxid = client.read(key)
        except ClientError as exc:
            return self._failed(exc, base)
        self._complete("ok", **base, value=value, zxid=zxid, peer=sid)
        return False

    def _failed(self, exc: ClientError, base: dict[str, Any]) -> bool:
        """Record the completion of a failed op; True when its outcome is unknown."""
        if isinstance(exc, Rejected):
            if exc.leader is not None:
                self._leader_hint = exc.leader
            if exc.error in DEFINITE_REFUSALS:
                self._complete("fail", **base, error=exc.error)
                return False
            self._complete("info", **base, error=exc.error)
            return True
        if isinstance(exc, ClientTimeout) or exc.sent:
            self._leader_hint = None
            self._complete("info", **base, error=exc.message)
            return True
        self._leader_hint = None
        self._complete("fail", **base, error=exc.message)
        return False
