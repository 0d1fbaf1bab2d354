"""`mpp nagios`: pool documents in, one Nagios/monitoring-plugins status line out (pure).

Follows the plugin guidelines: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; one line of
text, then `|` and performance data (`'label'=value[UOM];warn;crit;min;max`).

- CRITICAL: a pool has no ACTIVE node, a node is FAILED (or at status FAIL), or the state
  is stale (mpp is not polling: nothing would fail over).
- WARNING: a node has bad polls (status OK INFO/WARN/CRIT through `req`). The OK INFO that
  only marks a state change (req 0) is not a warning: it is news, not trouble.
- UNKNOWN: no state yet (the pool was never polled) or nothing to report on.

With several pools the worst wins, in the plugins' order CRITICAL > WARNING > UNKNOWN > OK.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
LABEL = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
_RANK = {OK: 0, UNKNOWN: 1, WARNING: 2, CRITICAL: 3}


@dataclass(frozen=True)
class Limits:
    fail_point: int = 4
    max_lag: float = 10.0


def worst(codes: Sequence[int]) -> int:
    return max(codes, key=_RANK.__getitem__, default=UNKNOWN)


def _age(updated_at: str | None, now: float) -> float | None:
    if not updated_at:
        return None
    return now - dt.datetime.fromisoformat(updated_at).timestamp()


def _pool(doc: Mapping[str, Any], now: float, stale_after: float) -> tuple[int, str]:
    name = doc["name"]
    nodes = doc["nodes"]
    if doc["status"] == "UNKNOWN":
        return UNKNOWN, f"{name}: no state yet (has `mpp run` polled it?)"
    problems: list[str] = []
    code = OK
    age = _age(doc.get("updated_at"), now)
    if age is not None and age > stale_after:
        code = CRITICAL
        problems.append(f"state is {age:.0f}s old (is `mpp run` running?)")
    active = [n["name"] for n in nodes if n["state"] == "ACTIVE"]
    if not active:
        code = CRITICAL
        problems.append("no ACTIVE node")
    for n in nodes:
        if n["state"].startswith("FAILED") or n["status"] == "FAIL":
            code = CRITICAL
            problems.append(f"{n['name']} {n['state']} ({n['status']})")
        elif n["requests"] > 0:
            code = worst([code, WARNING])
            problems.append(f"{n['name']} {n['status']} ({n['requests']} bad polls)")
    if problems:
        return code, f"{name}: " + ", ".join(problems)
    standby = sum(1 for n in nodes if n["state"] == "STANDBY")
    return OK, f"{name}: ACTIVE {', '.join(active)}, {standby} STANDBY"


def _perfdata(doc: Mapping[str, Any], limits: Limits) -> list[str]:
    out: list[str] = []
    for n in doc["nodes"]:
        label = f"{doc['name']}/{n['name']}"
        out.append(f"'{label} req'={n['requests']};1;{limits.fail_point};0;")
        lag = "U" if n["lag"] is None else f"{n['lag']}s"
        out.append(f"'{label} lag'={lag};{limits.max_lag:g};;0;")
    return out


def evaluate(
    pools: Sequence[Mapping[str, Any]],
    now: float,
    stale_after: float,
    limits: Mapping[str, Limits] | None = None,
) -> tuple[int, str]:
    """(exit code, the line) for pool documents as `mpp status --json` gives them."""
    if not pools:
        return UNKNOWN, "MPP UNKNOWN - no pool to report on"
    results = [_pool(p, now, stale_after) for p in pools]
    code = worst([c for c, _ in results])
    # the pools in trouble first, so a truncated line still shows the reason
    ordered = sorted(results, key=lambda r: -_RANK[r[0]])
    text = "; ".join(t for _, t in ordered)
    perf: list[str] = []
    for p in pools:
        perf += _perfdata(p, (limits or {}).get(p["name"], Limits()))
    return code, f"MPP {LABEL[code]} - {text} | {' '.join(perf)}"
