"""Integration tests of mpp.sandbox against real mariadbd processes.

Ports come from the session's allocator (tests/ports.py), so it can run next to the other
integration tests.
Every sandbox is destroyed in a finalizer, so a failing assertion leaves no mariadbd behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from mpp import sandbox
from mpp.faults import wait_for
from mpp.sandbox import SandboxError
from mpp.sandbox.processes import _TERM_GRACE as TERM_GRACE
from tests.ports import Ports
from tests.probes import app_connect, query_one

_HAVE_MARIADBD = (
    shutil.which("mariadbd", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    is not None
)

needs_mariadbd = pytest.mark.skipif(not _HAVE_MARIADBD, reason="mariadbd is not installed")

pytestmark = pytest.mark.integration


def pid_gone(pid: int) -> bool:
    """A zombie counts as gone: it holds no port, files or memory."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return text[text.rfind(")") + 2] in "ZX"


def query(directory: Path, name: str, sql: str, args: Any = None) -> list[dict[str, Any]]:
    conn = sandbox.admin_connect(directory, name)
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


def slave_status(directory: Path, name: str) -> dict[str, Any] | None:
    rows = query(directory, name, "SHOW SLAVE STATUS")
    return rows[0] if rows else None


def app_execute(port: int, sql: str, args: Any = None) -> None:
    conn = app_connect(port, timeout=10)
    try:
        query_one(conn, sql, args)
    finally:
        conn.close()


def has_row(directory: Path, name: str, table: str, row_id: int) -> bool:
    try:
        rows = query(directory, name, f"SELECT id FROM app.{table} WHERE id = %s", (row_id,))
    except pymysql.err.ProgrammingError:  # table not replicated yet
        return False
    return bool(rows)


@pytest.fixture(scope="module")
def mm_port(ports: Ports) -> int:
    """The base port of the shared ring (db1; db2 and db3 on the next two)."""
    return ports.block(3)


@pytest.fixture(scope="module")
def mm(tmp_path_factory: pytest.TempPathFactory, mm_port: int) -> Iterator[Path]:
    """One 3-node ring shared by the tests that only read it or restore what they break."""
    if not _HAVE_MARIADBD:
        pytest.skip("mariadbd is not installed")
    directory = tmp_path_factory.mktemp("mm") / "sandbox"
    try:
        started = time.monotonic()
        sandbox.up(directory, nodes=3, base_port=mm_port, topology="master-master")
        print(f"cold up of 3 nodes: {time.monotonic() - started:.2f} s")
        yield directory
    finally:
        sandbox.destroy(directory)


@pytest.fixture
def fresh_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "sandbox"
    try:
        yield directory
    finally:
        sandbox.destroy(directory)


@needs_mariadbd
def test_master_master_ring_replicates(mm: Path, mm_port: int) -> None:
    ports = {n.name: n.port for n in sandbox.status(mm)}
    assert ports == {"db1": mm_port, "db2": mm_port + 1, "db3": mm_port + 2}
    for name, source in (("db1", "db3"), ("db2", "db1"), ("db3", "db2")):
        st = slave_status(mm, name)
        assert st is not None, name
        assert st["Master_Port"] == ports[source], name
        assert st["Using_Gtid"] == "Slave_Pos"
        assert (st["Slave_IO_Running"], st["Slave_SQL_Running"]) == ("Yes", "Yes")
    assert query(mm, "db3", "SELECT @@gtid_strict_mode AS s, @@read_only AS r") == [
        {"s": 0, "r": 0}
    ]

    app_execute(mm_port, "CREATE TABLE ring (id INT PRIMARY KEY)")
    app_execute(mm_port, "INSERT INTO ring VALUES (1)")
    wait_for("row from db1 on db3", lambda: has_row(mm, "db3", "ring", 1), 10)


@needs_mariadbd
def test_config_and_password_files(mm: Path, mm_port: int) -> None:
    password_file = mm / "mpp.password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text()
    assert password and not password.endswith("\n")

    conn = pymysql.connect(
        host="127.0.0.1", port=mm_port + 2, user=sandbox.MPP_USER, password=password,
        ssl_disabled=True, connect_timeout=2,
    )  # fmt: skip
    conn.close()

    toml = (mm / "mpp.toml").read_text()
    assert toml.startswith("# Written by `mpp sandbox up`; edit freely.\n[mpp]\n")
    assert 'topology = "master-master"' in toml
    assert 'password_file = "mpp.password"' in toml
    assert toml.count("[[pool.node]]") == 3
    assert f'name = "db1"\naddress = "127.0.0.1:{mm_port}"\ntype = "primary"' in toml
    assert f'name = "db3"\naddress = "127.0.0.1:{mm_port + 2}"\ntype = "secondary"' in toml

    # A user's edits survive later `up`s, and so does the password.
    (mm / "mpp.toml").write_text(toml + "# edited\n")
    sandbox.up(mm, nodes=3, base_port=mm_port)
    assert (mm / "mpp.toml").read_text().endswith("# edited\n")
    assert password_file.read_text() == password


