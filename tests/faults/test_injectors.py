"""The named injectors on real sandboxes: each fault shown to be really there, seen the way a
manager would see it (thread states, lag, 1040 on a fresh connection, an errant GTID), and
each heal shown to undo it. An injector that only pretends would make every scenario built
on it pass."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias

import pymysql
import pymysql.connections
import pymysql.cursors
import pytest

from mpp import faults, sandbox
from mpp.sandbox.layout import PASSWORD_FILE
from tests.conftest import Cluster
from tests.driver import Driver
from tests.integration.test_topology import pr_cluster

Make = Callable[..., Cluster]
Conn: TypeAlias = "pymysql.connections.Connection[pymysql.cursors.Cursor]"

# what CHANGE MASTER sets: a heal must leave every one of these as it found them
SOURCE_SETTINGS = ("Master_Host", "Master_Port", "Master_User", "Connect_Retry", "Using_Gtid")


def status(d: Path, node: str) -> dict[str, Any]:
    row = faults.replica_status(d, node)
    assert row, f"{node} should be a replica"
    return row


def threads(d: Path, node: str) -> tuple[str, str]:
    row = status(d, node)
    return str(row["Slave_IO_Running"]), str(row["Slave_SQL_Running"])


def insert(d: Path, node: str, *ids: int) -> None:
    for i in ids:
        faults.root_sql(d, node, f"INSERT INTO app.{faults.TABLE} (id) VALUES ({i})")


def connect(d: Path, node: str, user: str, password: str) -> Conn:
    return pymysql.connect(
        host="127.0.0.1",
        port=faults.ports(d)[node],
        user=user,
        password=password,
        connect_timeout=2,
        read_timeout=2,
        ssl_disabled=True,
    )


def refused_with(d: Path, node: str, user: str, password: str) -> int | None:
    """The error code a fresh connection gets, None when it gets in."""
    try:
        connect(d, node, user, password).close()
    except pymysql.MySQLError as err:
        return int(err.args[0])
    return None


def test_stop_io_and_stop_sql_stop_one_thread_each_and_the_heal_restarts_it(
    make_cluster: Make,
) -> None:
    d = pr_cluster(make_cluster).dir
    faults.create_table(d)

    undo = faults.stop_io(d, "db2")
    assert threads(d, "db2") == ("No", "Yes")
    assert status(d, "db2")["Last_IO_Errno"] == 0, "stopped, not failing"
    insert(d, "db1", 1)
    pos = faults.gtid_binlog_pos(d, "db1")
    assert faults.wait_caught_up(d, "db3", pos)
    assert not faults.wait_caught_up(d, "db2", pos, timeout=0.5), "db2 fetches nothing"
    undo()
    undo()  # a second call is harmless
    # START SLAVE returns before the thread is connected ("Preparing", then "Yes")
    faults.wait_for("db2's IO thread", lambda: threads(d, "db2") == ("Yes", "Yes"), 5, 0.02)
    assert faults.wait_caught_up(d, "db2", pos)

    undo = faults.stop_sql(d, "db3")
    assert threads(d, "db3") == ("Yes", "No")
    insert(d, "db1", 2)
    pos = faults.gtid_binlog_pos(d, "db1")
    # db3 still receives the transaction (its IO position reaches it) but applies nothing
    faults.wait_for("db3 to fetch", lambda: status(d, "db3")["Gtid_IO_Pos"] == pos, 5)
    assert faults.present_ids(d, "db3", [2]) == set()
    undo()
    faults.wait_for("db3's SQL thread", lambda: threads(d, "db3") == ("Yes", "Yes"), 5, 0.02)
    assert faults.wait_caught_up(d, "db3", pos)
    assert faults.present_ids(d, "db3", [1, 2]) == {1, 2}


def test_break_io_leaves_the_io_thread_connecting_with_an_error_and_the_heal_restores_it(
    make_cluster: Make,
) -> None:
    d = pr_cluster(make_cluster).dir
    faults.create_table(d)
    before = status(d, "db2")

    undo = faults.break_io(d, "db2")
    faults.wait_for(
        "db2's IO thread to fail",
        lambda: status(d, "db2")["Last_IO_Errno"] == 1045,  # access denied
        timeout=5,
        every=0.05,
    )
    broken = status(d, "db2")
    assert broken["Slave_IO_Running"] == "Connecting"
    assert broken["Slave_SQL_Running"] == "Yes"
    assert broken["Seconds_Behind_Master"] is None
    # only the password changed: the replica still points at the real primary, with GTID
    assert {k: broken[k] for k in SOURCE_SETTINGS} == {k: before[k] for k in SOURCE_SETTINGS}
    insert(d, "db1", 1)
    pos = faults.gtid_binlog_pos(d, "db1")
    assert not faults.wait_caught_up(d, "db2", pos, timeout=1)

    undo()
    healed = status(d, "db2")
    assert {k: healed[k] for k in SOURCE_SETTINGS} == {k: before[k] for k in SOURCE_SETTINGS}
    assert faults.wait_caught_up(d, "db2", pos), "connected again with the right password"
    faults.wait_for(
        "db2's IO thread to run",
        lambda: threads(d, "db2") == ("Yes", "Yes") and status(d, "db2")["Last_IO_Errno"] == 0,
        timeout=5,
    )


def test_lag_grows_seconds_behind_master_with_threads_running_and_the_heal_catches_up(
    make_cluster: Make,
) -> None:
    d = pr_cluster(make_cluster).dir
    faults.create_table(d)
    # a rate-limited writer (about 50 rows/s) so that catching up takes no time
    writer = faults.StaleClient("db1", faults.ports(d)["db1"], first_id=1, pause=0.02)
    writer.start()
    try:
        assert faults.poll_until(lambda: len(writer.acks) >= 10, 5), writer.errors[-3:]
        undo = faults.lag(d, "db2")
        faults.wait_for(
            "db2 to lag more than 2 s",
            lambda: (status(d, "db2")["Seconds_Behind_Master"] or 0) > 2,
            timeout=10,
            every=0.2,
        )
        lagging = status(d, "db2")
        assert (lagging["Slave_IO_Running"], lagging["Slave_SQL_Running"]) == ("Yes", "Yes")
        assert lagging["Slave_SQL_Running_State"] == "Waiting for table metadata lock"
        assert status(d, "db3")["Seconds_Behind_Master"] <= 1, "only db2 lags"

        undo()
        faults.wait_for(
            "db2 to catch up",
            lambda: status(d, "db2")["Seconds_Behind_Master"] == 0,
            timeout=10,
            every=0.1,
        )
        assert threads(d, "db2") == ("Yes", "Yes")
    finally:
        writer.close()
    assert writer.acks and writer.ambiguous == []
    assert faults.wait_caught_up(d, "db2", faults.gtid_binlog_pos(d, "db1"))
    assert faults.lost_ids(d, "db2", [a.id for a in writer.acks]) == []


def test_exhaust_connections_refuses_every_new_session_but_keeps_the_old_ones(
    make_cluster: Make,
) -> None:
    d = pr_cluster(make_cluster).dir
    faults.create_table(d)
    mpp_password = (d / PASSWORD_FILE).read_text().strip()
    grants = faults.root_sql(d, "db1", f"SHOW GRANTS FOR '{sandbox.MPP_USER}'@'127.0.0.1'")
    assert "ALL PRIVILEGES ON *.*" in str(grants[0][0]), "mpp has SUPER: it gets the extra slot"
    app = faults.app_connect(faults.ports(d)["db1"], timeout=2)
    probe = connect(d, "db1", sandbox.MPP_USER, mpp_password)  # stands in for mpp's probe
    original = faults.root_sql(d, "db1", "SELECT @@global.max_connections")[0][0]

    undo = faults.exhaust_connections(d, "db1")
    try:
        for user, password in [
            (sandbox.APP_USER, sandbox.APP_PASSWORD),
            (sandbox.MPP_USER, mpp_password),
            ("root", sandbox.ROOT_PASSWORD),
        ]:
            assert refused_with(d, "db1", user, password) == 1040, user
        # an old session still answers, and what it writes still reaches the replicas
        # (their IO threads' sessions were open before)
        with app.cursor() as cur:
            cur.execute(f"INSERT INTO {faults.TABLE} (id) VALUES (1)")
            cur.execute("SELECT @@global.gtid_binlog_pos")
            pos = str(cur.fetchall()[0][0])
        assert faults.wait_caught_up(d, "db2", pos)
        assert threads(d, "db2") == ("Yes", "Yes")
        # mpp's session was killed, so it has to reconnect, and cannot
        with pytest.raises(pymysql.MySQLError), probe.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        undo()
    undo()
    faults.app_connect(faults.ports(d)["db1"]).close()
    connect(d, "db1", sandbox.MPP_USER, mpp_password).close()
    assert faults.root_sql(d, "db1", "SELECT @@global.max_connections")[0][0] == original
    assert faults.present_ids(d, "db2", [1]) == {1}
    app.close()


def test_exhaust_connections_is_what_mpp_sees_too(make_cluster: Make) -> None:
    """Killing mpp's sessions is what makes the fault visible to it: its probe reuses one
    session, which would otherwise go on answering."""
    cluster = pr_cluster(make_cluster)
    with Driver(cluster.config()) as drive:
        assert "1040" not in drive.cycle().node("db1").message
        undo = faults.exhaust_connections(cluster.dir, "db1")
        try:
            drive.until(lambda s: "1040" in s.node("db1").message, cycles=5)
        finally:
            undo()
        drive.until(lambda s: "1040" not in s.node("db1").message, cycles=5)


def test_errant_write_is_in_the_nodes_binlog_under_its_own_server_id(make_cluster: Make) -> None:
    d = pr_cluster(make_cluster).dir
    faults.create_table(d)
    insert(d, "db1", 1, 2)
    pos = faults.gtid_binlog_pos(d, "db1")
    assert faults.wait_caught_up(d, "db3", pos)
    domain, server, seq = pos.split("-")
    assert server == "1"

    faults.errant_write(d, "db3")  # returns no Undo: nothing to heal
    # gtid_binlog_pos keeps the last GTID per domain: db3's own now, one past the primary's
    assert faults.gtid_binlog_pos(d, "db3") == f"{domain}-3-{int(seq) + 1}"
    assert faults.present_ids(d, "db3", [-1]) == {-1}, "below every workload id"
    assert faults.present_ids(d, "db1", [-1]) == set(), "nobody replicates from a replica"
    faults.errant_write(d, "db3", id=-7)
    assert faults.gtid_binlog_pos(d, "db3") == f"{domain}-3-{int(seq) + 2}"

    # the primary's next transaction now collides with it under gtid_strict_mode
    insert(d, "db1", 3)
    faults.wait_for("db3's SQL thread to stop", lambda: threads(d, "db3")[1] == "No", 5)
    assert status(d, "db3")["Last_SQL_Errno"] == 1950  # out-of-order sequence number
