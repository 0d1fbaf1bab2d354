"""Benchmarks: scripts printing JSON and a human line (see docs/benchmarks.md)."""
