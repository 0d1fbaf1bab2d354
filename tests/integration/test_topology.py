"""Primary-replica failover, switchover, takeover and rejoin on real MariaDB processes."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql
import pytest

from mpp.act.executor import Executor
from mpp.faults import wait_for
from mpp.logic import logic_for
from mpp.model import ActionKind, Fence, PoolState, State, Switchover, Takeover
from mpp.run.transact import transact
from tests import probes
from tests.conftest import Cluster
from tests.daemons import MppRun
from tests.driver import Driver

pytestmark = pytest.mark.integration

Make = Callable[..., Cluster]


def pr_cluster(make: Make, nodes: int = 3, **pool: Any) -> Cluster:
    """A primary-replica sandbox; `pool` keys over its pool's (max_lag="1h", ...)."""
    return make(nodes=nodes, topology="primary-replica", pool=pool)


def active(state: PoolState) -> list[str]:
    return [n.name for n in state.nodes if n.state is State.ACTIVE]


def role(cluster: Cluster, node: str) -> tuple[int, int | None]:
    return probes.role(cluster.dir, node)


def port(cluster: Cluster, node: str) -> int:
    return probes.node_port(cluster.dir, node)


def app_write(cluster: Cluster, node: str, value: int) -> None:
    conn = probes.app_connect(port(cluster, node))
    try:
        probes.query_one(conn, "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY)")
        probes.query_one(conn, "INSERT INTO t VALUES (%s)", (value,))
    finally:
        conn.close()


def has_row(cluster: Cluster, node: str, value: int) -> bool:
    try:
        rows = cluster.sql(node, f"SELECT COUNT(*) FROM app.t WHERE id = {int(value)}")
    except pymysql.MySQLError:  # not there yet (the table, or the server)
        return False
    return bool(rows and rows[0][0])


def wait_row(cluster: Cluster, node: str, value: int, seconds: float = 10.0) -> None:
    wait_for(f"row {value} to reach {node}", lambda: has_row(cluster, node, value), seconds)


def request(driver: Driver, command: Any) -> None:
    worker = driver.workers[0]
    spec = worker.spec
    transact(
        driver.store,
        spec,
        lambda prev: logic_for("failover").apply_command(spec, prev, command, time.time()),
    )


def test_kill_primary_promotes_one_repoints_others_fences_and_rejoins_old(
    make_cluster: Make,
) -> None:
    cluster = pr_cluster(make_cluster)
    with Driver(cluster.config()) as drive:
        assert active(drive.cycle()) == ["db1"]
        app_write(cluster, "db1", 1)
        wait_row(cluster, "db3", 1)
        cluster.kill("db1")
        state = drive.until(lambda s: active(s) != ["db1"], cycles=10)
        (new,) = active(state)
        assert state.node("db1").state is State.FAILED_OFFLINE
        other = ({"db2", "db3"} - {new}).pop()
        state = drive.until(lambda s: role(cluster, other)[1] == port(cluster, new), cycles=20)
        assert role(cluster, new) == (0, None), "the new primary is writable and replicates nobody"
        # the repoint asked the new source for a heartbeat every poll interval (200 ms here)
        (row,) = cluster.sql(other, "SHOW GLOBAL STATUS LIKE 'Slave_heartbeat_period'")
        assert float(str(row[1])) == pytest.approx(0.2)
        app_write(cluster, new, 2)
        wait_row(cluster, other, 2)
        history = drive.store.history("main", limit=1000)
        assert [e for e in history if e.action is ActionKind.PROMOTE and e.new == "ok"]

        cluster.start("db1")  # comes back writable (it was a primary)
        state = drive.until(lambda s: s.node("db1").state is State.STANDBY, cycles=40)
        assert "auto-rejoined" in state.node("db1").message
        assert role(cluster, "db1") == (1, port(cluster, new))
        wait_row(cluster, "db1", 2)
        assert active(state) == [new]
        fences = [
            e
            for e in drive.store.history("main", limit=1000)
            if e.action is ActionKind.FENCE and e.node == "db1" and e.new == "ok"
        ]
        assert fences, "the returning old primary was fenced before it was rejoined"


