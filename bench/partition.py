"""The primary's site cut off with its clients, and a hung primary, measured N times each
against a baseline in the same run (issue 14's benchmark).

The faults are the fault matrix's own rows (tests/faults/scenarios.toml), run by its
runner (mpp.faults.runner), so every figure is taken from outside mpp:

- site: `primary-partitioned-with-its-clients-etcd`. The primary, its agent and a client
  writing to it (from 127.0.0.6) are cut off from the replicas, mpp, the other agents and
  the 3-member etcd cluster. Measured: when the old primary turned read-only and when the
  new primary acknowledged its first write, both from the cut; acknowledged writes lost
  (the writer's and the primary side's client's); the most nodes writable at one 100 ms
  sample; whether the fence came first.
- baseline: the same row without agents, which is mpp before issue 13. Nothing fences the
  old primary while it is cut off.
- sites: `primary-site-cut-three-instances`. Three mpp instances, one per site and node,
  on the 3-member etcd with quorum of views; the primary's site is cut off with its
  agent, its client and the leading instance, so the lease moves before anyone promotes.
  Measured as the site row.
- hung: a SIGSTOP row (`--hung`; by default the matrix's row run with the servers' default
  slave_net_timeout where it exists, else `sigstop-primary`). Measured: the RTO, from the
  SIGSTOP to the new primary's first acknowledged write.

Targets (issue 14): fenced before the new primary takes writes in every run, new primary
writable <= 10 s, 0 lost, hung-primary RTO <= 3 s. Each target is reported as met or not,
never asserted here: a benchmark reports.

Prints one JSON document and one human line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agent import fmt, row_doc, scenario_run, summary  # noqa: E402
from bench.conditions import describe, finish, machine  # noqa: E402
from mpp.faults.runner import INJECTORS, Row  # noqa: E402
from mpp.faults.scenario import Scenario, load  # noqa: E402

SCENARIOS = ROOT / "tests" / "faults" / "scenarios.toml"
SITE_ROW = "primary-partitioned-with-its-clients-etcd"
SITES_ROW = "primary-site-cut-three-instances"
# the hung-primary row with the servers' default slave_net_timeout, when the matrix has it
HUNG_ROWS = ("sigstop-primary-default-net-timeout", "sigstop-primary")
TARGETS = {"writable_s": 10.0, "lost": 0, "hung_rto_s": 3.0}


def rows_by_name() -> dict[str, Scenario]:
    return {s.name: s for s in load(SCENARIOS, set(INJECTORS), {"db1", "db2", "db3"})}


def measured(name: str, scenario: Scenario) -> Scenario:
    """The row as measured, not judged: its expectations loosened so that a run always
    goes to its end (heal, settle); what it would have failed is in `problems`."""
    loose = dataclasses.replace(
        scenario.expect, rto=None, lost=10**9, max_writable=3, max_failovers=3
    )
    return dataclasses.replace(scenario, name=name, expect=loose)


def aggregate(rows: list[Row]) -> dict[str, Any]:
    return {
        "old_primary_read_only_s": summary([r.fenced for r in rows]),
        "new_primary_writable_s": summary([r.rto for r in rows]),
        "fenced_first_per_run": [
            r.fenced is not None and r.rto is not None and r.fenced < r.rto for r in rows
        ],
        "lost_per_run": [r.lost for r in rows],
        "max_writable_per_run": [r.max_writable for r in rows],
        "failovers_per_run": [r.failovers for r in rows],
        "rows": [row_doc(r) for r in rows],
    }


def targets(result: dict[str, Any]) -> dict[str, bool | None]:
    hung = result.get("hung")
    out: dict[str, bool | None] = {}
    for key, tail in (("site", ""), ("sites", "_three_instances")):
        site = result.get(key)
        if site is None:
            continue
        writable = site["new_primary_writable_s"]["max"]
        out["fenced_first_every_run" + tail] = all(site["fenced_first_per_run"])
        within = writable is not None and writable <= TARGETS["writable_s"]
        out["writable_within_10s" + tail] = within
        out["nothing_lost" + tail] = all(lost == 0 for lost in site["lost_per_run"])
        out["never_two_writable" + tail] = all(w == 1 for w in site["max_writable_per_run"])
    if hung is not None:
        rto = hung["new_primary_writable_s"]["max"]
        out["hung_rto_within_3s"] = rto is not None and rto <= TARGETS["hung_rto_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hung", default=None, help="the SIGSTOP row (default: see above)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the no-agent runs")
    parser.add_argument("--no-sites", action="store_true", help="skip the three-instance runs")
    parser.add_argument(
        "--only", default="", help="comma-separated plans to run: site, baseline, sites, hung"
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and configs here")
    args = parser.parse_args()
    rows = rows_by_name()
    hung_name = args.hung or next(n for n in HUNG_ROWS if n in rows)
    if hung_name not in rows:
        parser.error(f"--hung: no row {hung_name!r} in {SCENARIOS}")
    site = rows[SITE_ROW]
    plans = [("site", measured("bench-site", site))]
    if not args.no_baseline:
        baseline = dataclasses.replace(measured("bench-site-no-agents", site), agents=False)
        plans.append(("baseline", baseline))
    if not args.no_sites:
        plans.append(("sites", measured("bench-sites", rows[SITES_ROW])))
    plans.append(("hung", measured("bench-hung", rows[hung_name])))
    if args.only:
        wanted = set(args.only.split(","))
        plans = [(key, scenario) for key, scenario in plans if key in wanted]
        if not plans:
            parser.error(f"--only {args.only!r}: no such plan")
    work = args.keep or Path(tempfile.mkdtemp(prefix="mpp-bench-partition-"))
    work.mkdir(parents=True, exist_ok=True)
    host = machine()
    result: dict[str, Any] = {
        "bench": "partition",
        "runs": args.runs,
        "rows": {"site": SITE_ROW, "sites": SITES_ROW, "hung": hung_name},
    }
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the finally blocks still run
    try:
        for key, scenario in plans:
            done = []
            for i in range(args.runs):
                row = scenario_run(work, scenario, i)
                _progress(
                    f"{key} run {i + 1}/{args.runs}: fenced={row.fenced} rto={row.rto} "
                    f"lost={row.lost} max_writable={row.max_writable} {row.problems[:2]}"
                )
                done.append(row)
            result[key] = aggregate(done)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    site_w = (result.get("site") or {}).get("new_primary_writable_s", {}).get("p50")
    base_w = (result.get("baseline") or {}).get("new_primary_writable_s", {}).get("p50")
    result["ratio_writable_to_baseline"] = (
        round(site_w / base_w, 2) if site_w is not None and base_w else None
    )
    result["targets"] = targets(result)
    result["machine"] = finish(host)
    print(json.dumps(result, indent=2))
    print(human(result, hung_name))


def human(r: dict[str, Any], hung_name: str) -> str:
    parts = []
    labels = (
        ("site", "with agents"),
        ("baseline", "without agents"),
        ("sites", "with agents and three instances (the leader cut off too)"),
    )
    for key, label in labels:
        x = r.get(key)
        if x is None:
            continue
        first = sum(x["fenced_first_per_run"])
        parts.append(
            f"site cut {label}: old primary read-only {fmt(x['old_primary_read_only_s'])}, "
            f"new primary writable {fmt(x['new_primary_writable_s'])} from the cut, fenced "
            f"first {first}/{len(x['fenced_first_per_run'])}, lost {x['lost_per_run']}, "
            f"max writable {x['max_writable_per_run']}"
        )
    if r.get("ratio_writable_to_baseline") is not None:
        parts.append(f"writable {r['ratio_writable_to_baseline']}x the baseline's time")
    hung = r.get("hung")
    if hung is not None:
        parts.append(f"hung primary ({hung_name}): RTO {fmt(hung['new_primary_writable_s'])}")
    met = ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in r["targets"].items())
    own = (
        f"{r['runs']} runs each; the fault matrix's setup (mpp with semi_sync = true, interval "
        "1 s, nodes started read-only; the site row on a 3-member etcd, fence_ttl 3 s); "
        f"targets: {met}"
    )
    return "partition: " + "; ".join(parts) + describe(own, r["machine"])


def _progress(line: str) -> None:
    print(f"# {line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
