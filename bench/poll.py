"""Poll-cycle cost: cycle time and CPU per node, real sandbox nodes or simulated ones.

Real mode starts a MariaDB sandbox, runs mpp's poll loop (probe -> logic -> store) at the
given interval, and compares its CPU per node-cycle with a baseline measured in the same
run: the bare driver issuing the same two queries on one reused connection per node, with
no threads, logic or store. The ratio is mpp's overhead over the floor.

Simulated mode skips the servers: N synthetic nodes go through logic + store only, which
shows how the non-I/O part scales with pool size.

Drivers mode (`--drivers`, issue 12) probes K real servers through N node entries with
each driver and shape of bench/drivers.py (mpp's own prober first: the reference of every
ratio), interleaved over several rounds in one run: CPU ms per node-cycle, wall latency per
probe, and with `--hang` whether each variant still ends its cycle within mpp's deadline
while one server is SIGSTOPped.

Scale mode (`--nodes N --servers K`) runs a prototype poller: N node entries in pools of
three over K real servers, one asyncio task per pool cycling at the interval (as
PoolWorker.run), probes only (no logic or store: the simulated mode measures those), and
reports CPU % of one core, cycles per pool per second, RSS and threads.

Process mode (`--mpp --nodes N --servers K`, issue 12) runs the real `mpp run` with N node
entries in pools of three over K real servers (bench/mpprun.py): one instance on SQLite, or
with `--instances 3` three instances sharing the pools on one real etcd (`shard = true`);
CPU % of one core per instance (and etcd's), cycles per pool per second, RSS, threads and the
store's write rate; with `--baseline` the same again on the PyMySQL fallback, for a ratio.

Prints one JSON document and one human line per result.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import resource
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import drivers  # noqa: E402
from bench.conditions import (  # noqa: E402
    describe,
    finish,
    machine,
    package_version,
    server_version,
)
from bench.stats import pct  # noqa: E402
from mpp import sandbox  # noqa: E402
from mpp.config import load, parse_duration  # noqa: E402
from mpp.logic.failover import decide, initial_state  # noqa: E402
from mpp.model import NodeSpec, NodeType, Observation, PoolSpec, Replication  # noqa: E402
from mpp.probe.connection import Target, pool_targets  # noqa: E402
from mpp.run import eventloop  # noqa: E402
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


# -- issue 12: probe cost per driver, and a prototype poller for N nodes ----------------------


def _entries(d: Path, nodes: int, servers: int) -> tuple[list[Target], float, float]:
    """N node entries over the sandbox's K servers (entry i on server i mod K), each a
    Target as mpp builds it from the sandbox's mpp.toml; and its connect/query timeouts."""
    config = load(d / "mpp.toml")
    base = list(pool_targets(config, config.pool[0]).values())
    ports = [n.port for n in sandbox.status(d)][:servers]
    targets = [
        dataclasses.replace(base[0], node=f"n{i}", port=ports[i % servers]) for i in range(nodes)
    ]
    return targets, config.mpp.connect_timeout, config.query_timeout


