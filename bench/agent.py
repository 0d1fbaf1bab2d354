"""What the node agent buys, measured against the same faults without it, in one run.

Four measures, each on fresh 3-node primary-replica sandboxes with semi-sync (N runs each,
default 5), all from the fault harness (mpp.faults) so that they are taken from outside
mpp:

- restart: kill -9 the primary's mysqld under its agent (watch mode, the sandbox's own
  node's mariadbd as its `start`), until it accepts connections again. Beside it, in the
  same sandbox: the harness's own restart (sandbox.start_node once the kill has returned,
  no agent). Not a floor: the agent may start the new mariadbd while the kill is still
  waiting for the old one's last threads, the harness only after.
- exhausted: three kills under the agent (retry_limit 2): the first acknowledged write
  after the last kill (the new primary, once mpp fails over on the agent's "gave up").
- partition: the primary, its agent and a client writing to it (127.0.0.6) cut off from
  everything else (mpp.faults.partition): when the old primary turned read-only and when
  the new one acknowledged its first write, both from the cut, and the client's and the
  writer's acknowledged writes lost.
- baseline, the same faults without agents: the failover RTO of a kill -9 (what the local
  restart competes with), and the partition (the old primary never turns read-only while
  it is cut off: mpp cannot reach it to fence it).

The agent's fence keys (`store`, `fence_ttl`, `peers`, `source_address`) are written only
when this checkout's agent config accepts them (checked with its own loader); before that,
the partition with agents is reported as not measurable, and the restart and exhausted
measures run with the keys the agent knows.

Prints one JSON document and one human line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.conditions import describe, finish, machine  # noqa: E402
from mpp import sandbox  # noqa: E402
from mpp.config.agent import load_agent  # noqa: E402
from mpp.config.values import ConfigError  # noqa: E402
from mpp.faults import injectors  # noqa: E402
from mpp.faults.agents import Agents, FenceKeys  # noqa: E402
from mpp.faults.cluster import conditions  # noqa: E402
from mpp.faults.cluster import describe as describe_servers  # noqa: E402
from mpp.faults.partition import CLIENT_SOURCE  # noqa: E402
from mpp.faults.runner import PORTS_PER_SCENARIO, Row, run_scenario  # noqa: E402
from mpp.faults.scenario import Expect, Scenario, Step  # noqa: E402
from mpp.faults.watchers import poll_until  # noqa: E402
from mpp.sandbox.sessions import accepts_connections  # noqa: E402
from tests.ports import session_ports  # noqa: E402

MEASURES = ("restart", "exhausted", "partition", "baseline")
FENCE_TTL = "3s"


def summary(values: list[float | None]) -> dict[str, Any]:
    got = [v for v in values if v is not None]
    return {
        "n": len(got),
        "of": len(values),
        "p50": round(statistics.median(got), 3) if got else None,
        "max": round(max(got), 3) if got else None,
    }


def fmt(s: dict[str, Any]) -> str:
    if s["p50"] is None:
        return f"- (0/{s['of']})"
    return f"{s['p50']:.2f} s (max {s['max']:.2f}, {s['n']}/{s['of']})"


def fence_supported(work: Path) -> bool:
    """Whether this checkout's agent accepts the fence keys (its own loader says)."""
    d = work / "probe-config"
    d.mkdir(parents=True, exist_ok=True)
    path = d / "agent.toml"
    keys = FenceKeys("sqlite:///tmp/x.db", FENCE_TTL, ("127.0.0.1:1",), CLIENT_SOURCE)
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.as_keys().items())
    path.write_text(
        f'node = "db1"\n{lines}[mysqld]\npid_file = "x.pid"\nstart = ["true"]\n'
        '[probe]\naddress = "127.0.0.1:3306"\nuser = "mpp"\npassword_file = "x.password"\n'
    )
    try:
        load_agent(path)
    except ConfigError as err:
        _progress(f"the agent's config refuses the fence keys: {err}")
        return False
    return True


# --------------------------------------------------------------------------- restart