@needs_mariadbd
def test_up_is_idempotent_and_layout_is_checked(mm: Path, mm_port: int) -> None:
    before = sandbox.status(mm)
    started = time.monotonic()
    again = sandbox.up(mm, nodes=3, base_port=mm_port, topology="master-master")
    elapsed = time.monotonic() - started
    print(f"warm up of 3 nodes: {elapsed:.3f} s")
    assert [n.pid for n in again] == [n.pid for n in before]
    assert all(n.running for n in again)
    assert elapsed < 1.0

    with pytest.raises(SandboxError, match="destroy"):
        sandbox.up(mm, nodes=2, base_port=mm_port)


@needs_mariadbd
def test_killed_node_restarts_and_catches_up(mm: Path, mm_port: int) -> None:
    old = {n.name: n for n in sandbox.status(mm)}["db2"]
    assert old.pid is not None
    sandbox.stop_node(mm, "db2", signal.SIGKILL)
    assert pid_gone(old.pid)
    db2 = {n.name: n for n in sandbox.status(mm)}["db2"]
    assert (db2.running, db2.pid) == (False, None)
    with pytest.raises(SandboxError, match="not running"):
        sandbox.stop_node(mm, "db2")

    # db3 hears from db1 only through db2, so this row waits for db2 to come back.
    app_execute(mm_port, "CREATE TABLE IF NOT EXISTS crash (id INT PRIMARY KEY)")
    app_execute(mm_port, "INSERT INTO crash VALUES (7)")
    time.sleep(0.3)
    assert not has_row(mm, "db3", "crash", 7)

    node = sandbox.start_node(mm, "db2")
    assert node.running and node.pid not in (None, old.pid)
    wait_for("row through restarted db2", lambda: has_row(mm, "db3", "crash", 7), 10)
    st = slave_status(mm, "db2")
    assert st is not None and st["Master_Port"] == mm_port
    assert (st["Slave_IO_Running"], st["Slave_SQL_Running"]) == ("Yes", "Yes")
    # Restarting a running node is a no-op.
    assert sandbox.start_node(mm, "db2").pid == node.pid


@needs_mariadbd
def test_primary_replica(fresh_dir: Path, ports: Ports) -> None:
    base = ports.block(2)
    lines: list[str] = []
    nodes = sandbox.up(
        fresh_dir, nodes=2, base_port=base, topology="primary-replica", progress=lines.append
    )
    assert [n.name for n in nodes] == ["db1", "db2"]
    assert "replication: db1 -> db2 (replicas read_only)" in lines

    assert slave_status(fresh_dir, "db1") is None
    st = slave_status(fresh_dir, "db2")
    assert st is not None and st["Master_Port"] == base
    assert (st["Slave_IO_Running"], st["Slave_SQL_Running"]) == ("Yes", "Yes")
    flags = "SELECT @@read_only AS ro, @@gtid_strict_mode AS strict"
    assert query(fresh_dir, "db2", flags) == [{"ro": 1, "strict": 1}]
    assert query(fresh_dir, "db1", flags) == [{"ro": 0, "strict": 1}]

    app_execute(base, "CREATE TABLE t (id INT PRIMARY KEY)")
    wait_for(
        "table t on db2", lambda: bool(query(fresh_dir, "db2", "SHOW TABLES FROM app LIKE 't'")), 10
    )
    with pytest.raises(pymysql.err.OperationalError) as refused:
        app_execute(base + 1, "INSERT INTO t VALUES (1)")
    assert refused.value.args[0] == 1290  # --read-only

    # A frozen node is still "running" (the process exists) and thaws with SIGCONT.
    sandbox.stop_node(fresh_dir, "db2", signal.SIGSTOP)
    assert {n.name: n.running for n in sandbox.status(fresh_dir)}["db2"]
    sandbox.stop_node(fresh_dir, "db2", signal.SIGCONT)
    assert query(fresh_dir, "db2", "SELECT 1 AS one") == [{"one": 1}]


