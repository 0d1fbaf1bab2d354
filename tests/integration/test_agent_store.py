"""The node agent through mpp's store (issue 13): its reports and their fence lease, mpp
asking it to fence, self-fencing when cut off from the store and the pool, maintenance,
and the write probe's stall as the store shows it. Real `mpp agent` processes, real
mariadbd (the sandbox), a real SQLite store file that this test reads as mpp would."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from mpp import sandbox
from mpp.faults.watchers import poll_until
from mpp.model import AgentReport, NodeState, PoolState, Process, WriteProbe
from mpp.sandbox.etcd import EtcdServer
from mpp.sandbox.sessions import accepts_connections, connect
from mpp.store import SqliteStore, Store
from mpp.store.etcd import EtcdStore
from tests.ports import Ports

FENCE_TTL = 2.0  # renewals every 0.67 s, fence checks every 0.33 s


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def _command(d: Path) -> list[str]:
    cnf = d / "db1" / "my.cnf"
    argv = ["/usr/sbin/mariadbd", f"--defaults-file={cnf}", f"--datadir={d / 'db1' / 'data'}"]
    return [*argv, "--user=root"] if os.geteuid() == 0 else argv


def _watched(d: Path) -> str:
    """pid_file mode; `start` is the sandbox's own (so a restart would really happen)."""
    start = [
        sys.executable,
        "-c",
        "from pathlib import Path; from mpp import sandbox; "
        f"sandbox.start_node(Path({str(d)!r}), 'db1')",
    ]
    return f'pid_file = "{d / "db1" / "mariadbd.pid"}"\nstart = {_toml_list(start)}\n'