def restart_run(work: Path, i: int, fence: bool) -> dict[str, Any]:
    """kill -9 under the agent until accepting; then the harness's own restart beside it."""
    d = work / f"restart-{i}"
    base = session_ports().block(3)
    out: dict[str, Any] = {"run": i}
    agents: Agents | None = None
    try:
        sandbox.up(d, nodes=3, base_port=base, topology="primary-replica")
        port = base
        if i == 0:
            out["conditions"] = conditions(d)
        fences = {}
        if fence:
            store = f"sqlite://{d.resolve()}/state.db"
            fences = {n.name: FenceKeys(store, FENCE_TTL) for n in sandbox.status(d)}
        agents = Agents(d, work / f"restart-{i}.agents", fence=fences)
        agents.start()
        out["agent_restart_s"] = _kill_until_back(d, port, restart=None)
        agents.stop()
        agents = None
        out["harness_restart_s"] = _kill_until_back(
            d, port, restart=lambda: sandbox.start_node(d, "db1")
        )
    except Exception as err:  # a run that cannot be measured says why, the others go on
        out["error"] = f"{type(err).__name__}: {err}"
    finally:
        if agents is not None:
            agents.stop()
        sandbox.destroy(d)
    return out


def _kill_until_back(d: Path, port: int, restart: Callable[[], object] | None) -> float:
    """Seconds from kill -9 of db1 to a root login on it again (restarted by `restart`,
    or by whoever supervises it)."""
    killed = time.monotonic()
    injectors.kill(d, "db1")
    if restart is not None:
        restart()
    back = poll_until(lambda: accepts_connections(port, sandbox.ROOT_PASSWORD) or None, 30)
    if not back:
        raise TimeoutError("db1 not accepting connections 30 s after the kill")
    return round(time.monotonic() - killed, 3)


# --------------------------------------------------------------------------- scenarios


def _scenario(name: str, steps: tuple[Step, ...], observe: float, **keys: Any) -> Scenario:
    """A scenario measured, not judged: its expectations are the loosest that still run
    the whole (heal, settle), so a row's problems are reported beside its figures."""
    return Scenario(
        name=name,
        what=name,
        steps=steps,
        expect=Expect(failover=True, max_failovers=3, lost=10**9, max_writable=3),
        observe=observe,
        **keys,
    )


def scenario_run(work: Path, scenario: Scenario, i: int) -> Row:
    root = work / f"{scenario.name}-{i}"
    root.mkdir(parents=True, exist_ok=True)
    return run_scenario(scenario, root, session_ports().block(PORTS_PER_SCENARIO))


def kill_baseline() -> Scenario:
    return _scenario("baseline-kill", (Step(1.0, "kill", "primary"),), 6.0)


def exhausted(fence: bool) -> Scenario:
    return _scenario(
        "exhausted",
        (Step(1.0, "kill_supervised", "primary", repeat=3, every=3.0),),
        14.0,
        agents=True,
        agent={"retry_limit": 2, "retry_interval": "5m", "fence": fence, "fence_ttl": FENCE_TTL},
    )


def partition(agents: bool) -> Scenario:
    cut = Step(1.0, "isolate_primary", "primary", options={"client_source": CLIENT_SOURCE})
    keys: dict[str, Any] = {"client_source": CLIENT_SOURCE}
    if agents:
        keys |= {"agents": True, "agent": {"fence_ttl": FENCE_TTL}}
    return _scenario("partition" + ("" if agents else "-no-agents"), (cut,), 12.0, **keys)


