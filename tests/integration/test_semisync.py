"""Strict semi-sync and mpp's heartbeat row on real MariaDB processes."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import pymysql
import pytest

from mpp import sandbox
from mpp.act.heartbeat import HeartbeatWriter
from mpp.config import load
from mpp.faults import wait_for
from mpp.model import PoolState, State
from mpp.probe.connection import pool_targets
from mpp.probe.flavor import Flavor
from mpp.probe.mysql import NodeProber
from mpp.store import SqliteStore
from tests import probes
from tests.conftest import Cluster
from tests.driver import Driver

pytestmark = pytest.mark.integration

Make = Callable[..., Cluster]
MAX_TIMEOUT = 18446744073709551615


def semi_primary(cluster: Cluster, node: str) -> tuple[int, int, int, int]:
    """(enabled, wait_no_slave, timeout is the maximum, semi-sync clients) on `node`."""
    row = cluster.sql(
        node,
        "SELECT @@global.rpl_semi_sync_master_enabled, "
        "@@global.rpl_semi_sync_master_wait_no_slave, "
        f"@@global.rpl_semi_sync_master_timeout = {MAX_TIMEOUT}, "
        "(SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
        "WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS')",
    )[0]
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])  # type: ignore[call-overload]


def timed_write(cluster: Cluster, value: int, timeout: float) -> float | None:
    """Seconds until the app's INSERT on db1 was acknowledged; None: not within timeout."""
    conn = probes.app_connect(probes.node_port(cluster.dir, "db1"), timeout)
    try:
        started = time.monotonic()
        probes.query_one(conn, "CREATE TABLE IF NOT EXISTS s (id INT PRIMARY KEY)")
        probes.query_one(conn, "INSERT INTO s VALUES (%s)", (value,))
        return time.monotonic() - started
    except pymysql.err.OperationalError:
        return None
    finally:
        conn.close()


def history(cluster: Cluster) -> list[tuple[str, str, str]]:
    store = SqliteStore(cluster.config().state_path)
    try:
        return [(e.old, e.new, e.reason) for e in store.history("main")]
    finally:
        store.close()


def settle(driver: Driver, cluster: Cluster) -> PoolState:
    """Cycles until db1 is a strict semi-sync primary with both replicas acknowledging."""

    def ready(state: PoolState) -> bool:
        states = [n.state for n in state.nodes]
        return states == [State.ACTIVE, State.STANDBY, State.STANDBY] and semi_primary(
            cluster, "db1"
        ) == (1, 1, 1, 2)

    return driver.until(ready, cycles=80)


def test_strict_semi_sync_waits_then_relaxes_after_the_fallback(make_cluster: Make) -> None:
    cluster = make_cluster(
        topology="primary-replica", pool={"semi_sync": "strict", "max_lag": "1h"}
    )
    with Driver(cluster.config()) as driver:
        settle(driver, cluster)  # strict applied to the primary mpp found, replicas semi-sync
        assert timed_write(cluster, 1, 5.0) is not None
        for replica in ("db2", "db3"):
            cluster.kill(replica)
        # never: the primary cut off from every replica acknowledges nothing
        waited: list[float | None] = []
        blocked = threading.Thread(target=lambda: waited.append(timed_write(cluster, 2, 4.0)))
        blocked.start()
        for _ in range(12):
            state = driver.cycle()
            time.sleep(0.2)
        blocked.join()
        assert waited == [None], "a strict primary with no replica acknowledged a write"
        assert "never relaxed" in state.alert and state.semi_sync_relaxed is None
        assert semi_primary(cluster, "db1")[0] == 1

    # the same pool with semi_sync_fallback = "2s": relaxed once alone for 2 s, then strict
    # again when a replica is back
    for replica in ("db2", "db3"):
        cluster.start(replica)
    relaxing = cluster.variant(
        "fallback", {"pool": [{**cluster.doc["pool"][0], "semi_sync_fallback": "2s"}]}
    )
    with Driver(load(relaxing)) as driver:
        driver.until(lambda s: s.semi_sync_alone_since is None and not s.alert, cycles=80)
        for replica in ("db2", "db3"):
            cluster.kill(replica)
        took: list[float | None] = []
        writer = threading.Thread(target=lambda: took.append(timed_write(cluster, 3, 12.0)))
        writer.start()
        started = time.monotonic()
        while writer.is_alive() and time.monotonic() - started < 15:
            state = driver.cycle()
            time.sleep(0.2)
        writer.join()
        assert took and took[0] is not None, "not acknowledged after the fallback"
        print(f"strict, semi_sync_fallback 2s: acknowledged after {took[0]:.2f} s")
        assert 1.8 <= took[0] <= 8.0, took
        assert state.semi_sync_relaxed == "db1" and "RPO risk" in state.alert
        assert any(new == "relaxed" and "RPO risk" in why for _, new, why in history(cluster))
        assert semi_primary(cluster, "db1")[0] == 0
        cluster.start("db2")
        state = driver.until(
            lambda s: s.semi_sync_relaxed is None and semi_primary(cluster, "db1")[:3] == (1, 1, 1),
            cycles=80,
        )
        assert not state.alert
        assert any(new == "strict" for _, new, _ in history(cluster))


