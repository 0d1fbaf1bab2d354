"""`mpp run` itself at scale, for bench/poll.py --mpp (issue 12): N node entries in pools of
three over K real mariadbd, interval 1 s, the whole process (probes, logic, store, publish,
API) measured from outside.

One instance on SQLite, or several sharing the pools on one real etcd (`[mpp] shard =
true`). From /proc: each instance's CPU % of one core over the window, its RSS and threads;
etcd's CPU. From each instance's /v1/health: every pool's cycle count and the time of its
last cycle, twice, so cycles per pool per second are exact whatever the sampling instant
(each pool is counted at the instance that leads it). From the store: writes per second
(SQLite: state saves, the sum of the pools' versions, and history rows; etcd: the store's
revision, which every write of any kind advances), and per pool-cycle.

Each configuration runs with the probe driver mpp picks (mysqlclient) and, with
`--baseline`, again with MPP_PROBE_DRIVER=pymysql (the fallback): the ratio is of the two,
measured in the same run against the same servers.
"""

from __future__ import annotations

import base64
import os
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx

from mpp import sandbox
from mpp.sandbox.etcd import EtcdServer
from tests.builders import write_config

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            out[key] = int(value.split()[0])
    return out


def pools_doc(d: Path, nodes: int, servers: int) -> tuple[dict[str, Any], list[str]]:
    """The sandbox's mpp.toml with its pool replaced by N/3 pools: entry i on server i mod K,
    with that server's node type (every pool of three over the same servers)."""
    doc = tomllib.loads((d / "mpp.toml").read_text())
    base = doc["pool"][0]
    servers_of = base["node"][:servers]
    pools = []
    for j in range(nodes // 3):
        entries = []
        for k in range(3):
            i = 3 * j + k
            server = servers_of[i % servers]
            entries.append({**server, "name": f"n{i}"})
        pools.append({**base, "name": f"p{j}", "node": entries})
    doc["pool"] = pools
    doc["mpp"] = {**doc["mpp"], "interval": "1s"}
    return doc, [p["name"] for p in pools]


class Instance:
    def __init__(self, config: Path, api: int, log: Path, driver: str | None) -> None:
        self.api = api
        self.log = log
        env = {**os.environ, "COLUMNS": "200"}
        if driver is not None:
            env["MPP_PROBE_DRIVER"] = driver

        def limit() -> None:  # a socket per node entry, and the API's
            resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))

        mpp = Path(sys.executable).with_name("mpp")
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [str(mpp), "--config", str(config), "run", "--no-live"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=limit,
            )

    def health(self, client: httpx.Client) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = client.get(
                f"http://127.0.0.1:{self.api}/v1/health", timeout=5
            ).json()
            return doc
        except (httpx.HTTPError, ValueError):
            return {}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def errors(self) -> list[str]:
        return [
            line
            for line in self.log.read_text(errors="replace").splitlines()
            if " ERROR " in line or "Traceback" in line
        ]


def _led(doc: dict[str, Any], pools: list[str]) -> list[str]:
    if "leads" in doc:
        return list(doc["leads"])
    return pools if doc.get("role") in ("leader", None) and doc.get("pools") else []


class Sample:
    """One look at every instance, the store and etcd."""

    def __init__(
        self,
        instances: list[Instance],
        client: httpx.Client,
        pools: list[str],
        writes: Any,
        etcd: EtcdServer | None,
    ) -> None:
        self.cpu = [_cpu_seconds(i.process.pid) for i in instances]
        self.etcd_cpu = (
            _cpu_seconds(etcd.process.pid) if etcd is not None and etcd.process else None
        )
        self.wall = time.monotonic()
        self.last: dict[str, tuple[int, float]] = {}  # pool -> (cycle, when, monotonic)
        self.leader: dict[str, int] = {}
        for n, inst in enumerate(instances):
            doc = inst.health(client)
            now = time.monotonic()
            for pool in _led(doc, pools):
                seen = doc.get("pools", {}).get(pool) or {}
                if seen.get("cycle") is None or seen.get("seconds_since_cycle") is None:
                    continue
                self.last[pool] = (int(seen["cycle"]), now - float(seen["seconds_since_cycle"]))
                self.leader[pool] = n
        self.writes = writes()


def _sqlite_writes(path: Path) -> Any:
    def count() -> dict[str, int]:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            saves = db.execute("SELECT coalesce(sum(version), 0) FROM pool_state").fetchone()[0]
            events = db.execute("SELECT count(*) FROM event").fetchone()[0]
        finally:
            db.close()
        return {"state_saves": int(saves), "history_rows": int(events)}

    return count


def _etcd_writes(server: EtcdServer) -> Any:
    def count() -> dict[str, int]:
        key = base64.b64encode(b"\0").decode()
        answer = httpx.post(f"{server.endpoint}/v3/kv/range", json={"key": key}, timeout=10)
        return {"revisions": int(answer.json()["header"]["revision"])}

    return count