def test_errant_transaction_on_returning_primary_is_quarantined(make_cluster: Make) -> None:
    cluster = pr_cluster(make_cluster)
    with Driver(cluster.config()) as drive:
        drive.cycle()
        app_write(cluster, "db1", 1)
        wait_row(cluster, "db2", 1)
        cluster.kill("db1")
        state = drive.until(lambda s: active(s) not in ([], ["db1"]), cycles=10)
        (new,) = active(state)
        cluster.start("db1")
        app_write(cluster, "db1", 99)  # a write nobody else has: errant
        state = drive.until(lambda s: "errant" in s.node("db1").message, cycles=20)
        assert state.node("db1").state is State.FAILED_ONLINE
        assert "0-1-" in state.node("db1").message
        for _ in range(3):
            state = drive.cycle()
        assert role(cluster, "db1") == (1, None), "fenced read-only, not rejoined"
        assert state.node("db1").state is State.FAILED_ONLINE
        assert active(state) == [new]


def test_switchover_there_and_back(make_cluster: Make) -> None:
    cluster = pr_cluster(make_cluster)
    with Driver(cluster.config()) as drive:
        drive.cycle()
        app_write(cluster, "db1", 1)
        request(drive, Switchover("db2", timeout=5.0, id="a"))
        state = drive.cycle()
        assert active(state) == ["db2"]
        assert state.node("db1").state is State.STANDBY and state.draining == ()
        assert role(cluster, "db2") == (0, None)
        assert role(cluster, "db1") == (1, port(cluster, "db2"))
        assert role(cluster, "db3") == (1, port(cluster, "db2"))
        app_write(cluster, "db2", 2)
        wait_row(cluster, "db1", 2)
        drive.until(
            lambda s: s.node("db1").req == 0 and "replicating from db2" in s.node("db1").message
        )
        request(drive, Switchover("db1", timeout=5.0, id="b"))
        state = drive.cycle()
        assert active(state) == ["db1"]
        assert role(cluster, "db1") == (0, None)
        assert role(cluster, "db2") == (1, port(cluster, "db1"))
        app_write(cluster, "db1", 3)
        wait_row(cluster, "db2", 3)
        wait_row(cluster, "db3", 3)


def test_switchover_to_a_delayed_replica_is_refused_and_the_primary_keeps_writing(
    make_cluster: Make,
) -> None:
    """A replica delayed by MASTER_DELAY would first have to apply all it holds back, or
    lose it (docs/sites.md): the switchover is refused before anything is touched. (This
    test rolled a switchover back on the same delayed replica before delayed replicas were
    recognised; the rollback itself is tested in tests/unit.)"""
    cluster = pr_cluster(make_cluster, max_lag="1h")
    with Driver(cluster.config()) as drive:
        drive.cycle()
        cluster.sql("db2", "STOP SLAVE")
        cluster.sql("db2", "CHANGE MASTER TO MASTER_DELAY = 60")
        cluster.sql("db2", "START SLAVE")
        app_write(cluster, "db1", 1)
        drive.cycle()
        request(drive, Switchover("db2", timeout=1.0, id="lag"))
        state = drive.cycle()
        assert active(state) == ["db1"]
        assert state.switching is None and state.draining == ()
        assert role(cluster, "db1") == (0, None), "the old primary takes writes still"
        app_write(cluster, "db1", 2)
        events = drive.store.history("main", limit=1000)
        refused = [e for e in events if e.new == "refused"]
        assert refused and "delayed" in refused[-1].reason, [e.reason for e in refused]


def test_takeover_with_a_dead_primary_when_auto_failover_is_off(make_cluster: Make) -> None:
    cluster = pr_cluster(make_cluster, auto_failover=False)
    with Driver(cluster.config()) as drive:
        drive.cycle()
        cluster.kill("db1")
        for _ in range(6):
            state = drive.cycle()
        assert active(state) == ["db1"] and "auto_failover" in state.alert
        request(drive, Takeover("db3", id="t"))
        state = drive.cycle()
        assert active(state) == ["db3"]
        state = drive.until(lambda s: role(cluster, "db2")[1] == port(cluster, "db3"), cycles=10)
        assert role(cluster, "db3") == (0, None)


