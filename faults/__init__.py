"""Faults: fault plans as data, the nemesis that applies them, and an embedded
Toxiproxy-compatible server."""
