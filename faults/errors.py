"""The faults package's error root and its families.

Every error raised by `faults` (plans, topology, the nemesis, the embedded proxy, disk
faults) derives from `FaultError` and carries what is needed to act on it in `__str__`
(which step, which field, which peer or file). Nothing here does I/O.
"""

from __future__ import annotations


class FaultError(Exception):
    """Root of every faults error. `context` is appended to the message as `k=v`."""

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        if not self.context:
            return self.message
        details = ", ".join(f"{k}={v!r}" for k, v in self.context.items())
        return f"{self.message} ({details})"


class PlanError(FaultError):
    """A fault plan (or a request to generate one) is unusable.

    `step` is the index of the offending step (None for plan-level fields) and `field`
    the JSON field at fault, so `str()` reads like
    `plan step 3 (restart), field 'target': peer 2 is running, not down`."""

    def __init__(self, why: str, *, field: str, step: int | None = None, what: str = "") -> None:
        where = "plan" if step is None else f"plan step {step}" + (f" ({what})" if what else "")
        super().__init__(f"{where}, field {field!r}: {why}")
        self.why = why
        self.field = field
        self.step = step
        self.what = what
