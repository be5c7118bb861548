"""The harness: launcher, workload, checker, simulator, report, CLI and pytest plugin."""