class Agent:
    """`mpp agent` with a store, probing db1 of sandbox `d`; the test reads the store."""

    def __init__(
        self,
        tmp: Path,
        d: Path,
        port: int,
        mysqld: str,
        peers: list[str],
        store: str | None = None,
        name: str = "agent",
        reader: Store | None = None,
        extra: str = "",
    ) -> None:
        self.db = tmp / "state.db"
        self.report_file = tmp / f"{name}.json"
        config = tmp / f"{name}.toml"
        config.write_text(
            f'node = "db1"\npool = "main"\nreport_file = "{self.report_file}"\n'
            f'store = "{store or "sqlite://" + str(self.db)}"\n'
            f'fence_ttl = "{FENCE_TTL:g}s"\npeers = {_toml_list(peers)}\n{extra}'
            f"[mysqld]\n{mysqld}"
            f'[probe]\naddress = "127.0.0.1:{port}"\nuser = "mpp"\n'
            f'password_file = "{d / "mpp.password"}"\n'
            'ping_interval = "200ms"\nwrite_interval = "200ms"\nwrite_timeout = "1s"\n'
        )
        self.log = tmp / f"{name}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mpp", "agent", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.store: Store = reader or SqliteStore(self.db)
        self.seen: list[AgentReport] = []  # every distinct report, in the order seen

    def report(self) -> AgentReport | None:
        try:
            found = self.store.reports("main").get("db1")
        except Exception:  # a locked or half-written file: try again
            return None
        if found is not None and (not self.seen or self.seen[-1].seq != found.seq):
            self.seen.append(found)
        return found

    def wait(
        self, what: str, check: Callable[[AgentReport], bool], timeout: float = 30.0
    ) -> AgentReport:
        def ready() -> AgentReport | None:
            r = self.report()
            return r if r is not None and check(r) else None

        found = poll_until(ready, timeout, period=0.01)
        assert found, f"{what}: {self.report()}\n{self.log.read_text()[-3000:]}"
        return found

    def file(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads(self.report_file.read_text())
        except (OSError, ValueError):
            return {}
        return doc

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(90)
        self.store.close()
        return code


def _read_only(port: int) -> int | None:
    try:
        conn = connect(port, "root", sandbox.ROOT_PASSWORD, 1.0)
    except pymysql.MySQLError:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@global.read_only")
            row = cur.fetchone()
            return int(row[0]) if row else None
    except pymysql.MySQLError:  # killed by the fence mid-query: ask again
        return None
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def _save(store: Store, state: PoolState) -> None:
    """What mpp would commit: the pool's state, compare-and-set on the stored version."""
    snap = store.load("main")
    assert store.save(state, [], snap.version if snap else None) is not None


def _free_port(ports: Ports) -> str:
    return f"127.0.0.1:{ports.port()}"  # reserved and bound by nobody


@pytest.fixture
def pair(tmp_path: Path, ports: Ports) -> Iterator[tuple[Path, int]]:
    """db1 (primary, writable) and db2 (its replica)."""
    d = tmp_path / "pr"
    base = ports.block(2)
    sandbox.up(d, nodes=2, base_port=base, topology="primary-replica")
    assert _read_only(base) == 0
    yield d, base
    sandbox.destroy(d)


def test_reports_reach_the_store_and_say_restarting_running_gave_up(
    tmp_path: Path, ports: Ports
) -> None:
    d = tmp_path / "one"
    port = ports.block(1)
    sandbox.up(d, nodes=1, base_port=port)
    sandbox.stop_node(d, "db1", signal.SIGTERM)
    mysqld = f'command = {_toml_list(_command(d))}\nretry_limit = 2\nretry_interval = "5m"\n'
    agent = Agent(tmp_path, d, port, mysqld, peers=[])
    try:
        first = agent.wait("running", lambda r: r.process is Process.RUNNING and r.pid is not None)
        assert first.fence_ttl == FENCE_TTL and first.retry_limit == 2 and first.agent_pid
        later = agent.wait("renewed twice more", lambda r: r.seq >= first.seq + 2)
        assert later.sent_at > first.sent_at
        assert poll_until(lambda: accepts_connections(port, sandbox.ROOT_PASSWORD) or None, 60)
        for n in (1, 2):
            pid = agent.wait(
                "pid", lambda r: r.process is Process.RUNNING and r.pid is not None
            ).pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)

            def restarted(r: AgentReport, n: int = n, pid: int = pid) -> bool:
                return r.process is Process.RUNNING and r.restarts_used == n and r.pid != pid

            back = agent.wait(f"running after restart {n}", restarted)
            assert back.last_exit == "killed by signal 9 (SIGKILL)"
            assert poll_until(lambda: accepts_connections(port, sandbox.ROOT_PASSWORD) or None, 30)
        # each restart was seen in the store as `restarting` (until the new server answered
        # a ping) before `running` with the same count
        steps = [(r.process, r.restarts_used) for r in agent.seen]
        for n in (1, 2):
            assert (Process.RESTARTING, n) in steps, steps
            assert steps.index((Process.RESTARTING, n)) < steps.index((Process.RUNNING, n)), steps
        restarting = [r for r in agent.seen if r.process is Process.RESTARTING]
        assert all(r.last_exit == "killed by signal 9 (SIGKILL)" for r in restarting), restarting
        assert [r.seq for r in agent.seen] == sorted({r.seq for r in agent.seen})
        pid = agent.report().pid  # type: ignore[union-attr]
        assert pid is not None
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        gone = agent.wait("gave up", lambda r: r.process is Process.GAVE_UP, timeout=10)
        took = time.monotonic() - killed
        print(f"kill -9 to the GAVE_UP report in the store: {took:.3f} s")
        assert took < 1.0, took  # "at once on every change", not at the next renewal
        assert gone.dead and "restarts exhausted: 2 of 2" in gone.message and gone.pid is None
    finally:
        assert agent.stop() == 0
        sandbox.destroy(d)


def test_the_agents_last_report_says_it_stopped_its_mysqld(tmp_path: Path, ports: Ports) -> None:
    d = tmp_path / "one"
    port = ports.block(1)
    sandbox.up(d, nodes=1, base_port=port)
    sandbox.stop_node(d, "db1", signal.SIGTERM)
    agent = Agent(tmp_path, d, port, f"command = {_toml_list(_command(d))}\n", peers=[])
    try:
        agent.wait("answering", lambda r: r.process is Process.RUNNING and r.ping_ok is True)
        reader = agent.store
        agent.store = SqliteStore(agent.db)  # agent.stop() closes this one
        assert agent.stop() == 0
        last = reader.reports("main")["db1"]
        assert last.process is Process.STOPPED and last.dead and last.pid is None, last
        reader.close()
    finally:
        if agent.proc.poll() is None:
            agent.stop()
        sandbox.destroy(d)


