"""Plan files: the file adapter of the pure `faults.plan` (which parses, validates and
formats plans from and to text, and touches no file itself)."""

from __future__ import annotations

from pathlib import Path

from faults.errors import PlanError
from faults.plan import Plan, format_plan, plan_from_text, validate_plan


def load_plan(path: Path) -> Plan:
    """Read and validate a plan.json (adapter: file I/O)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(f"cannot read {path} ({exc.strerror})", field="plan") from None
    return plan_from_text(text, str(path))


def save_plan(plan: Plan, path: Path) -> None:
    """Validate and write `format_plan(plan)` plus a newline (adapter: file I/O)."""
    validate_plan(plan)
    path.write_text(format_plan(plan) + "\n", encoding="utf-8")