def measure(
    d: Path,
    nodes: int,
    servers: int,
    instances: int,
    seconds: float,
    warmup: float,
    driver: str | None,
    ports: list[int],
    etcd: EtcdServer | None,
    leader_ttl: float | None = None,
    settle: float = 180.0,
) -> dict[str, Any]:
    """One configuration: start the instances, wait until every pool cycles, warm up,
    measure over `seconds`, stop them."""
    doc, pools = pools_doc(d, nodes, servers)
    tag = driver or "default"
    if etcd is not None:
        prefix = f"/bench-{tag}-{int(time.time())}"
        doc["mpp"] = {**doc["mpp"], "state": f"etcd://{etcd.host_port}{prefix}", "shard": True}
        if leader_ttl is not None:
            doc["mpp"]["leader_ttl"] = f"{leader_ttl:g}s"
        writes = _etcd_writes(etcd)
    else:
        state = d / f"state-{tag}.db"
        doc["mpp"] = {**doc["mpp"], "state": f"sqlite://{state}"}
        writes = _sqlite_writes(state)
    running: list[Instance] = []
    try:
        for n in range(instances):
            name = f"i{n}"
            mine = {
                **doc,
                "mpp": {**doc["mpp"], "name": name},
                "api": {"listen": f"127.0.0.1:{ports[n]}"},
            }
            config = write_config(d / f"{tag}-{name}.toml", mine)
            running.append(Instance(config, ports[n], d / f"{tag}-{name}.log", driver))
        with httpx.Client() as client:
            started = time.monotonic()
            deadline = started + settle
            while True:
                seen = Sample(running, client, pools, lambda: {}, None)
                if len(seen.last) == len(pools):
                    break
                if time.monotonic() > deadline or any(
                    i.process.poll() is not None for i in running
                ):
                    kept = Path(tempfile.mkdtemp(prefix="mpp-bench-logs-"))
                    for i in running:
                        shutil.copy(i.log, kept)
                    exited = [i.log.name for i in running if i.process.poll() is not None]
                    raise SystemExit(
                        f"poll --mpp: {len(seen.last)}/{len(pools)} pools cycling after "
                        f"{time.monotonic() - started:.0f} s; exited: {exited or 'none'}; "
                        f"logs in {kept}"
                    )
                time.sleep(1.0)
            settled = time.monotonic() - started
            time.sleep(warmup)
            first = Sample(running, client, pools, writes, etcd)
            time.sleep(seconds)
            last = Sample(running, client, pools, writes, etcd)
        status = [_status(i.process.pid) for i in running]
    finally:
        for i in running:
            i.stop()
    wall = last.wall - first.wall
    rates = []
    for pool in pools:
        a, b = first.last.get(pool), last.last.get(pool)
        if a is None or b is None or first.leader.get(pool) != last.leader.get(pool):
            continue  # changed leader in the window (not expected in a steady run)
        if b[1] > a[1]:
            rates.append((b[0] - a[0]) / (b[1] - a[1]))
    pool_cycles = statistics.mean(rates) * len(pools) * wall if rates else 0.0
    store = {k: last.writes[k] - first.writes[k] for k in last.writes}
    per_s = {k: round(v / wall, 1) for k, v in store.items()}
    per_cycle = {k: round(v / pool_cycles, 3) if pool_cycles else None for k, v in store.items()}
    cpu = [round((b - a) / wall * 100, 1) for a, b in zip(first.cpu, last.cpu, strict=True)]
    return {
        "driver": driver or "mpp's choice (mysqlclient)",
        "instances": instances,
        "store": "etcd (shard = true)" if etcd is not None else "sqlite",
        "cpu_percent_of_one_core": cpu,
        "cpu_percent_total": round(sum(cpu), 1),
        "cpu_ms_per_node_cycle": round(
            sum(b - a for a, b in zip(first.cpu, last.cpu, strict=True))
            / max(1.0, pool_cycles * 3)
            * 1e3,
            3,
        ),
        "etcd_cpu_percent_of_one_core": (
            round((last.etcd_cpu - first.etcd_cpu) / wall * 100, 1)
            if last.etcd_cpu is not None and first.etcd_cpu is not None
            else None
        ),
        "pools_measured": f"{len(rates)}/{len(pools)}",
        "cycles_per_pool_per_s_min": round(min(rates), 3) if rates else None,
        "cycles_per_pool_per_s_mean": round(statistics.mean(rates), 3) if rates else None,
        "pools_on_time": f"{sum(r >= 0.98 for r in rates)}/{len(pools)}",
        "on_time": bool(rates) and len(rates) == len(pools) and min(rates) >= 0.98,
        "pools_led": [sum(1 for p in last.leader.values() if p == n) for n in range(instances)],
        "store_writes_per_s": per_s,
        "store_writes_per_pool_cycle": per_cycle,
        "rss_mib": [round(s.get("VmRSS", 0) / 1024, 1) for s in status],
        "threads": [s.get("Threads") for s in status],
        "errors_logged": sum(len(i.errors()) for i in running),
        "first_error": next((e for i in running for e in i.errors()), None),
        "seconds_measured": round(wall, 2),
        "seconds_until_every_pool_cycled": round(settled, 1),
    }


def room(d: Path, servers: int, nodes: int, instances: int = 1) -> None:
    """max_connections for every node entry's kept session (plus the sandbox's own); with
    several instances twice that, for the sessions of pools changing hands."""
    from mpp.faults import root_sql

    for i in range(servers):
        root_sql(
            d, f"db{i + 1}", f"SET GLOBAL max_connections = {room_size(servers, nodes, instances)}"
        )


def room_size(servers: int, nodes: int, instances: int = 1) -> int:
    """`room`'s max_connections (the sandbox's own is 200, the servers' default 151)."""
    return max(-(-nodes // servers) * (2 if instances > 1 else 1) + 150, 200)


def start_sandbox(d: Path, servers: int, base_port: int) -> None:
    sandbox.up(d, nodes=servers, base_port=base_port)