def _room(d: Path, servers: int, nodes: int) -> None:
    """max_connections for N/K kept sessions per server (the sandbox sets 200)."""
    from mpp.faults import root_sql

    need = -(-nodes // servers) + 100
    if need > 200:
        for i in range(servers):
            root_sql(d, f"db{i + 1}", f"SET GLOBAL max_connections = {need}")


def _available(variants: list[str]) -> tuple[list[str], dict[str, str]]:
    ok, skipped = [], {}
    for v in variants:
        why = drivers.missing(v)
        if why is None:
            ok.append(v)
        else:
            skipped[v] = why
            print(f"poll: skipping {v}: {why}", file=sys.stderr)
    return ok, skipped


async def _cycle(probers: drivers.ProberSet) -> list[Observation]:
    return list(await asyncio.gather(*(p.probe() for p in probers.probers)))


async def _measure(
    variant: str, targets: list[Target], deadline: float, cycles: int
) -> dict[str, Any]:
    """One variant: connect, warm up, probes one at a time (latency), then whole cycles of
    every entry at once as mpp runs them (CPU per node-cycle)."""
    s = drivers.make(variant, targets, deadline)
    try:
        await _cycle(s)
        await _cycle(s)
        lats: list[float] = []
        c0 = time.process_time()
        for _ in range(max(1, 100 // len(targets))):
            for p in s.probers:
                t0 = time.perf_counter()
                await p.probe()
                lats.append(time.perf_counter() - t0)
        seq_cpu = (time.process_time() - c0) / len(lats)
        walls: list[float] = []
        bad = 0
        c0 = time.process_time()
        for _ in range(cycles):
            w0 = time.perf_counter()
            bad += sum(not o.reachable for o in await _cycle(s))
            walls.append(time.perf_counter() - w0)
        cpu = (time.process_time() - c0) / (cycles * len(targets))
    finally:
        s.close()
    return {"cpu": cpu, "seq_cpu": seq_cpu, "lats": lats, "walls": walls, "bad": bad}


async def _hang_test(
    d: Path, variant: str, targets: list[Target], deadline: float, interval: float, victim: str
) -> dict[str, Any]:
    """Cycles paced at the interval while `victim` is SIGSTOPped: each must end within the
    deadline (plus scheduling slack), the healthy entries must still read OK."""
    hung_port = next(n.port for n in sandbox.status(d) if n.name == victim)
    s = drivers.make(variant, targets, deadline)
    walls: list[float] = []
    healthy_ok = healthy = hung_bad = hung = 0
    read_ok: list[str] = []
    try:
        await _cycle(s)  # the kept connections exist when the server freezes
        sandbox.stop_node(d, victim, signal.SIGSTOP)
        try:
            for _ in range(4):  # kept connection, then reconnects into the frozen server
                w0 = time.perf_counter()
                obs = await _cycle(s)
                walls.append(time.perf_counter() - w0)
                for t, o in zip(targets, obs, strict=True):
                    if t.port == hung_port:
                        hung += 1
                        hung_bad += not o.reachable
                        if o.reachable:  # a frozen server cannot answer: say when it did
                            read_ok.append(f"cycle {len(walls)} {t.node} {o.latency_ms:.1f} ms")
                    else:
                        healthy += 1
                        healthy_ok += o.reachable
                await asyncio.sleep(max(0.0, interval - walls[-1]))
        finally:
            sandbox.start_node(d, victim)  # SIGCONT
    finally:
        s.close()
    await asyncio.sleep(1.5)  # let abandoned threads and the woken server settle
    slack = 0.25
    return {
        "variant": variant,
        "deadline_s": deadline,
        "cycle_s_max": round(max(walls), 3),
        "cycle_s": [round(w, 3) for w in walls],
        "on_time": max(walls) <= deadline + slack,
        "slack_s": slack,
        "hung_entries_reported_failed": f"{hung_bad}/{hung}",
        "healthy_entries_ok": f"{healthy_ok}/{healthy}",
        "hung_entries_read_ok": read_ok,
    }


def drivers_mode(
    servers: int,
    nodes: int,
    cycles: int,
    rounds: int,
    interval: float,
    base_port: int,
    hang: bool,
    variants: list[str],
) -> dict[str, Any]:
    chosen, skipped = _available(variants)
    per: dict[str, list[dict[str, Any]]] = {v: [] for v in chosen}
    hangs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mpp-bench-") as tmp:
        d = Path(tmp)
        sandbox.up(d, nodes=servers, base_port=base_port)
        try:
            version = server_version(d)
            _room(d, servers, nodes)
            targets, connect_timeout, query_timeout = _entries(d, nodes, servers)
            deadline = drivers.deadline_of(connect_timeout, query_timeout, interval)

            async def main() -> None:
                for _ in range(rounds):  # interleaved: the machine's load drifts
                    for v in chosen:
                        per[v].append(await _measure(v, targets, deadline, cycles))
                if hang:
                    for v in chosen:
                        hangs.append(
                            await _hang_test(d, v, targets, deadline, interval, f"db{servers}")
                        )

            eventloop.run(main())
        finally:
            sandbox.destroy(d)
    ref = chosen[0] if chosen else ""
    rows = []
    for v in chosen:
        runs = per[v]
        lats = [x for r in runs for x in r["lats"]]
        walls = [x for r in runs for x in r["walls"]]
        ratios = [r["cpu"] / a["cpu"] for r, a in zip(runs, per[ref], strict=True)]
        rows.append(
            {
                "variant": v,
                "cpu_ms_per_node_cycle": round(statistics.median(r["cpu"] for r in runs) * 1e3, 3),
                "cpu_ms_per_node_cycle_rounds": [round(r["cpu"] * 1e3, 3) for r in runs],
                f"ratio_to_{ref}": round(statistics.median(ratios), 2),
                "cpu_ms_per_probe_one_at_a_time": round(
                    statistics.median(r["seq_cpu"] for r in runs) * 1e3, 3
                ),
                "probe_ms_p50": round(pct(lats, 0.5) * 1e3, 3),
                "probe_ms_p95": round(pct(lats, 0.95) * 1e3, 3),
                "cycle_ms_p50": round(pct(walls, 0.5) * 1e3, 2),
                "cycle_ms_p95": round(pct(walls, 0.95) * 1e3, 2),
                "failed_probes": sum(r["bad"] for r in runs),
            }
        )
    return {
        "mode": "drivers",
        "conditions": {
            "servers": servers,
            "node_entries": nodes,
            "topology": "master-master",
            "cycles_per_round": cycles,
            "rounds": rounds,
            "deadline_s": deadline,
            "interval_s": interval,
            "connect_timeout_s": connect_timeout,
            "query_timeout_s": query_timeout,
            "server_version": version,
            "event_loop": eventloop.chosen(),
            "drivers": {
                p: package_version(p) for p in ("PyMySQL", "asyncmy", "mysqlclient", "uvloop")
            },
        },
        "reference": ref,
        "variants": rows,
        "skipped": skipped,
        "hang": hangs,
    }


def _proc_status() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            out[key] = int(value.split()[0])
    return out


async def _scale_run(
    variant: str,
    targets: list[Target],
    deadline: float,
    interval: float,
    seconds: float,
    warmup: float,
    freeze: Any,
    pacing: str,
) -> dict[str, Any]:
    """One task per pool of three entries, cycling at the interval as PoolWorker.run does;
    the figures come from the window after the warm-up (every connection open)."""
    before = _proc_status()
    s = drivers.make(variant, targets, deadline)
    pools = [s.probers[i : i + 3] for i in range(0, len(s.probers), 3)]
    starts: list[list[float]] = [[] for _ in pools]
    lats: list[float] = []
    bad = [0]
    loop_start = time.monotonic()
    window = (loop_start + warmup, loop_start + warmup + seconds)

    async def pool_loop(j: int) -> None:
        # "mpp": as PoolWorker.run, every pool at once, then sleep the rest of the interval
        # (a late wake-up is never made up); "grid": pool j on its own tick of a fixed grid,
        # the pools spread over the interval (a late start does not shift the next ones; a
        # cycle that overran its tick, as one with a hung node does, starts the next at once)
        tick = loop_start + (j / len(pools) * interval if pacing == "grid" else 0.0)
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
        while (now := time.monotonic()) < window[1]:
            if now >= window[0]:
                starts[j].append(now)
            for o in await asyncio.gather(*(p.probe() for p in pools[j])):
                if o.reachable and o.latency_ms is not None:
                    lats.append(o.latency_ms / 1e3)
                elif now >= window[0]:
                    bad[0] += 1
            if pacing == "grid":
                tick += interval
                if tick < time.monotonic() - interval:  # more than a tick behind: resync
                    tick = time.monotonic()
                await asyncio.sleep(max(0.0, tick - time.monotonic()))  # overran: at once
            else:
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - now)))

    async def sampler() -> tuple[float, float, float, float]:
        await asyncio.sleep(max(0.0, window[0] - time.monotonic()))
        if freeze is not None:
            freeze()
        c0, w0 = time.process_time(), time.monotonic()
        await asyncio.sleep(max(0.0, window[1] - time.monotonic()))
        return c0, w0, time.process_time(), time.monotonic()

    try:
        sample = asyncio.ensure_future(sampler())
        await asyncio.gather(*(pool_loop(j) for j in range(len(pools))))
        c0, w0, c1, w1 = await sample
        proc = _proc_status()
    finally:
        s.close()
    rates = [(len(st) - 1) / (st[-1] - st[0]) if len(st) > 1 else 0.0 for st in starts]
    return {
        "variant": variant,
        "pacing": pacing,
        "cpu_percent_of_one_core": round((c1 - c0) / (w1 - w0) * 100, 1),
        "cpu_ms_per_node_cycle": round((c1 - c0) / max(1, sum(map(len, starts))) / 3 * 1e3, 3),
        "cycles_per_pool_per_s_min": round(min(rates), 3),
        "cycles_per_pool_per_s_mean": round(statistics.mean(rates), 3),
        "pools_on_time": f"{sum(r >= 0.98 for r in rates)}/{len(rates)}",
        "on_time": min(rates) >= 0.98,
        "probe_ms_p50": round(pct(lats, 0.5) * 1e3, 2) if lats else None,
        "probe_ms_p95": round(pct(lats, 0.95) * 1e3, 2) if lats else None,
        "failed_probes_in_window": bad[0],
        "rss_mib": round(proc.get("VmRSS", 0) / 1024, 1),
        "rss_mib_before_connecting": round(before.get("VmRSS", 0) / 1024, 1),
        "threads": proc.get("Threads"),
    }


