"""Errors of the embedded Toxiproxy package, under one root.

This module owns the exception types only. `ToxiproxyFault` is the root: the server
raises `ApiError` for a request Toxiproxy would refuse (its status and message are what
goes on the wire), `UsageError` for bad command-line input; the client raises
`ToxiproxyError` for an error reply or an unreachable server; `process` raises
`SpawnError` when the server process does not come up.

`ToxiproxyFault` derives from `faults.errors.FaultError`, the faults package's one root,
so `except FaultError` sees proxy errors too. The subclasses keep their own `__str__`
(the wire message, the URL) and their `args` of `(status, message)`.
"""

from __future__ import annotations

from faults.errors import FaultError


class ToxiproxyFault(FaultError):
    """Root of every error raised by `faults.toxiproxy`."""


class ApiError(ToxiproxyFault):
    """A request the server refuses: `status` and `message` are sent as Toxiproxy does."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, status=status)
        self.args = (status, message)
        self.status = status

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}"


class UsageError(ToxiproxyFault):
    """Bad command-line input or configuration file (named in the message)."""


class ToxiproxyError(ToxiproxyFault):
    """An error reply from a Toxiproxy server (or `status` 0: it could not be reached)."""

    def __init__(self, status: int, message: str, *, url: str = "") -> None:
        super().__init__(message, status=status, url=url)
        self.args = (status, message)
        self.status = status
        self.url = url

    def __str__(self) -> str:
        where = f" from {self.url}" if self.url else ""
        if self.status == 0:
            return f"toxiproxy unreachable{where}: {self.message}"
        return f"toxiproxy error {self.status}{where}: {self.message}"


class SpawnError(ToxiproxyFault):
    """The server process did not start or did not announce its port in time."""
