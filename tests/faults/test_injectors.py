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


def _echo_server() -> tuple[int, Callable[[], None]]:
    """A real TCP echo server on loopback (the proxy's far end in the byte-order test)."""
    import contextlib
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1], server.close


def test_proxy_delays_each_direction_and_never_reorders_when_the_delay_drops() -> None:
    """A slow link adds time and keeps the stream's order: chunks sent while the delay was
    300 ms must still arrive before chunks sent after it went to 0."""
    import socket
    import time

    from mpp.faults.proxy import Loop, Proxy

    port, stop_echo = _echo_server()
    loop = Loop()
    proxy = Proxy(loop, ("127.0.0.1", port))
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
            started = time.monotonic()
            s.sendall(b"a")
            assert s.recv(10) == b"a"
            assert time.monotonic() - started < 0.1
            proxy.to_upstream, proxy.from_upstream = 0.2, 0.1  # each way its own
            started = time.monotonic()
            s.sendall(b"b")
            assert s.recv(10) == b"b"
            assert 0.3 <= time.monotonic() - started < 0.6
            proxy.set_delay(0.3)
            s.sendall(b"early-")
            time.sleep(0.05)
            proxy.set_delay(0.0)
            s.sendall(b"late")
            got = b""
            while len(got) < len(b"early-late"):
                got += s.recv(100)
            assert got == b"early-late"
        assert proxy.connections == 1
    finally:
        proxy.close()
        loop.close()
        stop_echo()


def test_mpp_through_200ms_proxies_keeps_every_node_and_repoints_to_replication_address(
    make_cluster: Make,
) -> None:
    """mpp reaches the nodes through proxies (200 ms each way), replicas replicate directly:
    the probes still see a healthy pool, and a failover points the replicas at the new
    primary's real port (replication_address), never at mpp's proxy."""
    from mpp.config import load
    from mpp.faults.proxy import Proxies
    from mpp.model import State

    cluster = pr_cluster(make_cluster, failover_block="0s")
    d = cluster.dir
    proxies = Proxies(faults.ports(d))
    try:
        routed = d / "proxied.toml"
        routed.write_text(proxies.route_config(cluster.config_path.read_text()))
        config = load(routed)
        assert {n.address for n in config.pool[0].node} == {
            p.address for p in proxies.by_node.values()
        }
        with Driver(config) as drive:
            drive.until(lambda s: all(n.state in (State.ACTIVE, State.STANDBY) for n in s.nodes))
            proxies.set_delay(0.2)
            for _ in range(4):
                state = drive.cycle()
                assert {n.name: n.state for n in state.nodes} == {
                    "db1": State.ACTIVE,
                    "db2": State.STANDBY,
                    "db3": State.STANDBY,
                }, state
            assert all(p.connections >= 1 for p in proxies.by_node.values())
            proxies.set_delay(0.0)
            cluster.kill("db1")
            state = drive.until(
                lambda s: any(n.state is State.ACTIVE and n.name != "db1" for n in s.nodes)
            )
            new = next(n.name for n in state.nodes if n.state is State.ACTIVE)
            other = ({"db2", "db3"} - {new}).pop()
            faults.wait_for(
                f"{other} to replicate from {new}",
                lambda: faults.replica_status(d, other).get("Master_Port") == faults.ports(d)[new],
                10,
            )
    finally:
        proxies.close()


def test_kill_etcd_leader_leaves_a_quorum_that_elects_another_and_the_restart_rejoins(
    tmp_path: Path,
) -> None:
    """The store fault is real: the leader's process is gone, the two left elect a new
    leader and keep taking writes, and the restarted member catches up on its data dir."""
    import base64

    import httpx

    from mpp.faults.etcd import EtcdCluster

    etcd = EtcdCluster(tmp_path / "etcd")
    etcd.start()
    try:
        assert etcd.state_url.startswith("etcd://127.0.0.1:") and etcd.state_url.count(",") == 2
        assert etcd.route_config('[mpp]\nstate = "sqlite://state.db"\n') == (
            f'[mpp]\nstate = "{etcd.state_url}"\n'
        )
        leader = etcd.leader()
        assert leader is not None
        assert etcd.kill("leader") == leader
        assert etcd.healthy()[leader] is False
        faults.wait_for("a new etcd leader", lambda: etcd.leader() not in (None, leader), 10)
        survivor = etcd.leader()
        assert survivor is not None
        key = base64.b64encode(b"/mpp-faults/probe").decode()
        put = httpx.post(
            etcd.endpoint(survivor) + "/v3/kv/put",
            json={"key": key, "value": base64.b64encode(b"written while one was down").decode()},
            timeout=2,
        )
        assert put.status_code == 200, put.text
        etcd.restart(leader)
        faults.wait_for("all three healthy", lambda: all(etcd.healthy()), 10)
        got = httpx.post(
            etcd.endpoint(leader) + "/v3/kv/range", json={"key": key}, timeout=2
        ).json()
        assert base64.b64decode(got["kvs"][0]["value"]) == b"written while one was down"
        now_leading = etcd.leader()
        follower = etcd.kill("follower")
        assert follower != now_leading and etcd.leader() == now_leading, "no election"
        etcd.restart(follower)
    finally:
        etcd.stop()