def scale_mode(
    nodes: int,
    servers: int,
    seconds: float,
    interval: float,
    base_port: int,
    hang: bool,
    variants: list[str],
    pacings: list[str],
    deadline_override: float | None = None,
) -> dict[str, Any]:
    if nodes % 3:
        raise SystemExit(f"--nodes {nodes}: pools of three need a multiple of 3")
    chosen, skipped = _available(variants)
    runs: list[dict[str, Any]] = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # a socket per node entry
    want = 2 * nodes + 256
    if soft < want and (hard == resource.RLIM_INFINITY or hard >= want):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    with tempfile.TemporaryDirectory(prefix="mpp-bench-") as tmp:
        d = Path(tmp)
        sandbox.up(d, nodes=servers, base_port=base_port)
        try:
            version = server_version(d)
            _room(d, servers, nodes)
            targets, connect_timeout, query_timeout = _entries(d, nodes, servers)
            deadline = drivers.deadline_of(connect_timeout, query_timeout, interval)
            if deadline_override is not None:
                deadline = deadline_override
            victim = f"db{servers}"

            def freeze() -> None:
                sandbox.stop_node(d, victim, signal.SIGSTOP)

            async def main() -> None:
                for v in chosen:
                    for pacing in pacings:
                        try:
                            runs.append(
                                await _scale_run(
                                    v,
                                    targets,
                                    deadline,
                                    interval,
                                    seconds,
                                    3.0,
                                    freeze if hang else None,
                                    pacing,
                                )
                            )
                        finally:
                            if hang:
                                sandbox.start_node(d, victim)
                        await asyncio.sleep(2.0)  # sessions closed, threads gone

            eventloop.run(main())
        finally:
            sandbox.destroy(d)
    return {
        "mode": "scale",
        "conditions": {
            "node_entries": nodes,
            "pools": nodes // 3,
            "servers": servers,
            "interval_s": interval,
            "seconds_measured": seconds,
            "deadline_s": deadline,
            "connect_timeout_s": connect_timeout,
            "deadline_rule": "mpp's" if deadline_override is None else "--deadline",
            "hung_server": victim if hang else None,
            "server_version": version,
            "event_loop": eventloop.chosen(),
            "what": "probes only (no logic, store or publish), every pool started at once",
        },
        "runs": runs,
        "skipped": skipped,
    }


