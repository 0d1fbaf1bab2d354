"""The router in `mpp run`, in front of a real primary-replica sandbox.

Which node a connection through the router reaches is read from `@@server_id` (db1 is 1,
db2 is 2, db3 is 3). The daemon runs as a subprocess with `[router]` and `[api]` (for the
pool's state and the metrics).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest
from pymysql.constants import COMMAND

from mpp import sandbox
from mpp.faults import wait_for
from tests.conftest import Cluster
from tests.daemons import MppRun, mpp_command
from tests.ports import Ports
from tests.probes import app_connect, http, metric, query_one, routes_to

pytestmark = pytest.mark.integration

Make = Callable[..., Cluster]


@dataclass
class Routed:
    """A primary-replica sandbox behind `mpp run` with [router] (rw and ro) and [api]."""

    cluster: Cluster
    pid: int
    rw: int
    ro: int
    api_port: int

    def api(self, path: str) -> tuple[int, str]:
        return http(f"http://127.0.0.1:{self.api_port}{path}")

    def pool_doc(self) -> dict[str, Any]:
        status, body = self.api("/v1/pools/main")
        return json.loads(body) if status == 200 else {}

    def metric(self, series: str) -> float | None:
        return metric(self.api("/metrics")[1], series)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def routed(make_cluster: Make, tmp_path: Path, ports: Ports) -> Iterator[Callable[..., Routed]]:
    """Factory: a primary-replica sandbox and `mpp run` with [router] and [api]."""
    running: list[tuple[MppRun, int]] = []

    def start(**pool: Any) -> Routed:
        rw, ro, api = ports.port(), ports.port(), ports.port()
        cluster = make_cluster(
            topology="primary-replica",
            pool=pool,
            router={"rw": f"127.0.0.1:{rw}", "ro": f"127.0.0.1:{ro}"},
            api={"listen": f"127.0.0.1:{api}"},
        )
        daemon = MppRun(cluster.config_path, tmp_path / f"mpp-run-{len(running)}.log")
        running.append((daemon, rw))
        made = Routed(cluster, daemon.pid, rw, ro, api)
        wait_for("mpp's API to report a healthy loop", lambda: made.api("/v1/health")[0] == 200)
        return made

    yield start
    for daemon, rw in running:
        text = daemon.stop()
        assert f"router rw listening on 127.0.0.1:{rw} for pool main (uvloop loop)" in text


def test_rw_follows_a_failover_and_ro_spreads_then_falls_back(
    routed: Callable[..., Routed],
) -> None:
    r = routed()
    cluster, rw, ro = r.cluster, r.rw, r.ro
    routes_to(rw, {1})
    # least connections over the two standbys: four held connections, two each
    readers = [app_connect(ro) for _ in range(4)]
    ids = sorted(int(query_one(c, "SELECT @@server_id")) for c in readers)
    assert ids == [2, 2, 3, 3]
    writer = app_connect(rw)
    assert query_one(writer, "SELECT @@server_id") == 1
    query_one(writer, "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY)")
    query_one(writer, "INSERT INTO t VALUES (1)")

    cluster.kill("db1")  # kill -9
    wait_for(
        "a new primary behind the rw port",
        lambda: sandbox.server_id_at(rw) in (2, 3) and r.pool_doc().get("switching") is None,
    )
    with pytest.raises(pymysql.OperationalError):
        query_one(writer, "SELECT @@server_id")  # the old primary's connection is gone
    writer.close()
    new = sandbox.server_id_at(rw)
    assert new in (2, 3)
    (active,) = [n["name"] for n in r.pool_doc()["nodes"] if n["state"] == "ACTIVE"]
    assert active == f"db{new}"
    conn = app_connect(rw)
    wait_for("the new primary to take writes", lambda: query_one(conn, "SELECT @@read_only") == 0)
    query_one(conn, "INSERT INTO t VALUES (2)")
    conn.close()
    # readers are kept: one node is now the primary, the other still a standby
    assert sorted(int(query_one(c, "SELECT @@server_id")) for c in readers) == [2, 2, 3, 3]

    other = 5 - new  # the remaining standby: reads go there only
    routes_to(ro, {other})
    cluster.kill(f"db{other}")
    routes_to(ro, {new})  # no standby can serve reads: the ACTIVE node does
    for c in readers:
        c.close()
    assert (r.metric('mpp_router_connections_total{pool="main",port="rw"}') or 0) > 3


def test_a_client_connecting_during_a_switchover_gets_the_new_primary(
    routed: Callable[..., Routed],
) -> None:
    r = routed(max_lag="1h")
    cluster, rw = r.cluster, r.rw
    routes_to(rw, {1})
    writer = app_connect(rw)
    query_one(writer, "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY)")
    wait_for("t on db2", lambda: bool(cluster.sql("db2", "SHOW TABLES FROM app LIKE 't'")), 10)
    # db2 applies the next event about 3 s late (its SQL thread waits for a table lock held
    # there): the switchover's catch-up takes that long. Not MASTER_DELAY: a delayed
    # replica is refused as a switchover target (docs/sites.md)
    locker = sandbox.admin_connect(cluster.dir, "db2")
    query_one(locker, "LOCK TABLES app.t WRITE")
    release = threading.Timer(3.0, lambda: query_one(locker, "UNLOCK TABLES"))
    query_one(writer, "INSERT INTO t VALUES (1)")
    release.start()
    switchover = subprocess.Popen(
        mpp_command(cluster.config_path, "switchover", "main", "--to", "db2", "--timeout", "20s"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for("the switchover to start", lambda: r.pool_doc().get("switching") == "db2")
        assert switchover.poll() is None
        started = time.monotonic()
        conn = app_connect(rw, timeout=20)
        waited = time.monotonic() - started
        in_progress_after = r.pool_doc().get("switching")
        assert query_one(conn, "SELECT @@server_id") == 2
        assert query_one(conn, "SELECT @@read_only") == 0, "the new primary, writable"
        query_one(conn, "INSERT INTO t VALUES (2)")
        conn.close()
        out, _ = switchover.communicate(timeout=30)
    finally:
        if switchover.poll() is None:
            switchover.kill()
        release.join()
        locker.close()
    assert switchover.returncode == 0, out
    assert waited > 0.3, f"the connect returned after {waited:.2f}s: it did not wait"
    assert in_progress_after is None
    assert r.metric('mpp_router_waited_total{pool="main",port="rw"}') == 1
    with pytest.raises(pymysql.OperationalError):
        query_one(writer, "SELECT 1")  # fenced and closed: its node is no longer ACTIVE
    writer.close()


def test_a_client_that_stops_reading_does_not_grow_the_routers_memory(
    routed: Callable[..., Routed],
) -> None:
    r = routed()
    pid, rw = r.pid, r.rw
    routes_to(rw, {1})
    before = rss_kib(pid)
    conn = app_connect(rw, timeout=30)
    # 300 MB of result that the client never reads
    sql = "SELECT REPEAT('x', 1048576) FROM seq_1_to_300"
    # send only, never read the result: PyMySQL has no public call for that
    conn._execute_command(COMMAND.COM_QUERY, sql)  # type: ignore[attr-defined]
    series = 'mpp_router_bytes_total{direction="to_clients",pool="main",port="rw"}'
    forwarded: list[float] = []
    peak = before
    for _ in range(30):
        time.sleep(0.1)
        peak = max(peak, rss_kib(pid))
        forwarded.append(r.metric(series) or 0.0)
    assert forwarded[-1] == forwarded[-10], "forwarding stopped: the server is held back"
    assert forwarded[-1] < 64 * 1024 * 1024, f"{forwarded[-1]:.0f} bytes forwarded"
    assert peak - before < 32 * 1024, f"RSS grew {(peak - before) / 1024:.1f} MiB"
    # the router itself still serves others
    assert sandbox.server_id_at(rw) == 1
    conn.close()
