"""Promotion rules on real MariaDB (docs/sites.md): a delayed replica is behind by design,
never an alert and never the successor; a semi-sync primary mpp finds running gets mpp's
semi-sync settings at once, not only after a failover."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pymysql
import pytest

from mpp import sandbox
from mpp.faults import wait_for
from mpp.model import ActionKind, PoolState, State
from mpp.store import SqliteStore
from tests.builders import write_config
from tests.conftest import Cluster
from tests.daemons import MppRun
from tests.driver import Driver
from tests.integration.test_topology import Make, active, app_write, pr_cluster, role, wait_row

pytestmark = pytest.mark.integration

DELAY = 4  # seconds of MASTER_DELAY: past max_lag (1 s) within a few polls


def test_a_delayed_replica_raises_no_alert_and_is_never_promoted(make_cluster: Make) -> None:
    cluster = pr_cluster(make_cluster, max_lag="1s")
    # db2, the first by priority, is the delayed one: without the rule it would take over
    for sql in ("STOP SLAVE", f"CHANGE MASTER TO MASTER_DELAY = {DELAY}", "START SLAVE"):
        cluster.sql("db2", sql)
    with Driver(cluster.config()) as drive:
        assert active(drive.cycle()) == ["db1"]
        app_write(cluster, "db1", 1)
        wait_row(cluster, "db3", 1)
        # the delay shows as lag, past max_lag, for as long as db2 waits to apply the row
        lags: list[int] = []
        deadline = time.monotonic() + DELAY + 1
        while time.monotonic() < deadline:
            state = drive.cycle()
            db2 = state.node("db2")
            assert db2.state is State.STANDBY and db2.req == 0, db2.message
            assert state.alert == ""
            lags.append(db2.lag or 0)
            time.sleep(0.1)
        assert max(lags) >= 2, f"the delay never showed as lag past max_lag: {lags}"
        assert f"MASTER_DELAY {DELAY}s by design" in drive.cycle().node("db2").message
        wait_row(cluster, "db2", 1)
        cluster.kill("db1")
        state = drive.until(lambda s: active(s) not in ([], ["db1"]), cycles=20)
        assert active(state) == ["db3"], "the delayed replica was promoted"
        state = drive.until(lambda s: s.node("db2").message.startswith("replicating from db3"))
        # CHANGE MASTER keeps what it is not given: the repoint left db2 delayed
        assert _sql_delay(cluster, "db2") == DELAY


def _sql_delay(cluster: Cluster, node: str) -> int:
    conn = sandbox.admin_connect(cluster.dir, node)
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SHOW SLAVE STATUS")
            row = cur.fetchone()
        return int(row["SQL_Delay"]) if row else -1
    finally:
        conn.close()


def _semi(cluster: Cluster, node: str) -> tuple[int, int, str]:
    rows = cluster.sql(
        node,
        "SELECT @@global.rpl_semi_sync_master_enabled, @@global.rpl_semi_sync_master_timeout, "
        "@@global.rpl_semi_sync_master_wait_point",
    )
    enabled, timeout, point = rows[0]
    return int(str(enabled)), int(str(timeout)), str(point)


def test_a_running_primarys_semi_sync_settings_are_corrected_at_start(make_cluster: Make) -> None:
    cluster = pr_cluster(make_cluster, semi_sync=True, semi_sync_timeout="7s")
    # what a primary set up by hand (or the sandbox) may run with: on, 1 s, AFTER_COMMIT
    for sql in (
        "SET GLOBAL rpl_semi_sync_master_timeout = 1000",
        "SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_COMMIT'",
        "SET GLOBAL rpl_semi_sync_master_enabled = ON",
    ):
        cluster.sql("db1", sql)
    assert _semi(cluster, "db1") == (1, 1000, "AFTER_COMMIT")
    with Driver(cluster.config()) as drive:
        state = drive.cycle()
        assert active(state) == ["db1"]
        drive.until(lambda s: _semi(cluster, "db1") == (1, 7000, "AFTER_SYNC"), cycles=10)
        history = drive.store.history("main", limit=100)
        applied = [e for e in history if e.action is ActionKind.SEMI_SYNC]
        assert [(e.node, e.new) for e in applied] == [("db1", "ok")]
        assert not [e for e in history if e.action is ActionKind.PROMOTE], "no promotion"
        for _ in range(3):  # settled: nothing more is asked
            drive.cycle()
        again = [
            e for e in drive.store.history("main", limit=100) if e.action is ActionKind.SEMI_SYNC
        ]
        assert len(again) == 1


def test_losing_the_primarys_site_waits_for_the_cli_takeover(
    make_cluster: Make, tmp_path: Path
) -> None:
    """cross_site = "manual", db1 and db2 in dc1, db3 in dc2: dc1 lost whole, mpp run
    keeps db3 a replica with the pool's alert until `mpp takeover main --to db3`."""
    cluster = pr_cluster(make_cluster, cross_site="manual")
    doc = copy.deepcopy(cluster.doc)
    for node, site in zip(doc["pool"][0]["node"], ["dc1", "dc1", "dc2"], strict=True):
        node["site"] = site
    write_config(cluster.config_path, doc)
    store = SqliteStore(cluster.config().state_path)
    daemon = MppRun(cluster.config_path, tmp_path / "mpp-run.log")
    try:

        def stored() -> PoolState:
            snap = store.load("main")
            return snap.state if snap is not None else PoolState("main")

        wait_for("db1 ACTIVE", lambda: active(stored()) == ["db1"], 15)
        out = cluster.cli("status", "--json")
        nodes = json.loads(out.stdout)["pools"][0]["nodes"]
        assert [n["site"] for n in nodes] == ["dc1", "dc1", "dc2"]
        cluster.kill("db2")
        cluster.kill("db1")
        wait_for("the cross-site alert", lambda: "cross_site = manual" in stored().alert, 15)
        time.sleep(1.0)  # five more polls: still nobody promoted
        assert active(stored()) == ["db1"]
        assert role(cluster, "db3")[0] == 1, "db3 is still a read-only replica"
        out = cluster.cli("takeover", "main", "--to", "db3")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "TAKEOVER" in out.stdout
        wait_for("db3 writable", lambda: role(cluster, "db3") == (0, None), 10)
        alerts = [e for e in store.history("main", limit=200) if e.new == "ALERT"]
        assert alerts and "no eligible node left in site dc1" in alerts[0].reason
    finally:
        daemon.stop()
        store.close()
