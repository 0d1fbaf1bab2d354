"""Poll-cycle cost: cycle time and CPU per node, real sandbox nodes or simulated ones.

Real mode starts a MariaDB sandbox, runs mpp's poll loop (probe -> logic -> store) at the
given interval, and compares its CPU per node-cycle with a baseline measured in the same
run: the bare driver issuing the same two queries on one reused connection per node, with
no threads, logic or store. The ratio is mpp's overhead over the floor.

Simulated mode skips the servers: N synthetic nodes go through logic + store only, which
shows how the non-I/O part scales with pool size.

Prints one JSON document and one human line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.conditions import describe, finish, machine, server_version  # noqa: E402
from bench.stats import pct  # noqa: E402
from mpp import sandbox  # noqa: E402
from mpp.config import load, parse_duration  # noqa: E402
from mpp.logic.failover import decide, initial_state  # noqa: E402
from mpp.model import NodeSpec, NodeType, Observation, PoolSpec, Replication  # noqa: E402
from mpp.run.daemon import make_workers, poll_once  # noqa: E402
from mpp.store import SqliteStore  # noqa: E402


def real(nodes: int, seconds: float, interval: float, base_port: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="mpp-bench-") as tmp:
        d = Path(tmp)
        sandbox.up(d, nodes=nodes, base_port=base_port)
        try:
            text = (d / "mpp.toml").read_text().replace('interval = "1s"', f"interval = {interval}")
            (d / "mpp.toml").write_text(text)
            config = load(d / "mpp.toml")
            version = server_version(d)
            store = SqliteStore(config.state_path)
            workers, executor = make_workers(config, store)
            cycles = max(3, int(seconds / interval))
            walls: list[float] = []
            cpus: list[float] = []

            async def measure() -> None:
                await poll_once(workers)  # connect once; steady state is what we measure
                for _ in range(cycles):
                    w0, c0 = time.perf_counter(), time.process_time()
                    await poll_once(workers)
                    walls.append(time.perf_counter() - w0)
                    cpus.append(time.process_time() - c0)
                    await asyncio.sleep(max(0.0, interval - walls[-1]))

            asyncio.run(measure())
            for w in workers:
                w.close()
            executor.shutdown()
            store.close()
            baseline = driver_baseline(d, config, nodes, cycles)
        finally:
            sandbox.destroy(d)
    cpu_node_ms = statistics.mean(cpus) / nodes * 1000
    return {
        "mode": "real",
        "nodes": nodes,
        "interval_s": interval,
        # what decides the figures besides the machine: how often and how many nodes are
        # polled, how long a probe may wait, and which server answers
        "conditions": {
            "nodes": nodes,
            "topology": "master-master",  # the sandbox's default
            "interval_s": interval,
            "connect_timeout_s": config.mpp.connect_timeout,
            "server_version": version,
            "store": "sqlite (WAL, synchronous NORMAL)",
        },
        "cycles": cycles,
        "cycle_ms_p50": round(pct(walls, 0.5) * 1000, 2),
        "cycle_ms_p95": round(pct(walls, 0.95) * 1000, 2),
        "cycle_ms_max": round(max(walls) * 1000, 2),
        "cpu_ms_per_node_cycle": round(cpu_node_ms, 3),
        "cpu_percent_per_node": round(cpu_node_ms / (interval * 1000) * 100, 4),
        "baseline_cpu_ms_per_node_cycle": round(baseline, 3),
        "ratio_vs_bare_driver": round(cpu_node_ms / baseline, 2) if baseline else None,
    }


def driver_baseline(d: Path, config: object, nodes: int, cycles: int) -> float:
    """CPU ms per node-cycle of the same two queries on bare reused PyMySQL connections."""
    password = (d / "mpp.password").read_text()
    conns = [
        pymysql.connect(
            host="127.0.0.1",
            port=n.port,
            user="mpp",
            password=password,
            ssl_disabled=True,
            autocommit=True,
        )
        for n in sandbox.status(d)
    ]
    c0 = time.process_time()
    for _ in range(cycles):
        for conn in conns:
            with conn.cursor() as cur:
                cur.execute("SELECT @@global.read_only, @@global.gtid_current_pos")
                cur.fetchone()
            with conn.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute("SHOW SLAVE STATUS")
                cur.fetchone()
    used = time.process_time() - c0
    for conn in conns:
        conn.close()
    return used / (cycles * nodes) * 1000


def simulated(nodes: int, cycles: int) -> dict[str, object]:
    spec = PoolSpec(
        "bench",
        tuple(
            NodeSpec(
                f"n{i}",
                NodeType.PRIMARY if i == 0 else NodeType.SECONDARY,
                f"10.0.{i // 250}.{i % 250}:3306",
            )
            for i in range(nodes)
        ),
    )

    def obs(i: int, t: float) -> Observation:
        src = spec.nodes[i - 1].address.rpartition(":")[0]
        rep = Replication(src, 3306, "Yes", True, seconds_behind=0)
        return Observation(spec.nodes[i].name, t, True, read_only=True, replication=rep)

    with tempfile.TemporaryDirectory(prefix="mpp-bench-") as tmp:
        store = SqliteStore(Path(tmp) / "s.db")
        state, version = initial_state(spec), None
        c0, w0 = time.process_time(), time.perf_counter()
        for t in range(cycles):
            observations = {spec.nodes[i].name: obs(i, float(t)) for i in range(nodes)}
            decision = decide(spec, state, observations, float(t))
            version = store.save(decision.state, decision.events, version)
            state = decision.state
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        store.close()
    return {
        "mode": "simulated",
        "nodes": nodes,
        "cycles": cycles,
        "cpu_ms_per_node_cycle": round(cpu / (cycles * nodes) * 1000, 4),
        "cycle_ms_mean": round(wall / cycles * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3, help="real sandbox nodes")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--base-port", type=int, default=35061)
    parser.add_argument(
        "--simulated",
        type=int,
        default=0,
        metavar="N",
        help="also run logic+store for N synthetic nodes",
    )
    args = parser.parse_args()
    interval = parse_duration(args.interval)
    host = machine()
    results = [real(args.nodes, args.seconds, interval, args.base_port)]
    if args.simulated:
        results.append(simulated(args.simulated, 200))
    doc = {"bench": "poll", "machine": finish(host), "results": results}
    print(json.dumps(doc, indent=2))
    r = results[0]
    c: Any = r["conditions"]
    print(
        f"poll: {r['nodes']} real nodes @ {interval:g}s: cycle p50 {r['cycle_ms_p50']} ms "
        f"(p95 {r['cycle_ms_p95']}), CPU {r['cpu_ms_per_node_cycle']} ms per node-cycle "
        f"= {r['cpu_percent_per_node']}% of a core per node; "
        f"{r['ratio_vs_bare_driver']}x the bare driver doing the same queries"
        + describe(
            f"{c['nodes']} {c['topology']} sandbox nodes, interval {c['interval_s']:g} s, "
            f"connect_timeout {c['connect_timeout_s']:g} s, MariaDB {c['server_version']}, "
            f"{args.seconds:g} s measured",
            host,
        )
    )
    if args.simulated:
        s = results[1]
        print(
            f"poll: {s['nodes']} simulated nodes, logic+store: "
            f"{s['cpu_ms_per_node_cycle']} ms CPU per node-cycle, {s['cycle_ms_mean']} ms per cycle"
            + describe(f"{s['nodes']} synthetic nodes, {s['cycles']} cycles, sqlite store", host)
        )


if __name__ == "__main__":
    main()
