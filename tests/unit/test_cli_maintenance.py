"""`mpp maintenance NODE on|off [--for D]` and what `mpp status` shows of maintenance and of
the node agents: real `mpp` processes on a real SQLite store.

The round trip goes through the failover logic (`Maintenance` sets
NodeState.maintenance_since/until) and back out of the store.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from pathlib import Path

import pytest

from mpp.model import AgentReport, NodeState, PoolState, Process, State
from mpp.publish.view import agent_text, maintenance_text
from mpp.store.sqlite import SqliteStore
from tests.builders import config_doc, pool, write_config
from tests.daemons import mpp_command

NOW = time.time()


def _mpp(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(mpp_command(cfg, *args), capture_output=True, text=True, timeout=30)


def _stored(tmp_path: Path, *nodes: NodeState) -> Path:
    path = write_config(
        tmp_path / "mpp.toml", config_doc(pool(count=3), mpp={"state": "sqlite://state.db"})
    )
    nodes = nodes or (
        NodeState("db1", State.ACTIVE, message="serving, writable"),
        NodeState("db2", State.STANDBY),
        NodeState("db3", State.STANDBY),
    )
    store = SqliteStore(tmp_path / "state.db")
    try:
        store.save(PoolState("main", nodes, cycle=3, updated_at=time.time()), (), None)
    finally:
        store.close()
    return path


def _node(tmp_path: Path, name: str) -> NodeState:
    store = SqliteStore(tmp_path / "state.db")
    try:
        snap = store.load("main")
    finally:
        store.close()
    assert snap is not None
    return snap.state.node(name)


def _versions(tmp_path: Path) -> tuple[object, int]:
    """The stored version and the history's length: any write changes one of them."""
    store = SqliteStore(tmp_path / "state.db")
    try:
        snap = store.load("main")
        assert snap is not None
        return snap.version, len(store.history("main", None, 1000))
    finally:
        store.close()


