"""The whole loop (probe -> logic -> store) against real mariadbd processes.

Each test drives poll cycles one by one, so "consecutive cycles" means exactly that and
no assertion depends on wall-clock speed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mpp.logic import logic_for
from mpp.logic.ladder import status_of
from mpp.model import EventKind, PoolState, Recover, State, Status
from mpp.run.transact import transact
from mpp.store import SqliteStore
from tests.conftest import Cluster
from tests.daemons import mpp_command
from tests.driver import Driver

pytestmark = pytest.mark.integration


def label(state: PoolState, node: str, fail_point: int = 4) -> tuple[str, str]:
    n = state.node(node)
    return status_of(n.req, fail_point, n.notice).label, n.state.value


def mpp(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return cluster.cli(*args)


def test_kill_active_climbs_ladder_fails_over_and_recovers(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster()
    with Driver(cluster.config()) as drive:
        state = drive.cycle()
        assert [n.state for n in state.nodes] == [State.ACTIVE, State.STANDBY, State.STANDBY]
        assert mpp(cluster, "is-active", "db1").stdout.strip() == "OK"

        cluster.kill("db1")  # kill -9
        seen = [label(drive.cycle(), "db1") for _ in range(4)]
        assert seen == [
            ("OK INFO", "ACTIVE"),
            ("OK WARN", "ACTIVE"),
            ("OK CRIT", "ACTIVE"),
            ("FAIL", "FAILED_OFFLINE"),
        ]
        state = drive.store.load("main").state  # type: ignore[union-attr]
        assert state.node("db2").state is State.ACTIVE, "next priority ACTIVE in the FAIL cycle"
        assert state.node("db3").state is State.STANDBY
        out = mpp(cluster, "is-active", "db1")
        assert (out.stdout.strip(), out.returncode) == ("NO", 1)

        # the node comes back: it stays FAILED until the operator recovers it
        cluster.start("db1")
        state = drive.until(lambda s: s.node("db1").req == 0)
        assert state.node("db1").state is State.FAILED_ONLINE
        assert "Manual intervention required" in state.node("db1").message
        out = mpp(cluster, "recover", "db1")
        assert out.returncode == 0, out.stderr
        assert "FAILED_ONLINE -> UNKNOWN" in out.stdout
        # without hostile takeover: STANDBY, announced handover, then an atomic swap
        state = drive.until(lambda s: s.node("db1").state is State.STANDBY)
        assert state.node("db2").state is State.ACTIVE
        state = drive.cycle()
        assert "Ready to relinquish ACTIVE state to db1" in state.node("db2").message
        state = drive.cycle()
        assert [n.state for n in state.nodes] == [State.ACTIVE, State.STANDBY, State.STANDBY]

        history = [
            (e.node, e.old, e.new)
            for e in drive.store.history("main", limit=500)
            if e.kind in ("state", "operator")
        ]
        assert ("db1", "ACTIVE", "FAILED_OFFLINE") in history
        assert ("db2", "STANDBY", "ACTIVE") in history
        assert ("db1", "FAILED_ONLINE", "UNKNOWN") in history
        assert history[-2:] == [("db1", "STANDBY", "ACTIVE"), ("db2", "ACTIVE", "STANDBY")]


def test_hostile_takeover_reinstates_the_primary_at_once(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(nodes=2, hostile=True)
    config = cluster.config()
    with Driver(config) as drive:
        drive.cycle()
        cluster.kill("db1")
        state = drive.until(lambda s: s.node("db1").state is State.FAILED_OFFLINE, cycles=6)
        assert state.node("db2").state is State.ACTIVE
        cluster.start("db1")
        drive.until(lambda s: s.node("db1").req == 0)
        spec = config.get_pool("main").spec()
        transact(
            drive.store,
            spec,
            lambda prev: logic_for("failover").apply_command(spec, prev, Recover("db1"), 0.0),
        )
        drive.until(lambda s: s.node("db1").state is State.STANDBY)
        state = drive.cycle()  # hostile: no announcement cycle
        assert state.node("db1").state is State.ACTIVE
        assert state.node("db2").state is State.STANDBY


def test_stopped_sql_thread_fails_a_standby_and_warns_on_the_active(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster()
    with Driver(cluster.config()) as drive:
        drive.cycle()
        cluster.sql("db3", "STOP SLAVE SQL_THREAD")
        cluster.sql("db1", "STOP SLAVE SQL_THREAD")
        state = drive.until(lambda s: s.node("db3").state.failed, cycles=6)
        assert state.node("db3").state is State.FAILED_ONLINE
        assert "SQL thread stopped" in state.node("db3").message
        for _ in range(3):  # however long it lasts, the ACTIVE node only warns
            state = drive.cycle()
        assert label(state, "db1") == ("OK WARN", "ACTIVE")
        assert "ACTIVE node keeps serving" in state.node("db1").message


def test_hung_node_does_not_hold_up_the_others(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    with Driver(cluster.config()) as drive:
        drive.cycle()
        cluster.kill("db3", signal.SIGSTOP)
        try:
            state = drive.cycle()
            assert state.node("db3").reachable is False
            assert state.node("db3").req == 1
            assert state.node("db1").req == 0 and state.node("db2").req == 0
            state = drive.cycle()
            message = state.node("db3").message
            assert any(s in message for s in ("timed out", "no answer", "still running")), message
        finally:
            cluster.kill("db3", signal.SIGCONT)
        drive.until(lambda s: s.node("db3").req == 0)


def _run_daemon(cluster: Cluster, seconds: float) -> str:
    proc = subprocess.Popen(
        mpp_command(cluster.config_path, "run", "--no-live"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # "mpp ... started": the loop and its handlers are up
    time.sleep(seconds)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, first + out
    return first + out


def test_restarting_mpp_run_changes_no_state(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    _run_daemon(cluster, 2.0)
    cluster.kill("db1")
    first = _run_daemon(cluster, 0.5)  # killed mid-way up the ladder
    store = SqliteStore(cluster.config().state_path)
    try:
        before = store.load("main")
        assert before is not None
        mid = before.state.node("db1")
        assert mid.state is State.ACTIVE and 0 < mid.req < 4, first
        events_before = len(store.history(limit=10000))
        second = _run_daemon(cluster, 3.0)
        after = store.load("main")
        assert after is not None
        events = store.history(limit=10000)[events_before:]
        # the only state changes after the restart are the failover the dead node causes
        changes = [(e.node, e.old, e.new) for e in events if e.kind is EventKind.STATE]
        assert changes == [("db1", "ACTIVE", "FAILED_OFFLINE"), ("db2", "STANDBY", "ACTIVE")]
        # and the ladder continued from where it was, not from zero
        steps = [e.new for e in events if e.kind is EventKind.STATUS and e.node == "db1"]
        assert steps[0] == status_of(mid.req + 1, 4).label, (steps, second)
        assert Status.OK.label not in steps
    finally:
        store.close()

    # a healthy pool restarted twice: no event at all from the restarts themselves
    store = SqliteStore(cluster.config().state_path)
    try:
        cluster.start("db1")
        _run_daemon(cluster, 1.5)
        count = len(store.history(limit=10000))
        _run_daemon(cluster, 1.5)
        new = store.history(limit=10000)[count:]
        assert [e for e in new if e.kind is EventKind.STATE] == []
    finally:
        store.close()


def test_status_json_and_table(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    out = mpp(cluster, "poll")
    assert out.returncode == 0, out.stderr
    doc = json.loads(mpp(cluster, "status", "--json").stdout)
    (pool,) = doc["pools"]
    assert pool["name"] == "main" and pool["status"] == "OK" and pool["logic"] == "failover"
    assert [n["state"] for n in pool["nodes"]] == ["ACTIVE", "STANDBY", "STANDBY"]
    node = pool["nodes"][1]
    assert set(node) >= {
        "name",
        "address",
        "type",
        "state",
        "status",
        "level",
        "requests",
        "last_request",
        "message",
    }
    assert node["type"] == "secondary" and node["requests"] == 0
    table = mpp(cluster, "status").stdout
    for text in ("Time of Last Request", "[ main ] status=OK", "ACTIVE", "STANDBY"):
        assert text in table
    password = (cluster.dir / "mpp.password").read_text()
    assert password not in table and password not in json.dumps(doc)
    hist = mpp(cluster, "history", "--json")
    assert [e["new"] for e in json.loads(hist.stdout) if e["kind"] == "state"] == [
        "ACTIVE",
        "STANDBY",
        "STANDBY",
    ]


def test_operator_commands_through_the_cli(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    assert mpp(cluster, "poll").returncode == 0
    out = mpp(cluster, "activate", "db3")
    assert out.returncode == 0, out.stderr
    assert mpp(cluster, "is-active", "db3").returncode == 0
    mpp(cluster, "poll")
    assert mpp(cluster, "is-active", "db3").returncode == 0, "pinned: no failback"
    out = mpp(cluster, "recover", "db2")
    assert out.returncode == 1 and "nothing to recover" in out.stderr
    out = mpp(cluster, "fail", "db3")
    assert out.returncode == 0 and "db3: ACTIVE -> FAILED_ONLINE" in out.stdout
    assert mpp(cluster, "is-active", "db1").returncode == 0
    out = mpp(cluster, "activate", "nosuch")
    assert out.returncode == 2 and "no node named 'nosuch'" in out.stderr


def test_wrong_password_is_failed_online_not_offline(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    (tmp_path / "wrong").write_text("not-the-password")
    cluster = make_cluster(nodes=2, pool={"password_file": str(tmp_path / "wrong")})
    with Driver(cluster.config()) as drive:
        state = drive.until(lambda s: s.node("db2").state.failed, cycles=6)
        assert state.node("db2").state is State.FAILED_ONLINE
        assert "1045" in state.node("db2").message
        assert "not-the-password" not in state.node("db2").message
