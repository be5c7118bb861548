"""The harness's error root and its families.

Every error the harness raises derives from `HarnessError` and carries the context
needed to act on it in `__str__` (which peer, which address, what was awaited, the
tail of the logs), the way psutil's `NoSuchProcess` names its pid. Violations found
by the checker are data, never exceptions, so they do not live here.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Root of every harness error. `context` is appended to the message as `k=v`."""

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        if not self.context:
            return self.message
        details = ", ".join(f"{k}={v!r}" for k, v in self.context.items())
        return f"{self.message} ({details})"


class ProcessError(HarnessError):
    """Spawning, signalling or reaping a process failed."""


class ClusterError(HarnessError):
    """The cluster was misused (unknown sid, peer in the wrong state) or misbehaved."""


class WaitTimeout(ClusterError):
    """A wait reached its deadline; the message says what was awaited and shows evidence."""

    def __init__(self, awaited: str, timeout: float, evidence: str = "") -> None:
        super().__init__(f"timed out after {timeout:.1f}s waiting for {awaited}")
        self.awaited = awaited
        self.timeout = timeout
        self.evidence = evidence

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n{self.evidence}" if self.evidence else text


class ClientError(HarnessError):
    """A client request failed. `sent` tells whether the request may have reached the
    peer (True: its outcome is unknown; False: it certainly did not happen)."""

    def __init__(self, message: str, *, op: str, address: str, sent: bool) -> None:
        super().__init__(message, op=op, peer=address)
        self.op = op
        self.address = address
        self.sent = sent


class ClientTimeout(ClientError):
    """No reply within the client's timeout."""


class Rejected(ClientError):
    """The peer answered `ok: false`. `error` is the peer's code (not_leader,
    not_serving, timeout, bad_request); `leader` its hint, if any."""

    def __init__(self, *, op: str, address: str, error: str, leader: int | None) -> None:
        super().__init__(f"peer rejected {op}: {error}", op=op, address=address, sent=True)
        self.error = error
        self.leader = leader
        if leader is not None:
            self.context["leader"] = leader
