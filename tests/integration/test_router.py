"""The router in `mpp run`, in front of a real primary-replica sandbox.

Which node a connection through the router reaches is read from `@@server_id` (db1 is 1,
db2 is 2, db3 is 3). The daemon runs as a subprocess with `[router]` and `[api]` (for the
pool's state and the metrics).

Ports: sandboxes 27000-27002, 27010-27012, 27020-27022; router 27100 (rw), 27101 (ro);
API 27102.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from pymysql.constants import COMMAND

from mpp import sandbox
from mpp.sandbox import APP_DATABASE, APP_PASSWORD, APP_USER
from tests.conftest import Cluster

pytestmark = pytest.mark.integration

RW, RO, API = 27100, 27101, 27102
Make = Callable[..., Cluster]


def connect(port: int, timeout: float = 5.0) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(
        host="127.0.0.1",
        port=port,
        user=APP_USER,
        password=APP_PASSWORD,
        database=APP_DATABASE,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        autocommit=True,
        ssl_disabled=True,
    )


def query(conn: pymysql.connections.Connection[Any], sql: str) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql)
        row = cur.fetchone()
        return row[0] if row else None


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def routes_to(port: int, expected: set[int]) -> None:
    seen: list[int | None] = []

    def check() -> bool:
        nonlocal seen
        seen = [sandbox.server_id_at(port) for _ in range(4)]
        return all(s in expected for s in seen)

    try:
        wait_for(f"port {port} to route to {expected}", check)
    except AssertionError as err:
        raise AssertionError(f"{err}; last seen {seen}") from None


def api(path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{API}{path}", timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError as err:
        return 0, str(err)


def pool_doc() -> dict[str, Any]:
    status, body = api("/v1/pools/main")
    return json.loads(body) if status == 200 else {}


def metric(series: str) -> float | None:
    for line in api("/metrics")[1].splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def mpp(cluster: Cluster, *args: str) -> list[str]:
    return [sys.executable, "-m", "mpp", "--config", str(cluster.config_path), *args]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def routed(make_cluster: Make, tmp_path: Path) -> Iterator[Callable[..., tuple[Cluster, int]]]:
    """Factory: a primary-replica sandbox and `mpp run` with [router] and [api]."""
    running: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(base_port: int, extra: str = "", router: str = "") -> tuple[Cluster, int]:
        for port in (RW, RO, API):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    pytest.fail(f"port {port} is in use; this test needs 27100-27102 free")
        cluster = make_cluster(base_port, topology="primary-replica", extra=extra)
        with cluster.config_path.open("a") as f:
            f.write(
                f'\n[router]\nrw = "127.0.0.1:{RW}"\nro = "127.0.0.1:{RO}"\n{router}\n'
                f'\n[api]\nlisten = "127.0.0.1:{API}"\n'
            )
        log = tmp_path / f"mpp-run-{base_port}.log"
        with log.open("w") as out:
            daemon = subprocess.Popen(
                mpp(cluster, "run", "--no-live"), stdout=out, stderr=subprocess.STDOUT
            )
        running.append((daemon, log))
        wait_for("mpp's API to report a healthy loop", lambda: api("/v1/health")[0] == 200)
        return cluster, daemon.pid

    yield start
    for daemon, log in running:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(20)
        text = log.read_text()
        assert code == 0, f"mpp run exited {code}:\n{text[-3000:]}"
        assert "router rw listening on 127.0.0.1:27100 for pool main (uvloop loop)" in text


def test_rw_follows_a_failover_and_ro_spreads_then_falls_back(
    routed: Callable[..., tuple[Cluster, int]],
) -> None:
    cluster, _ = routed(27000)
    routes_to(RW, {1})
    # least connections over the two standbys: four held connections, two each
    readers = [connect(RO) for _ in range(4)]
    ids = sorted(int(query(c, "SELECT @@server_id")) for c in readers)
    assert ids == [2, 2, 3, 3]
    writer = connect(RW)
    assert query(writer, "SELECT @@server_id") == 1
    query(writer, "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY)")
    query(writer, "INSERT INTO t VALUES (1)")

    cluster.kill("db1")  # kill -9
    wait_for(
        "a new primary behind the rw port",
        lambda: sandbox.server_id_at(RW) in (2, 3) and pool_doc().get("switching") is None,
    )
    with pytest.raises(pymysql.OperationalError):
        query(writer, "SELECT @@server_id")  # the old primary's connection is gone
    writer.close()
    new = sandbox.server_id_at(RW)
    assert new in (2, 3)
    (active,) = [n["name"] for n in pool_doc()["nodes"] if n["state"] == "ACTIVE"]
    assert active == f"db{new}"
    conn = connect(RW)
    wait_for("the new primary to take writes", lambda: query(conn, "SELECT @@read_only") == 0)
    query(conn, "INSERT INTO t VALUES (2)")
    conn.close()
    # readers are kept: one node is now the primary, the other still a standby
    assert sorted(int(query(c, "SELECT @@server_id")) for c in readers) == [2, 2, 3, 3]

    other = 5 - new  # the remaining standby: reads go there only
    routes_to(RO, {other})
    cluster.kill(f"db{other}")
    routes_to(RO, {new})  # no standby can serve reads: the ACTIVE node does
    for c in readers:
        c.close()
    assert (metric('mpp_router_connections_total{pool="main",port="rw"}') or 0) > 3


def test_a_client_connecting_during_a_switchover_gets_the_new_primary(
    routed: Callable[..., tuple[Cluster, int]],
) -> None:
    cluster, _ = routed(27010, extra='max_lag = "1h"')
    routes_to(RW, {1})
    # db2 applies events 3 s late: the switchover's catch-up takes that long
    cluster.sql("db2", "STOP SLAVE")
    cluster.sql("db2", "CHANGE MASTER TO MASTER_DELAY = 3")
    cluster.sql("db2", "START SLAVE")
    writer = connect(RW)
    query(writer, "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY)")
    query(writer, "INSERT INTO t VALUES (1)")
    switchover = subprocess.Popen(
        mpp(cluster, "switchover", "main", "--to", "db2", "--timeout", "20s"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for("the switchover to start", lambda: pool_doc().get("switching") == "db2")
        assert switchover.poll() is None
        started = time.monotonic()
        conn = connect(RW, timeout=20)
        waited = time.monotonic() - started
        in_progress_after = pool_doc().get("switching")
        assert query(conn, "SELECT @@server_id") == 2
        assert query(conn, "SELECT @@read_only") == 0, "the new primary, writable"
        query(conn, "INSERT INTO t VALUES (2)")
        conn.close()
        out, _ = switchover.communicate(timeout=30)
    finally:
        if switchover.poll() is None:
            switchover.kill()
    assert switchover.returncode == 0, out
    assert waited > 0.3, f"the connect returned after {waited:.2f}s: it did not wait"
    assert in_progress_after is None
    assert metric('mpp_router_waited_total{pool="main",port="rw"}') == 1
    with pytest.raises(pymysql.OperationalError):
        query(writer, "SELECT 1")  # fenced and closed: its node is no longer ACTIVE
    writer.close()


def test_a_client_that_stops_reading_does_not_grow_the_routers_memory(
    routed: Callable[..., tuple[Cluster, int]],
) -> None:
    _, pid = routed(27020)
    routes_to(RW, {1})
    before = rss_kib(pid)
    conn = connect(RW, timeout=30)
    # 300 MB of result that the client never reads
    sql = "SELECT REPEAT('x', 1048576) FROM seq_1_to_300"
    conn._execute_command(COMMAND.COM_QUERY, sql)  # send only; never read the result
    series = 'mpp_router_bytes_total{direction="to_clients",pool="main",port="rw"}'
    forwarded: list[float] = []
    peak = before
    for _ in range(30):
        time.sleep(0.1)
        peak = max(peak, rss_kib(pid))
        forwarded.append(metric(series) or 0.0)
    assert forwarded[-1] == forwarded[-10], "forwarding stopped: the server is held back"
    assert forwarded[-1] < 64 * 1024 * 1024, f"{forwarded[-1]:.0f} bytes forwarded"
    assert peak - before < 32 * 1024, f"RSS grew {(peak - before) / 1024:.1f} MiB"
    # the router itself still serves others
    assert sandbox.server_id_at(RW) == 1
    conn.close()