def test_heartbeat_row_written_through_the_primary_and_read_on_replicas(
    make_cluster: Make,
) -> None:
    cluster = make_cluster(topology="primary-replica", pool={"heartbeat": "200ms"})
    config = cluster.config()
    pool = config.get_pool("main")
    probers = {n: NodeProber(t, heartbeat=True) for n, t in pool_targets(config, pool).items()}
    try:
        # no table anywhere yet: the probe says so (None) and serves as before
        before = probers["db2"].probe()
        assert before.reachable and not before.error and before.heartbeat is None
        gtid = cluster.sql("db1", "SELECT @@global.gtid_binlog_pos")[0][0]
        writer = HeartbeatWriter(config, pool)
        writer.aim("db1")
        try:

            def fresh(node: str) -> bool:
                obs = probers[node].probe()
                return obs.heartbeat is not None and obs.at - obs.heartbeat < 1.0

            wait_for("the heartbeat row on db2 and db3", lambda: fresh("db2") and fresh("db3"), 10)
            # frozen: the writes sent meanwhile queue on the server and run when it resumes,
            # more than a period late, so they change nothing
            frozen_at = time.time()
            cluster.kill("db1", signal.SIGSTOP)
            time.sleep(2.5)
        finally:
            writer.close()  # what the loop does once db1 stops answering
            time.sleep(0.5)  # longer than a period: the last write sent is out of date
            cluster.start("db1")  # SIGCONT
        time.sleep(1.0)
        assert float(cluster.sql("db1", "SELECT ts FROM mpp.heartbeat")[0][0]) <= frozen_at  # type: ignore[arg-type]
        assert cluster.sql("db1", "SELECT @@global.gtid_binlog_pos")[0][0] != gtid
        # a write that reaches the server after its period, or a fenced server, changes
        # nothing and logs nothing: never an errant transaction on an old primary
        time.sleep(0.3)
        gtid = cluster.sql("db1", "SELECT @@global.gtid_binlog_pos")[0][0]
        beat(cluster, 1.0, time.time() - 5)  # sent more than a period ago
        cluster.sql("db1", "SET GLOBAL read_only = ON")
        beat(cluster, 2.0, time.time() + 5)  # fenced
        assert cluster.sql("db1", "SELECT @@global.gtid_binlog_pos")[0][0] == gtid
        assert float(cluster.sql("db1", "SELECT ts FROM mpp.heartbeat")[0][0]) > 2  # type: ignore[arg-type]
        assert writer.node is None
    finally:
        for prober in probers.values():
            prober.close()


def beat(cluster: Cluster, ts: float, deadline: float) -> None:
    """mpp's heartbeat write as the writer sends it (mpp.probe.flavor), by hand."""
    conn = sandbox.admin_connect(cluster.dir, "db1")
    try:
        with conn.cursor() as cur:
            cur.execute(Flavor("mariadb", (10, 11, 0)).heartbeat_write_sql, (ts, deadline))
    finally:
        conn.close()
