"""The one percentile the benchmarks report, so every script's p50/p95/p99 means the same."""

from __future__ import annotations


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of the measured values: always a real sample."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
