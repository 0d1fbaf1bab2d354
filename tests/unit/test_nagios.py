"""`mpp nagios`: exit codes 0/1/2/3, one line, perfdata; pure function and the command."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from mpp.model import NodeState, PoolState, State
from mpp.publish.nagios import CRITICAL, OK, UNKNOWN, WARNING, Limits, evaluate
from mpp.publish.view import pool_document
from mpp.store import SqliteStore
from tests.builders import config, config_doc, pool, write_config
from tests.daemons import mpp_command

CONFIG = config(config_doc(pool(max_lag="20s")), Path("/tmp/mpp-nagios-test.toml"))
NOW = 1_800_000_000.0


def doc(*nodes: NodeState, updated_at: float = NOW - 1, cycle: int = 9) -> dict[str, object]:
    state = PoolState("main", nodes, cycle=cycle, updated_at=updated_at)
    return pool_document(CONFIG.pool[0], state)


def nagios(*docs: dict[str, object]) -> tuple[int, str]:
    return evaluate(list(docs), NOW, stale_after=30, limits={"main": Limits(4, 20)})


HEALTHY = (
    NodeState("db1", State.ACTIVE, lag=0),
    NodeState("db2", State.STANDBY, lag=0),
    NodeState("db3", State.STANDBY, lag=None),
)


def test_ok_with_perfdata() -> None:
    code, line = nagios(doc(*HEALTHY))
    assert code == OK
    text, perf = line.split(" | ")
    assert text == "MPP OK - main: ACTIVE db1, 2 STANDBY"
    assert "'main/db1 req'=0;1;4;0;" in perf
    assert "'main/db2 lag'=0s;20;;0;" in perf
    assert "'main/db3 lag'=U;20;;0;" in perf, "unknown lag is U, per the plugin guidelines"
    assert "\n" not in line


def test_a_notice_is_not_a_warning() -> None:
    code, _ = nagios(doc(NodeState("db1", State.ACTIVE, notice=True), *HEALTHY[1:]))
    assert code == OK


def test_warning_when_a_node_has_bad_polls() -> None:
    code, line = nagios(doc(HEALTHY[0], NodeState("db2", State.STANDBY, req=2), HEALTHY[2]))
    assert code == WARNING
    assert line.startswith("MPP WARNING - main: db2 OK WARN (2 bad polls) |")


def test_critical_when_a_node_failed_or_no_active() -> None:
    failed = NodeState("db2", State.FAILED_OFFLINE, req=4)
    code, line = nagios(doc(HEALTHY[0], failed, HEALTHY[2]))
    assert code == CRITICAL and "db2 FAILED_OFFLINE (FAIL)" in line
    code, line = nagios(doc(NodeState("db1", State.STANDBY), NodeState("db2", State.STANDBY)))
    assert code == CRITICAL and "no ACTIVE node" in line


def test_critical_when_the_state_is_stale() -> None:
    code, line = nagios(doc(*HEALTHY, updated_at=NOW - 300))
    assert code == CRITICAL and "state is 300s old" in line


def test_unknown_before_the_first_poll_and_worst_wins() -> None:
    never = pool_document(CONFIG.pool[0], None)
    assert nagios(never)[0] == UNKNOWN
    assert evaluate([], NOW, 30)[0] == UNKNOWN
    warning = doc(HEALTHY[0], NodeState("db2", State.STANDBY, req=1), HEALTHY[2])
    assert nagios(never, warning)[0] == WARNING, "WARNING outranks UNKNOWN"


def _mpp(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mpp_command(config, *args),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_command_exit_codes(tmp_path: Path) -> None:
    doc = config_doc(pool(count=2), mpp={"state": "sqlite://state.db"})
    path = write_config(tmp_path / "mpp.toml", doc)
    out = _mpp(path, "nagios")
    assert (out.returncode, out.stdout.split(" - ")[0]) == (UNKNOWN, "MPP UNKNOWN"), out
    store = SqliteStore(tmp_path / "state.db")
    try:
        nodes = (NodeState("db1", State.ACTIVE, lag=0), NodeState("db2", State.STANDBY, lag=0))
        store.save(PoolState("main", nodes, cycle=3, updated_at=time.time()), (), None)
        out = _mpp(path, "nagios", "main")
        assert out.returncode == OK, out
        assert out.stdout.count("\n") == 1 and out.stdout.startswith("MPP OK - main:")
        snap = store.load("main")
        assert snap is not None
        failed = (NodeState("db1", State.ACTIVE), NodeState("db2", State.FAILED_ONLINE, req=4))
        store.save(PoolState("main", failed, cycle=4, updated_at=time.time()), (), snap.version)
        assert _mpp(path, "nagios").returncode == CRITICAL
    finally:
        store.close()
    out = _mpp(path, "nagios", "nosuch")
    assert out.returncode == UNKNOWN and "no pool named 'nosuch'" in out.stdout
    out = _mpp(tmp_path / "missing.toml", "nagios")
    assert out.returncode == UNKNOWN and out.stdout.startswith("MPP UNKNOWN - ")