def mpp_mode(
    nodes: int,
    servers: int,
    seconds: float,
    base_port: int,
    instances: int,
    baseline: bool,
    leader_ttl: float | None = None,
    settle: float = 180.0,
    net_timeout: int | None = None,
) -> dict[str, Any]:
    from bench import mpprun
    from mpp.faults import root_sql
    from tests.ports import session_ports

    if nodes % 3:
        raise SystemExit(f"--nodes {nodes}: pools of three need a multiple of 3")
    free = session_ports()
    runs: list[dict[str, Any]] = []
    etcd: Any = None
    with tempfile.TemporaryDirectory(prefix="mpp-bench-") as tmp:
        d = Path(tmp) / "sandbox"
        mpprun.start_sandbox(d, servers, base_port)
        try:
            version = server_version(d)
            mpprun.room(d, servers, nodes, instances)
            if net_timeout is not None:  # the sandbox's 1 s, or e.g. the servers' default 60
                for i in range(servers):
                    node = f"db{i + 1}"
                    root_sql(d, node, f"SET GLOBAL slave_net_timeout = {int(net_timeout)}")
                    root_sql(d, node, "STOP SLAVE")  # a receiver reads it when it connects
                    root_sql(d, node, "START SLAVE")
            net = [
                int(root_sql(d, f"db{i + 1}", "SELECT @@slave_net_timeout")[0][0])
                for i in range(servers)
            ]
            if instances > 1:
                from mpp.sandbox.etcd import EtcdServer

                etcd = EtcdServer(Path(tmp) / "etcd", free.port(), free.port())
                etcd.start()
            ports = [free.port() for _ in range(instances)]
            for driver in [None, "pymysql"] if baseline else [None]:
                runs.append(
                    mpprun.measure(d, nodes, servers, instances, seconds, 10.0, driver, ports, etcd)
                )
                time.sleep(3.0)  # sessions closed before the next configuration
        finally:
            if etcd is not None:
                etcd.stop()
            sandbox.destroy(d)
    if len(runs) == 2 and runs[1]["cpu_ms_per_node_cycle"]:  # per node-cycle: a late run
        runs[0]["cpu_ratio_to_pymysql"] = round(  # does fewer cycles for its CPU
            runs[0]["cpu_ms_per_node_cycle"] / runs[1]["cpu_ms_per_node_cycle"], 2
        )
    return {
        "mode": "mpp",
        "conditions": {
            "node_entries": nodes,
            "pools": nodes // 3,
            "servers": servers,
            "instances": instances,
            "store": "etcd 1 member, shard = true" if instances > 1 else "sqlite",
            "leader_ttl_s": leader_ttl if leader_ttl is not None else 10.0,
            "interval_s": 1.0,
            "seconds_measured": seconds,
            "warmup_s": 10.0,
            "server_version": version,
            "slave_net_timeout_s": sorted(set(net)),
            "max_connections_raised_to": mpprun.room_size(servers, nodes, instances),
            "mysqlclient": package_version("mysqlclient"),
            "pymysql": package_version("PyMySQL"),
            "what": "the whole `mpp run` process: probes, logic, store, publish, API",
        },
        "runs": runs,
    }