def test_mpp_killed_mid_failover_restarts_to_one_primary(make_cluster: Make) -> None:
    cluster = pr_cluster(make_cluster)
    with Driver(cluster.config()) as drive:
        drive.cycle()
        cluster.kill("db1")
        worker = drive.workers[0]
        for _ in range(10):  # decide and commit, but "crash" before any action runs
            observations = asyncio.run(worker.observe())
            decision = worker.commit(observations, time.time())
            if decision.actions:
                break
        recorded = active(decision.state)
        assert len(recorded) == 1 and recorded != ["db1"]
    with Driver(cluster.config()) as restarted:
        state = restarted.until(lambda s: role(cluster, recorded[0]) == (0, None), cycles=10)
        assert active(state) == recorded, "the recorded node, not another"
        other = ({"db2", "db3"} - set(recorded)).pop()
        restarted.until(lambda s: role(cluster, other)[1] == port(cluster, recorded[0]))
        writable = [n for n in ("db2", "db3") if role(cluster, n)[0] == 0]
        assert writable == recorded


def test_hung_primary_fails_over_and_is_fenced_when_it_wakes(make_cluster: Make) -> None:
    cluster = pr_cluster(make_cluster)
    with Driver(cluster.config()) as drive:
        drive.cycle()
        cluster.kill("db1", signal.SIGSTOP)
        try:
            state = drive.until(lambda s: active(s) not in ([], ["db1"]), cycles=60)
        finally:
            cluster.kill("db1", signal.SIGCONT)
        (new,) = active(state)
        state = drive.until(lambda s: s.node("db1").state is State.STANDBY, cycles=60)
        assert role(cluster, "db1") == (1, port(cluster, new))


def test_replica_blip_does_not_fail_the_primary_over(make_cluster: Make) -> None:
    cluster = pr_cluster(make_cluster)
    with Driver(cluster.config()) as drive:
        drive.cycle()
        cluster.sql("db2", "STOP SLAVE IO_THREAD")
        for _ in range(2):
            assert active(drive.cycle()) == ["db1"]
        cluster.sql("db2", "START SLAVE IO_THREAD")
        state = drive.until(lambda s: s.node("db2").req == 0)
        assert active(state) == ["db1"]
        promotes = [
            e for e in drive.store.history("main", limit=1000) if e.action is ActionKind.PROMOTE
        ]
        assert promotes == []


def test_switchover_through_the_cli_with_a_running_daemon(
    make_cluster: Make, tmp_path: Path
) -> None:
    cluster = pr_cluster(make_cluster)
    daemon = MppRun(cluster.config_path, tmp_path / "mpp-run.log")
    try:
        time.sleep(1.0)
        out = cluster.cli("switchover", "main", "--to", "db3", "--timeout", "5s")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "SWITCHOVER" in out.stdout
        assert role(cluster, "db3") == (0, None)
        out = cluster.cli("switchover", "main", "--to", "db1")
        assert out.returncode == 0, out.stdout + out.stderr
        assert role(cluster, "db1") == (0, None)
        refused = cluster.cli("switchover", "main", "--to", "nosuch")
        assert refused.returncode == 1 and "no node 'nosuch'" in refused.stderr
    finally:
        daemon.stop()


def _var(cluster: Cluster, node: str, name: str) -> int:
    rows = cluster.sql(node, f"SHOW GLOBAL {name}")
    return int(str(rows[0][1]).replace("ON", "1").replace("OFF", "0")) if rows else -1


def semi(cluster: Cluster, node: str) -> tuple[int, int]:
    return (
        _var(cluster, node, "VARIABLES LIKE 'rpl_semi_sync_master_enabled'"),
        _var(cluster, node, "VARIABLES LIKE 'rpl_semi_sync_slave_enabled'"),
    )


def test_semi_sync_is_configured_and_follows_a_failover(make_cluster: Make) -> None:
    cluster = pr_cluster(make_cluster, semi_sync=True)
    with Driver(cluster.config()) as drive:
        drive.until(
            lambda s: (
                semi(cluster, "db1") == (1, 0)
                and semi(cluster, "db2") == (0, 1)
                and semi(cluster, "db3") == (0, 1)
            ),
            cycles=20,
        )
        drive.until(
            lambda s: _var(cluster, "db1", "STATUS LIKE 'Rpl_semi_sync_master_clients'") == 2
        )
        before = _var(cluster, "db1", "STATUS LIKE 'Rpl_semi_sync_master_yes_tx'")
        app_write(cluster, "db1", 1)
        assert _var(cluster, "db1", "STATUS LIKE 'Rpl_semi_sync_master_yes_tx'") > before
        cluster.kill("db1")
        state = drive.until(lambda s: active(s) not in ([], ["db1"]), cycles=10)
        (new,) = active(state)
        other = ({"db2", "db3"} - {new}).pop()
        drive.until(
            lambda s: semi(cluster, new) == (1, 0) and role(cluster, other)[1] == port(cluster, new)
        )
        drive.until(lambda s: _var(cluster, new, "STATUS LIKE 'Rpl_semi_sync_master_clients'") == 1)
        acked = _var(cluster, new, "STATUS LIKE 'Rpl_semi_sync_master_yes_tx'")
        app_write(cluster, new, 2)
        assert _var(cluster, new, "STATUS LIKE 'Rpl_semi_sync_master_yes_tx'") > acked