# -- the arguments: refused before anything is stored ---------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("db2", "on", "--for", "soon"), "'soon' is not a duration"),
        (("db2", "on", "--for", "0s"), "must be longer than 0s"),
        (("db2", "on", "--for", "400d"), "not a duration"),
        (("db2", "on", "--for", "-5m"), "--for"),
        (("db2", "off", "--for", "1h"), "--for goes with `on` only"),
        (("db2", "maybe"), "'maybe' is not one of 'on', 'off'"),
        (("db2",), "Missing argument 'on|off'"),
        (("db9", "on"), "no node named 'db9'"),
        (("db2", "on", "--pool", "nope"), "no pool named 'nope' (pools: main)"),
    ],
)
def test_bad_arguments_exit_2_with_one_clear_line_and_store_nothing(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    cfg = _stored(tmp_path)
    before = _versions(tmp_path)
    out = _mpp(cfg, "maintenance", *args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert says in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert _versions(tmp_path) == before, "nothing was written"
    assert _node(tmp_path, "db2").maintenance_since is None


def test_help_names_the_switch_and_the_duration(tmp_path: Path) -> None:
    out = _mpp(_stored(tmp_path), "maintenance", "--help")
    assert out.returncode == 0
    assert "NODE on|off" in out.stdout and "--for DURATION" in out.stdout
    assert "--pool" in out.stdout


# -- the round trip through the logic and the store -----------------------------------------


def test_on_for_2h_is_stored_shown_and_off_ends_it(tmp_path: Path) -> None:
    cfg = _stored(tmp_path)
    began = time.time()
    out = _mpp(cfg, "maintenance", "db2", "on", "--for", "2h")
    assert out.returncode == 0, out.stderr
    node = _node(tmp_path, "db2")
    assert node.maintenance_since is not None and began - 1 <= node.maintenance_since
    assert node.maintenance_until is not None
    assert abs(node.maintenance_until - (node.maintenance_since + 7200)) < 1
    assert "main/db2: in maintenance until" in out.stdout
    until = dt.datetime.fromtimestamp(node.maintenance_until).astimezone()
    status = _mpp(cfg, "status")
    assert f"maint until {until:%H:%M}" in status.stdout or f"{until:%m-%d %H:%M}" in status.stdout
    doc = json.loads(_mpp(cfg, "status", "--json").stdout)
    window = doc["pools"][0]["nodes"][1]["maintenance"]
    assert window["until"] == until.isoformat(timespec="seconds")
    assert doc["pools"][0]["nodes"][0]["maintenance"] is None

    out = _mpp(cfg, "maintenance", "main/db2", "off")
    assert out.returncode == 0, out.stderr
    node = _node(tmp_path, "db2")
    assert node.maintenance_since is None and node.maintenance_until is None
    assert "main/db2: not in maintenance" in out.stdout
    assert "maint" not in _mpp(cfg, "status").stdout


def test_on_without_for_lasts_until_off(tmp_path: Path) -> None:
    cfg = _stored(tmp_path)
    out = _mpp(cfg, "maintenance", "db3", "on", "--pool", "main")
    assert out.returncode == 0, out.stderr
    node = _node(tmp_path, "db3")
    assert node.maintenance_since is not None and node.maintenance_until is None
    assert "in maintenance until turned off" in out.stdout
    assert "maint (until off)" in _mpp(cfg, "status").stdout


# -- mpp status: maintenance and the agents --------------------------------------------------


def _report(**fields: object) -> AgentReport:
    base: dict[str, object] = {
        "node": "db1",
        "pool": "main",
        "seq": 5,
        "fence_ttl": 6.0,
        "process": Process.RESTARTING,
        "restarts_used": 1,
        "retry_limit": 2,
        "last_exit": "killed by signal 9",
        "sent_at": time.time() - 0.4,
    }
    base.update(fields)
    return AgentReport(**base)  # type: ignore[arg-type]


def test_status_shows_maintenance_and_the_agents_report(tmp_path: Path) -> None:
    until = time.time() + 3600
    cfg = _stored(
        tmp_path,
        NodeState("db1", State.ACTIVE, message="serving, writable"),
        NodeState(
            "db2", State.STANDBY, maintenance_since=time.time() - 60, maintenance_until=until
        ),
        NodeState("db3", State.STANDBY, maintenance_since=time.time() - 60),
    )
    store = SqliteStore(tmp_path / "state.db")
    try:
        store.put_report(_report())
        store.put_report(_report(node="db3", process=Process.RUNNING, last_exit="", pid=4242))
    finally:
        store.close()
    out = _mpp(cfg, "status")
    assert out.returncode == 0, out.stderr
    lines = {line.split()[1]: line for line in out.stdout.splitlines() if line[:2] in ("P ", "S ")}
    shown = dt.datetime.fromtimestamp(until).astimezone()
    assert f"maint until {shown:%H:%M}" in lines["db2"] or f"{shown:%m-%d %H:%M}" in lines["db2"]
    assert "maint (until off)" in lines["db3"] and "maint" not in lines["db1"]
    assert "mysqld killed by signal 9, restart 1/2 · report" in lines["db1"]
    assert "s ago" in lines["db1"]
    assert "mysqld running (pid 4242) · report" in lines["db3"]
    assert "report" not in lines["db2"], "no agent: blank"
    assert max(len(line) for line in out.stdout.splitlines()) <= 200, "a table read at a glance"

    doc = json.loads(_mpp(cfg, "status", "--json").stdout)
    db1, db2, db3 = doc["pools"][0]["nodes"]
    assert db1["agent_report"]["process"] == "restarting"
    assert (db1["agent_report"]["restarts_used"], db1["agent_report"]["retry_limit"]) == (1, 2)
    assert db1["agent_report"]["write"] == "unknown" and db1["agent_report"]["fenced"] == ""
    assert 0.3 <= db1["agent_report"]["age_by_agent_clock"] < 30
    assert db2["agent_report"] is None and db2["maintenance"]["until"] is not None
    assert db3["maintenance"] == {"since": db3["maintenance"]["since"], "until": None}
    assert db1["maintenance"] is None


def test_a_pool_without_agents_keeps_its_table(tmp_path: Path) -> None:
    out = _mpp(_stored(tmp_path), "status")
    assert out.returncode == 0, out.stderr
    header = next(line for line in out.stdout.splitlines() if "Server" in line)
    assert "Agent" not in header and "Last Status Message" in header


# -- the texts, as pure functions ------------------------------------------------------------


def test_maintenance_text() -> None:
    at = dt.datetime(2026, 12, 1, 14, 0).astimezone()
    window = {"since": at.isoformat(), "until": at.isoformat()}
    assert maintenance_text({"maintenance": window}, at.date()) == "maint until 14:00"
    tomorrow = at.date() - dt.timedelta(days=1)
    assert maintenance_text({"maintenance": window}, tomorrow) == "maint until 12-01 14:00"
    assert maintenance_text({"maintenance": {"since": "x", "until": None}}) == "maint (until off)"
    assert maintenance_text({"maintenance": None}) == ""


def test_agent_text() -> None:
    report = {"summary": "write probe stalled 12 s", "process": "running", "pid": 7}
    assert agent_text({"agent_report": {**report, "age_by_agent_clock": 0.42}}) == (
        "write probe stalled 12 s · report 0.4 s ago"
    )
    quiet = {**report, "summary": "", "age_by_agent_clock": 75.0}
    assert agent_text({"agent_report": quiet}) == "mysqld running (pid 7) · report 75 s ago"
    assert agent_text({"agent_report": {**quiet, "age_by_agent_clock": 600}}).endswith("10 min ago")
    assert agent_text({"agent_report": None, "agent": "fenced by its agent: x"}) == (
        "fenced by its agent: x"
    )
    assert agent_text({"agent_report": None, "agent": ""}) == ""
