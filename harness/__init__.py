"""The harness: launcher, workload, checker, simulator, report, CLI and pytest plugin."""

# `peer` first: it installs the native core before any harness module is loaded
# (peer/native.py), so the compiled `harness.checker` and `harness.sim.*` can be used.
import peer  # noqa: F401