def _mpp_line(r: dict[str, Any], host: dict[str, Any]) -> str:
    c = r["conditions"]
    cols = "; ".join(
        f"{x['driver']}: CPU {x['cpu_percent_of_one_core']}% of a core"
        + (
            f" (etcd {x['etcd_cpu_percent_of_one_core']}%)"
            if x["etcd_cpu_percent_of_one_core"]
            else ""
        )
        + f", {x['cpu_ms_per_node_cycle']} ms per node-cycle"
        + (f" ({x['cpu_ratio_to_pymysql']}x PyMySQL's)" if "cpu_ratio_to_pymysql" in x else "")
        + f", cycles per pool per s min {x['cycles_per_pool_per_s_min']} mean "
        f"{x['cycles_per_pool_per_s_mean']} ({x['pools_on_time']} on time), RSS {x['rss_mib']} "
        f"MiB, threads {x['threads']}, every pool cycling after "
        f"{x['seconds_until_every_pool_cycled']} s, store writes {x['store_writes_per_s']}/s = "
        f"{x['store_writes_per_pool_cycle']} per pool-cycle, {x['errors_logged']} errors logged"
        for x in r["runs"]
    )
    return f"poll mpp: {cols}" + describe(
        f"{c['node_entries']} node entries in {c['pools']} pools over {c['servers']} sandbox "
        f"servers (MariaDB {c['server_version']}), {c['instances']} instance(s) on "
        f"{c['store']} (leader_ttl {c['leader_ttl_s']:g} s), interval 1 s, "
        f"{c['seconds_measured']:g} s measured after "
        f"{c['warmup_s']:g} s",
        host,
    )