def test_mpp_asks_and_the_agent_fences_at_once(
    pair: tuple[Path, int], tmp_path: Path, ports: Ports
) -> None:
    d, base = pair
    agent = Agent(tmp_path, d, base, _watched(d), peers=[f"127.0.0.1:{base + 1}"])
    try:
        agent.wait("reporting", lambda r: r.process is Process.RUNNING)
        client = connect(base, sandbox.APP_USER, sandbox.APP_PASSWORD, 5.0, database="app")
        # a few renewals, nothing to fence yet; then mpp asks at any moment between two
        time.sleep(FENCE_TTL + random.uniform(0, FENCE_TTL / 3))
        assert _read_only(base) == 0 and agent.report().fenced == ""  # type: ignore[union-attr]
        _save(
            agent.store,
            PoolState("main", (NodeState("db1"), NodeState("db2")), fencing=("db1",)),
        )
        asked = time.monotonic()
        assert poll_until(lambda: _read_only(base) == 1 or None, 5, period=0.01)
        took = time.monotonic() - asked
        print(f"mpp asked to read_only = 1: {took:.3f} s")
        assert took < FENCE_TTL / 3 + FENCE_TTL / 6 + 0.5, took  # next renewal + check + fence
        fenced = agent.wait("fenced in the report", lambda r: r.fenced != "", timeout=5)
        assert fenced.fenced.startswith("mpp asked: db1")
        # the app's session was killed
        with pytest.raises(pymysql.err.OperationalError), client.cursor() as cur:
            cur.execute("SELECT 1")
        # the replica still streams from it (its Binlog Dump thread is not a client)
        replica = sandbox.admin_connect(d, "db2")
        try:
            with replica.cursor() as cur:
                cur.execute("SHOW SLAVE STATUS")
                cols = [c[0] for c in cur.description]
                row = dict(zip(cols, cur.fetchone() or (), strict=False))
            assert row["Slave_IO_Running"] == "Yes", row
        finally:
            replica.close()
        assert "FENCED: mpp asked" in agent.log.read_text()
    finally:
        assert agent.stop() == 0


def _hold_store(db: Path) -> sqlite3.Connection:
    """Another writer holds the store's write lock: every put_report waits, then fails."""
    lock = sqlite3.connect(db, isolation_level=None, timeout=5)
    lock.execute("BEGIN IMMEDIATE")
    return lock


def test_self_fence_only_when_cut_off_from_the_store_and_the_pool(
    pair: tuple[Path, int], tmp_path: Path, ports: Ports
) -> None:
    d, base = pair
    # 1. the store stops taking reports, but the replica is in reach: a majority of 2
    agent = Agent(tmp_path, d, base, _watched(d), peers=[f"127.0.0.1:{base + 1}"], name="a1")
    try:
        agent.wait("renewing", lambda r: r.process is Process.RUNNING)
        lock = _hold_store(agent.db)
        try:
            last = agent.report().seq  # type: ignore[union-attr]
            samples = []
            until = time.monotonic() + 2 * FENCE_TTL + 1
            while time.monotonic() < until:
                samples.append(_read_only(base))
                time.sleep(0.05)
            assert 1 not in samples and 0 in samples, samples  # never fenced
        finally:
            lock.rollback()
            lock.close()
        after = agent.wait("renewing again", lambda r: r.seq > last, timeout=15)
        assert after.fenced == ""
    finally:
        assert agent.stop() == 0
    # 2. the same, with the two peers out of reach (nothing listens there): 1 of 3
    peers = [_free_port(ports), _free_port(ports)]
    agent = Agent(tmp_path, d, base, _watched(d), peers=peers, name="a2")
    try:
        first = agent.wait("renewing", lambda r: r.process is Process.RUNNING and r.fenced == "")
        agent.wait("a new renewal", lambda r: r.seq > first.seq)
        lock = _hold_store(agent.db)
        try:
            locked = time.monotonic()  # the last report landed before this
            assert poll_until(lambda: _read_only(base) == 1 or None, 3 * FENCE_TTL, period=0.01)
            took = time.monotonic() - locked
            print(f"store locked to read_only = 1 (fence_ttl {FENCE_TTL:g} s): {took:.3f} s")
            # not before the lease ran out (it began at most one renewal period before the
            # lock), and within fence_ttl + one check period + the fence itself
            assert FENCE_TTL * 2 / 3 - 0.1 <= took <= FENCE_TTL + FENCE_TTL / 6 + 0.5, took
        finally:
            lock.rollback()
            lock.close()
        fenced = agent.wait("fenced in the report", lambda r: r.fenced != "", timeout=15)
        assert "only 1 of 3 nodes in reach" in fenced.fenced, fenced.fenced
        assert "fence lease not renewed" in fenced.fenced
        assert _read_only(base) == 1  # it never turns writes back on
    finally:
        assert agent.stop() == 0