def test_scenario_store_and_proxied_keys_are_checked_when_loaded(tmp_path: Path) -> None:
    """A misspelt store would run on SQLite and prove nothing about etcd; an on = "failover"
    step cannot be timed on etcd (the runner reads the SQLite history for it)."""
    from mpp.faults.runner import INJECTORS
    from mpp.faults.scenario import ScenarioError, load

    path = tmp_path / "s.toml"
    base = (
        '[[scenario]]\nname = "x"\n{extra}\n'
        'steps = [{{ at = 1.0, fault = "kill_etcd"{on} }}]\n'
        "[scenario.expect]\nfailover = false\n"
    )
    path.write_text(base.format(extra='store = "etcd3"\nproxied = true', on=""))
    (scenario,) = load(path, set(INJECTORS))
    assert (scenario.store, scenario.proxied) == ("etcd3", True)
    path.write_text(base.format(extra='store = "etcd"', on=""))
    with pytest.raises(ScenarioError, match="store = 'etcd'; allowed"):
        load(path, set(INJECTORS))
    path.write_text(base.format(extra='store = "etcd3"', on=', on = "failover"'))
    with pytest.raises(ScenarioError, match="need the SQLite store"):
        load(path, set(INJECTORS))


def test_acks_after_fault_needs_the_primary_sides_client(tmp_path: Path) -> None:
    """The bound counts that client's writes: a row without one would pass on nothing."""
    from mpp.faults.runner import INJECTORS
    from mpp.faults.scenario import ScenarioError, load

    path = tmp_path / "s.toml"
    base = (
        '[[scenario]]\nname = "x"\n{extra}\n'
        'steps = [{{ at = 1.0, fault = "kill", node = "primary" }}]\n'
        "[scenario.expect]\nfailover = true\nacks_after_fault = 0\n"
    )
    path.write_text(base.format(extra=""))
    with pytest.raises(ScenarioError, match="acks_after_fault needs client_source"):
        load(path, set(INJECTORS))
    path.write_text(base.format(extra='client_source = "127.0.0.6"'))
    (scenario,) = load(path, set(INJECTORS))
    assert scenario.expect.acks_after_fault == 0


def test_sites_need_three_names_etcd_and_the_primary_sides_address(tmp_path: Path) -> None:
    """A sited row runs an instance per site on etcd, the first one from client_source: a
    row missing one of those would not cut the leader off with the primary's site."""
    from mpp.faults.runner import INJECTORS
    from mpp.faults.scenario import ScenarioError, load

    path = tmp_path / "s.toml"
    base = (
        '[[scenario]]\nname = "x"\n{extra}\n'
        'steps = [{{ at = 1.0, fault = "kill", node = "primary" }}]\n'
        "[scenario.expect]\nfailover = true\n"
    )
    good = 'store = "etcd3"\nclient_source = "127.0.0.6"\n'
    for wrong in (
        good + 'sites = ["a", "b"]',
        good + 'sites = ["a", "b", "a"]',
        'client_source = "127.0.0.6"\nsites = ["a", "b", "c"]',
        'store = "etcd3"\nsites = ["a", "b", "c"]',
    ):
        path.write_text(base.format(extra=wrong))
        with pytest.raises(ScenarioError, match="three distinct site names"):
            load(path, set(INJECTORS))
    path.write_text(base.format(extra=good + 'sites = ["a", "b", "c"]'))
    (scenario,) = load(path, set(INJECTORS))
    assert scenario.sites == ("a", "b", "c")