def test_hooks_run_with_their_environment_and_a_failing_pre_hook_vetoes(
    make_cluster: Make, tmp_path: Any
) -> None:
    log = tmp_path / "hooks.log"
    hooks = {
        "pre_failover": f"echo pre $MPP_EVENT $MPP_OLD $MPP_NEW >> {log}",
        "post_failover": f"echo post $MPP_OLD $MPP_NEW >> {log}",
        "pre_switchover": "echo refusing >&2; exit 3",
        "on_state_change": f"echo change $MPP_NODE $MPP_OLD $MPP_NEW >> {log}",
        "timeout": "5s",
    }
    cluster = pr_cluster(make_cluster, hooks=hooks)
    with Driver(cluster.config()) as drive:
        drive.cycle()
        request(drive, Switchover("db2", id="veto"))
        state = drive.cycle()
        assert active(state) == ["db1"] and state.switching is None
        assert role(cluster, "db1") == (0, None), "vetoed before anything was fenced"
        vetoed = [e for e in drive.store.history("main", limit=100) if e.new == "vetoed"]
        assert vetoed and "exited 3" in vetoed[0].reason
        cluster.kill("db1")
        state = drive.until(lambda s: active(s) not in ([], ["db1"]), cycles=10)
        (new,) = active(state)
        wait_for("the post_failover hook", lambda: "post" in log.read_text(), 10)
        lines = log.read_text().splitlines()
        assert f"pre failover db1 {new}" in lines
        assert f"post db1 {new}" in lines
        assert "change db1 ACTIVE FAILED_OFFLINE" in lines


def test_fence_never_acknowledges_a_commit_no_replica_has(make_cluster: Make) -> None:
    """Semi-sync primary whose replicas stopped acknowledging: writers wait for an ACK that
    never comes. The fence must leave it read-only with every waiting writer refused (an
    error, never an OK), including writers that arrive while it works."""
    cluster = pr_cluster(make_cluster, semi_sync=True)
    with Driver(cluster.config()) as drive:
        drive.until(
            lambda s: _var(cluster, "db1", "STATUS LIKE 'Rpl_semi_sync_master_clients'") == 2
        )
        app_write(cluster, "db1", 0)  # creates the table, acknowledged
        for replica in ("db2", "db3"):
            cluster.sql(replica, "STOP SLAVE IO_THREAD")
        # commits pair up in one binlog group: its leader waits for the ACK for both, and
        # killing that leader first would hand its follower an OK
        cluster.sql("db1", "SET GLOBAL binlog_commit_wait_count = 2")
        cluster.sql("db1", "SET GLOBAL binlog_commit_wait_usec = 2000000")
        outcomes: dict[int, str] = {}

        def write(value: int) -> None:
            try:
                app_write(cluster, "db1", value)
                outcomes[value] = "OK"
            except pymysql.MySQLError as err:
                outcomes[value] = f"error {err.args[0]}"

        writers = [threading.Thread(target=write, args=(i,)) for i in range(1, 7)]
        for w in writers[:4]:  # these wait for the ACK before the fence starts
            w.start()
            time.sleep(0.05)
        time.sleep(0.3)
        waiting = cluster.sql(
            "db1",
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
            "WHERE STATE LIKE 'Waiting for semi-sync ACK%'",
        )
        assert int(str(waiting[0][0])) >= 1, "a group leader should be waiting for the ACK"
        executor = Executor(cluster.config(), cluster.config().pool[0])

        def start_the_rest() -> None:
            for w in writers[4:]:
                w.start()

        late = threading.Timer(0.01, start_the_rest)
        late.start()
        (outcome,) = executor.run([Fence("db1")])
        late.join()
        for w in writers:
            w.join(timeout=10)
        assert outcome.ok, outcome.detail
        assert role(cluster, "db1")[0] == 1
        assert sorted(outcomes) == [1, 2, 3, 4, 5, 6]
        assert "OK" not in outcomes.values(), outcomes