@needs_mariadbd
def test_sandboxes_share_one_template_when_asked(
    tmp_path: Path, ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MPP_SANDBOX_TEMPLATES: the first sandbox runs mariadb-install-db into it, the next one
    copies that datadir and installs nothing; without it each sandbox makes its own."""
    monkeypatch.setenv(sandbox.TEMPLATES_ENV, str(tmp_path / "templates"))
    made: list[Path] = []
    try:
        said: list[list[str]] = []
        for name in ("a", "b"):
            lines: list[str] = []
            made.append(tmp_path / name)
            sandbox.up(made[-1], nodes=1, base_port=ports.block(1), progress=lines.append)
            said.append(lines)
            assert query(made[-1], "db1", "SELECT 1 AS one") == [{"one": 1}]
        installs = [sum(line.startswith("template: initialising") for line in s) for s in said]
        assert installs == [1, 0], said
        assert not (made[1] / ".template").exists(), "nothing installed in the sandbox"
        monkeypatch.delenv(sandbox.TEMPLATES_ENV)
        lines = []
        made.append(tmp_path / "c")
        sandbox.up(made[-1], nodes=1, base_port=ports.block(1), progress=lines.append)
        assert (made[-1] / ".template" / "data" / "mysql").is_dir(), "its own template"
    finally:
        for d in made:
            sandbox.destroy(d)


@needs_mariadbd
def test_down_spares_foreign_processes_and_up_resumes(fresh_dir: Path, ports: Ports) -> None:
    base = ports.block(2)
    nodes = sandbox.up(fresh_dir, nodes=2, base_port=base)
    pids = [n.pid for n in nodes]
    assert all(pids)
    st = slave_status(fresh_dir, "db1")
    assert st is not None and st["Master_Port"] == base + 1  # db1 <-> db2

    # Pretend db1's PID was reused by an unrelated program; db1 itself is still found
    # through its PID file. db2 is frozen, which a plain SIGTERM would not get through.
    foreign = subprocess.Popen(["sleep", "100"])
    try:
        state_file = fresh_dir / "sandbox.json"
        state = json.loads(state_file.read_text())
        state["nodes"][0]["pid"] = foreign.pid
        state_file.write_text(json.dumps(state))
        sandbox.stop_node(fresh_dir, "db2", signal.SIGSTOP)

        started = time.monotonic()
        assert sandbox.down(fresh_dir) == ["db1", "db2"]
        # without the SIGCONT the frozen node would sit out the whole SIGTERM grace and be
        # SIGKILLed; a clean shutdown takes a second or two (more on a loaded machine)
        assert time.monotonic() - started < TERM_GRACE
        assert foreign.poll() is None, "down killed a process it did not start"
        assert all(pid_gone(p) for p in pids if p is not None)
        assert all(not n.running for n in sandbox.status(fresh_dir))
        assert sandbox.down(fresh_dir) == []
    finally:
        foreign.kill()
        foreign.wait()

    # Data stays on disk; the next `up` resumes the same cluster.
    resumed = sandbox.up(fresh_dir, nodes=2, base_port=base)
    assert all(n.running for n in resumed)
    assert query(fresh_dir, "db2", "SHOW DATABASES LIKE 'app'")

    # both nodes start together: db2's IO thread retries its source every second (the
    # sandbox's MASTER_CONNECT_RETRY) until db1 answers
    def streaming() -> bool:
        st = slave_status(fresh_dir, "db2")
        return st is not None and st["Slave_IO_Running"] == "Yes"

    wait_for("db2 to replicate again after the resume", streaming, timeout=10)


@needs_mariadbd
def test_port_held_by_foreign_process(fresh_dir: Path, ports: Ports) -> None:
    base = ports.block(3)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", base + 1))
        squatter.listen()
        with pytest.raises(SandboxError, match=rf"port {base + 1}.*--base-port") as err:
            sandbox.up(fresh_dir, nodes=2, base_port=base)
    assert f"pid {os.getpid()}" in str(err.value)
    assert all(not n.running for n in sandbox.status(fresh_dir))
    assert not (fresh_dir / "db1").exists()

    # Following the advice works in the same directory: nothing was built yet.
    lines: list[str] = []
    [node] = sandbox.up(fresh_dir, nodes=1, base_port=base + 2, progress=lines.append)
    assert node.running and node.port == base + 2
    assert "replication: none (single node)" in lines
    assert slave_status(fresh_dir, "db1") is None
    assert query(fresh_dir, "db1", "SHOW DATABASES LIKE 'app'")


def test_missing_mariadbd_is_explained(
    fresh_dir: Path, monkeypatch: pytest.MonkeyPatch, ports: Ports
) -> None:
    monkeypatch.setattr(shutil, "which", lambda *_a, **_k: None)
    with pytest.raises(SandboxError, match="apt-get install mariadb-server-core"):
        sandbox.up(fresh_dir, nodes=1, base_port=ports.port())


def test_destroy_refuses_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(SandboxError, match="does not look like a sandbox"):
        sandbox.destroy(tmp_path)
    assert (tmp_path / "precious.txt").exists()


@pytest.mark.integration
def test_sandbox_cli_up_status_kill_start_down(tmp_path: Path, ports: Ports) -> None:
    """The `mpp sandbox` commands the demo and README use, end to end."""
    d = tmp_path / "cli"

    def mpp(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mpp", "sandbox", *args, "--dir", str(d)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    try:
        out = mpp("up", "--nodes", "2", "--base-port", str(ports.block(2)))
        assert out.returncode == 0, out.stdout + out.stderr
        assert (d / "mpp.toml").exists()
        status = json.loads(mpp("status", "--json").stdout)
        assert [(n["name"], n["running"]) for n in status] == [("db1", True), ("db2", True)]
        assert mpp("kill", "db2").returncode == 0
        assert [n["running"] for n in json.loads(mpp("status", "--json").stdout)] == [True, False]
        assert mpp("start", "db2").returncode == 0
        out = mpp("kill", "db9")
        assert out.returncode == 1 and "Traceback" not in out.stderr + out.stdout
        out = mpp("down")
        assert out.returncode == 0 and "db1" in out.stdout
    finally:
        sandbox.destroy(d)