def row_doc(row: Row) -> dict[str, Any]:
    doc = dataclasses.asdict(row)
    doc["problems"] = row.problems[:6]
    return doc


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--only", default=",".join(MEASURES), help=f"comma-separated, of {', '.join(MEASURES)}"
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and configs here")
    args = parser.parse_args()
    only = [m for m in args.only.split(",") if m]
    unknown = sorted(set(only) - set(MEASURES))
    if unknown:
        parser.error(f"--only: unknown {unknown}; choose from {', '.join(MEASURES)}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="mpp-bench-agent-"))
    work.mkdir(parents=True, exist_ok=True)
    host = machine()
    fence = fence_supported(work)
    result: dict[str, Any] = {"bench": "agent", "runs": args.runs, "fence_keys": fence}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the finally blocks still run
    say = _progress
    try:
        if "restart" in only:
            rows = [restart_run(work, i, fence) for i in range(args.runs)]
            for r in rows:
                say(f"restart run {r['run'] + 1}: {r}")
            result["restart"] = {
                "agent_restart_s": summary([r.get("agent_restart_s") for r in rows]),
                "harness_restart_s": summary([r.get("harness_restart_s") for r in rows]),
                "conditions": next((r["conditions"] for r in rows if "conditions" in r), None),
                "rows": rows,
            }
        plans: list[tuple[str, Scenario]] = []
        if "baseline" in only:
            plans += [("baseline_kill", kill_baseline()), ("baseline_partition", partition(False))]
        if "exhausted" in only:
            plans.append(("exhausted", exhausted(fence)))
        if "partition" in only:
            if fence:
                plans.append(("partition", partition(True)))
            else:
                result["partition"] = {"not_measured": "the agent does not know the fence keys"}
        for key, scenario in plans:
            rows_ = []
            for i in range(args.runs):
                row = scenario_run(work, scenario, i)
                say(
                    f"{key} run {i + 1}: rto={row.rto} fenced={row.fenced} "
                    f"after_last={row.after_last} lost={row.lost} failovers={row.failovers} "
                    f"max_writable={row.max_writable} {row.problems[:2]}"
                )
                rows_.append(row)
            result[key] = _aggregate(key, rows_)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    result["machine"] = finish(host)
    print(json.dumps(result, indent=2))
    print(human(result))


def _aggregate(key: str, rows: list[Row]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "new_primary_writable_s": summary([r.rto for r in rows]),  # from the first fault
        "lost_per_run": [r.lost for r in rows],
        "max_writable_per_run": [r.max_writable for r in rows],
        "failovers_per_run": [r.failovers for r in rows],
        "rows": [row_doc(r) for r in rows],
    }
    if key.startswith("baseline_partition") or key == "partition":
        out["old_primary_read_only_s"] = summary([r.fenced for r in rows])
        out["old_primary_last_writable_s"] = summary([r.writable_until for r in rows])
    if key == "exhausted":
        out["writable_after_last_kill_s"] = summary([r.after_last for r in rows])
        # a failover before the third kill is mpp's usual one, not the "gave up" path
        out["failed_over_before_last_kill"] = [
            r.rto is not None and bool(r.injected_at) and r.rto < r.injected_at[-1] for r in rows
        ]
    return out


def human(r: dict[str, Any]) -> str:
    parts = []
    if "restart" in r:
        x = r["restart"]
        parts.append(
            f"kill -9 -> accepting again: agent restart {fmt(x['agent_restart_s'])}, "
            f"harness's own restart (no agent) {fmt(x['harness_restart_s'])}"
        )
    if "baseline_kill" in r:
        parts.append(
            "baseline kill -9 failover without agents: new primary writable "
            f"{fmt(r['baseline_kill']['new_primary_writable_s'])}"
        )
    if "exhausted" in r:
        x = r["exhausted"]
        early = sum(1 for e in x["failed_over_before_last_kill"] if e)
        parts.append(
            f"restarts exhausted: writable {fmt(x['writable_after_last_kill_s'])} after the last "
            f"kill ({early}/{len(x['failed_over_before_last_kill'])} runs failed over before it)"
        )
    for key, label in (("partition", "with agents"), ("baseline_partition", "without agents")):
        x = r.get(key)
        if x is None:
            continue
        if "not_measured" in x:
            parts.append(f"partition {label}: not measured ({x['not_measured']})")
            continue
        parts.append(
            f"partition {label}: old primary read-only {fmt(x['old_primary_read_only_s'])} "
            f"(last seen writable {fmt(x['old_primary_last_writable_s'])}), "
            f"new primary writable {fmt(x['new_primary_writable_s'])} from the cut, lost "
            f"{x['lost_per_run']}, max writable {x['max_writable_per_run']}"
        )
    servers = (r.get("restart") or {}).get("conditions")
    own = f"{r['runs']} runs each, fence keys {'on' if r['fence_keys'] else 'unknown to the agent'}"
    if servers:
        own += f", restart sandboxes (no mpp): {describe_servers(servers)}"
    own += (
        ", the other measures: the fault matrix's setup (mpp with semi_sync = true, interval "
        "1 s, connect_timeout 1 s, nodes started read-only, slave_net_timeout 1 s)"
    )
    return "agent: " + "; ".join(parts) + describe(own, r["machine"])


def _progress(line: str) -> None:
    print(f"# {line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