def test_self_fence_with_an_unreachable_etcd_store(
    pair: tuple[Path, int], tmp_path: Path, ports: Ports
) -> None:
    """An etcd store nobody answers for, from the start: the lease counts from the agent's
    start, so the server is fenced about fence_ttl later."""
    d, base = pair
    nowhere = f"etcd://{_free_port(ports)}"
    started = time.monotonic()
    agent = Agent(tmp_path, d, base, _watched(d), [_free_port(ports)], store=nowhere)
    try:
        assert poll_until(lambda: _read_only(base) == 1 or None, 4 * FENCE_TTL, period=0.01)
        took = time.monotonic() - started
        print(
            f"agent spawned (store unreachable) to read_only = 1, start-up included: {took:.3f} s"
        )
        assert took >= FENCE_TTL, took
        why = poll_until(lambda: agent.file().get("fenced"), 2)
        assert why and why.startswith("fence lease not renewed"), why
        log = agent.log.read_text()
        assert log.count("store put failed") == 1, log  # one line per distinct error
    finally:
        assert agent.stop() == 0


def test_through_a_real_etcd_from_a_source_address(
    pair: tuple[Path, int], tmp_path: Path, etcd_server: EtcdServer
) -> None:
    """The same reports and requests through etcd (the key {prefix}/agents/main/db1), the
    agent's connections to it coming from its source_address."""
    d, base = pair
    prefix = f"/agent-{os.getpid()}-{time.monotonic_ns()}"
    reader = EtcdStore([etcd_server.endpoint], prefix)
    agent = Agent(
        tmp_path,
        d,
        base,
        _watched(d),
        peers=[f"127.0.0.1:{base + 1}"],
        store=f"etcd://{etcd_server.host_port}{prefix}",
        reader=reader,
        extra='source_address = "127.0.0.5"\n',
    )
    try:
        first = agent.wait("a report in etcd", lambda r: r.process is Process.RUNNING)
        agent.wait("renewed", lambda r: r.seq > first.seq)
        out = subprocess.run(
            ["ss", "-tnH", "state", "established", "dst", etcd_server.host_port],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "127.0.0.5:" in out, out  # the agent's keep-alive connection to etcd
        _save(reader, PoolState("main", (NodeState("db1"), NodeState("db2")), fencing=("db1",)))
        assert poll_until(lambda: _read_only(base) == 1 or None, 5, period=0.01)
        assert agent.wait("fenced", lambda r: r.fenced != "").fenced.startswith("mpp asked")
    finally:
        assert agent.stop() == 0


def test_maintenance_means_no_restart_and_no_fence(
    pair: tuple[Path, int], tmp_path: Path, ports: Ports
) -> None:
    d, base = pair
    agent = Agent(tmp_path, d, base, _watched(d), peers=[_free_port(ports)])
    try:
        agent.wait("reporting", lambda r: r.process is Process.RUNNING)
        held = NodeState("db1", maintenance_since=time.time())
        _save(agent.store, PoolState("main", (held, NodeState("db2")), fencing=("db1",)))
        assert poll_until(lambda: agent.file().get("maintenance") or None, 5)
        # asked to fence, and its lease runs out (the store is held): still no fence
        lock = _hold_store(agent.db)
        try:
            pid = agent.file()["pid"]
            os.kill(pid, signal.SIGKILL)
            assert poll_until(lambda: "not restarted" in agent.file()["message"] or None, 5)
            time.sleep(2 * FENCE_TTL)
            assert not accepts_connections(base, sandbox.ROOT_PASSWORD)  # not restarted
        finally:
            lock.rollback()
            lock.close()
        down = agent.wait("reported down", lambda r: r.process is Process.STOPPED)
        assert "in maintenance: not restarted" in down.message and down.fenced == ""
        # maintenance over, nobody asks to fence: the death is handled as any other
        _save(agent.store, PoolState("main", (NodeState("db1"), NodeState("db2"))))
        agent.wait("restarted", lambda r: r.process is Process.RUNNING and r.restarts_used == 1)
        assert poll_until(lambda: accepts_connections(base, sandbox.ROOT_PASSWORD) or None, 30)
        assert _read_only(base) == 0  # it was never fenced
    finally:
        assert agent.stop() == 0


def test_a_write_stall_is_reported_with_its_duration_and_never_replicates(
    pair: tuple[Path, int], tmp_path: Path
) -> None:
    d, base = pair
    agent = Agent(tmp_path, d, base, _watched(d), peers=[f"127.0.0.1:{base + 1}"])
    try:
        agent.wait("a committed write", lambda r: r.write is WriteProbe.OK)
        locker = sandbox.admin_connect(d, "db1")
        try:
            with locker.cursor() as cur:
                cur.execute("LOCK TABLES mpp_agent.probe WRITE")
            first = agent.wait("stalled", lambda r: r.write is WriteProbe.STALLED)
            assert first.ping_ok is True and first.stalled_for is not None
            assert "not committed within 1 s" in first.write_error
            assert "write probe stalled for" in first.message
            later = agent.wait(
                "still stalled, longer",
                lambda r: (
                    r.write is WriteProbe.STALLED
                    and (r.stalled_for or 0) >= (first.stalled_for or 0) + 1.0
                ),
            )
            assert later.seq > first.seq
        finally:
            locker.close()
        ok = agent.wait("writes again", lambda r: r.write is WriteProbe.OK)
        assert ok.stalled_for is None
        replica = sandbox.admin_connect(d, "db2")
        try:
            with replica.cursor() as cur:
                cur.execute("SHOW DATABASES LIKE 'mpp_agent'")
                assert cur.fetchall() == ()
        finally:
            replica.close()
    finally:
        assert agent.stop() == 0


def test_the_agent_stops_cleanly_while_the_store_hangs(
    pair: tuple[Path, int], tmp_path: Path
) -> None:
    """SIGTERM with every store call stuck behind another writer's lock: a clean exit
    (status 0) within the renewal thread's join, and the watched mysqld left running."""
    d, base = pair
    agent = Agent(tmp_path, d, base, _watched(d), peers=[f"127.0.0.1:{base + 1}"])
    agent.wait("renewing", lambda r: r.process is Process.RUNNING)
    lock = _hold_store(agent.db)
    try:
        time.sleep(FENCE_TTL / 3 + 0.2)  # a put is now waiting for the lock
        asked = time.monotonic()
        code = agent.stop()
        took = time.monotonic() - asked
        print(f"SIGTERM to exit with the store hung: {took:.2f} s")
        assert code == 0 and took < 15, (code, took)  # one store call, not two
        assert accepts_connections(base, sandbox.ROOT_PASSWORD)
    finally:
        lock.rollback()
        lock.close()


def test_a_hung_server_that_mpp_asks_to_fence_is_killed_and_not_restarted(
    pair: tuple[Path, int], tmp_path: Path, ports: Ports
) -> None:
    """SIGSTOP: no session can make it read-only, and it would be writable the moment it
    resumes. Asked to fence it, the agent kills it (rule 5) and reports it dead, so mpp
    may promote; the agent never restarts it."""
    d, base = pair
    agent = Agent(tmp_path, d, base, _watched(d), peers=[f"127.0.0.1:{base + 1}"])
    pid = int((d / "db1" / "mariadbd.pid").read_text().split()[0])
    try:
        agent.wait("reporting", lambda r: r.process is Process.RUNNING)
        os.kill(pid, signal.SIGSTOP)
        _save(
            agent.store,
            PoolState("main", (NodeState("db1"), NodeState("db2")), fencing=("db1",)),
        )
        asked = time.monotonic()
        dead = agent.wait("reported dead", lambda r: r.dead, timeout=FENCE_TTL * 3 + 5)
        took = time.monotonic() - asked
        print(f"mpp asked to fence a SIGSTOPped mysqld; killed and reported dead in {took:.2f} s")
        assert dead.process is Process.GAVE_UP
        assert "did not answer its agent" in dead.fenced
        assert "killed by its agent" in dead.message
        time.sleep(FENCE_TTL)  # never restarted
        assert not _alive(pid)
        assert agent.report().process is Process.GAVE_UP  # type: ignore[union-attr]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        assert agent.stop() == 0


def _alive(pid: int) -> bool:
    """Running (a zombie left for the sandbox's parent to reap does not count)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