def _drivers_line(r: dict[str, Any], host: dict[str, Any]) -> str:
    c = r["conditions"]
    ref = r["reference"]
    cols = "; ".join(
        f"{v['variant']} {v['cpu_ms_per_node_cycle']} ms ({v[f'ratio_to_{ref}']}x), "
        f"probe p50 {v['probe_ms_p50']} ms p95 {v['probe_ms_p95']} ms"
        for v in r["variants"]
    )
    hang = "".join(
        f"; hang {h['variant']}: cycle max {h['cycle_s_max']} s "
        f"({'on time' if h['on_time'] else 'LATE'})"
        for h in r["hang"]
    )
    skipped = "".join(f"; skipped {v}" for v in r["skipped"])
    return f"poll drivers: CPU per node-cycle (ratio to {ref}): {cols}{hang}{skipped}" + describe(
        f"{c['node_entries']} node entries over {c['servers']} sandbox servers "
        f"(MariaDB {c['server_version']}), {c['rounds']} interleaved rounds of "
        f"{c['cycles_per_round']} back-to-back cycles, deadline {c['deadline_s']:g} s, "
        f"{c['event_loop']} loop, drivers {c['drivers']}",
        host,
    )


def _scale_line(r: dict[str, Any], host: dict[str, Any]) -> str:
    c = r["conditions"]
    cols = "; ".join(
        f"{x['variant']} ({x['pacing']} pacing) {x['cpu_percent_of_one_core']}% of a core "
        f"({x['cpu_ms_per_node_cycle']} ms per node-cycle), cycles per pool per s "
        f"min {x['cycles_per_pool_per_s_min']} ({'on time' if x['on_time'] else 'LATE'}), "
        f"RSS {x['rss_mib']} MiB, {x['threads']} threads"
        for x in r["runs"]
    )
    hung = f", {c['hung_server']} SIGSTOPped" if c["hung_server"] else ""
    return f"poll scale: {cols}" + describe(
        f"{c['node_entries']} node entries in {c['pools']} pools over {c['servers']} sandbox "
        f"servers{hung}, interval {c['interval_s']:g} s, deadline {c['deadline_s']:g} s "
        f"({c['deadline_rule']}), {c['seconds_measured']:g} s measured, "
        f"probes only, {c['event_loop']} loop",
        host,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nodes",
        type=int,
        default=None,
        help="real sandbox nodes (default 3); with --drivers or --servers: node entries",
    )
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
    parser.add_argument(
        "--drivers", action="store_true", help="probe cost per driver and shape (issue 12)"
    )
    parser.add_argument(
        "--servers",
        type=int,
        default=None,
        metavar="K",
        help="K real servers; with --nodes N and without --drivers: the N-node prototype poller",
    )
    parser.add_argument("--cycles", type=int, default=100, help="--drivers: cycles per round")
    parser.add_argument("--rounds", type=int, default=3, help="--drivers: interleaved rounds")
    parser.add_argument(
        "--hang", action="store_true", help="also SIGSTOP the last server: are cycles on time?"
    )
    parser.add_argument(
        "--variants",
        default=None,
        help=f"comma-separated, of {','.join(drivers.VARIANTS)} (default: all with --drivers, "
        "mysqlclient-multi,asyncmy-multi,pymysql-mpp with --servers)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="--servers: probe deadline in seconds instead of mpp's rule (capped at the interval)",
    )
    parser.add_argument(
        "--pacing",
        default="mpp,grid",
        help="--servers: comma-separated, mpp (as PoolWorker.run) and/or grid (fixed ticks, "
        "pools spread over the interval)",
    )
    parser.add_argument(
        "--mpp",
        action="store_true",
        help="with --nodes N --servers K: the real `mpp run` process (bench/mpprun.py)",
    )
    parser.add_argument(
        "--instances", type=int, default=1, help="--mpp: instances sharing the pools on etcd"
    )
    parser.add_argument(
        "--leader-ttl",
        type=float,
        default=None,
        help="--mpp --instances: [mpp] leader_ttl in seconds (default mpp's, 10)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=180.0,
        help="--mpp: seconds to wait for every pool's first cycle before giving up",
    )
    parser.add_argument(
        "--net-timeout",
        type=int,
        default=None,
        help="--mpp: slave_net_timeout on every server (the sandbox sets 1; the default is 60)",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="--mpp: the same again with MPP_PROBE_DRIVER=pymysql (the fallback), for a ratio",
    )
    args = parser.parse_args()
    interval = parse_duration(args.interval)
    host = machine()
    if args.mpp:
        if args.nodes is None:
            parser.error("--mpp needs --nodes N")
        r = mpp_mode(
            args.nodes,
            args.servers or 3,
            args.seconds,
            args.base_port,
            args.instances,
            args.baseline,
            args.leader_ttl,
            args.settle,
            args.net_timeout,
        )
        print(json.dumps({"bench": "poll", "machine": finish(host), "results": [r]}, indent=2))
        print(_mpp_line(r, host))
        return
    if args.drivers or args.servers is not None:
        scale = not args.drivers
        default = (
            "mysqlclient-multi,asyncmy-multi,pymysql-mpp" if scale else ",".join(drivers.VARIANTS)
        )
        variants = [v for v in (args.variants or default).split(",") if v]
        unknown = [v for v in variants if v not in drivers.VARIANTS]
        if unknown:
            parser.error(f"unknown variant(s) {unknown}; of {', '.join(drivers.VARIANTS)}")
        servers = args.servers or 3
        if scale:
            if args.nodes is None:
                parser.error("--servers K without --drivers needs --nodes N")
            r = scale_mode(
                args.nodes,
                servers,
                args.seconds,
                interval,
                args.base_port,
                args.hang,
                variants,
                [p for p in args.pacing.split(",") if p in ("mpp", "grid")],
                args.deadline,
            )
        else:
            r = drivers_mode(
                servers,
                args.nodes or 30,
                args.cycles,
                args.rounds,
                interval,
                args.base_port,
                args.hang,
                variants,
            )
        doc = {"bench": "poll", "machine": finish(host), "results": [r]}
        print(json.dumps(doc, indent=2))
        print(_scale_line(r, host) if scale else _drivers_line(r, host))
        return
    results = [real(args.nodes or 3, args.seconds, interval, args.base_port)]
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
