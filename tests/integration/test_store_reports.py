"""The store contract's agent reports (put_report, reports) on both backends: a SQLite file
and a real etcd (mpp/sandbox/etcd.py). The report is the agent's fence lease renewal, so
what it writes must come back field for field, and a damaged one must be a named error."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
from dataclasses import fields, replace
from pathlib import Path

import httpx
import pytest

from mpp.model import AgentReport, Process, WriteProbe
from mpp.store import SqliteStore, Store, StoreError
from mpp.store.etcd import EtcdStore
from tests.ports import Ports

pytestmark = pytest.mark.integration


def full(node: str = "db1", seq: int = 1, pool: str = "main") -> AgentReport:
    """A report with no field left at its default."""
    return AgentReport(
        node=node,
        pool=pool,
        seq=seq,
        fence_ttl=6.5,
        process=Process.RESTARTING,
        pid=31337,
        restarts_used=1,
        retry_limit=2,
        last_exit="killed by signal 9 (SIGKILL)",
        message="restarting mysqld: « ünïcode » 'quotes' \"and\" \\ back",
        ping_ok=False,
        ping_ms=0.25,
        write=WriteProbe.STALLED,
        write_ms=5000.5,
        write_error="Lock wait timeout exceeded",
        stalled_for=12.75,
        fenced="lease ran out with 1 of 3 nodes reachable",
        sent_at=1764600000.125,
        agent_pid=4242,
    )


def test_every_field_and_enum_comes_back_as_written(store: Store) -> None:
    written = full()
    defaults = AgentReport("", "", 0, 0.0, Process.RUNNING)
    assert all(getattr(written, f.name) != getattr(defaults, f.name) for f in fields(written))
    store.put_report(written)
    back = store.reports("main")
    assert back == {"db1": written}
    assert type(back["db1"].fence_ttl) is float and back["db1"].process is Process.RESTARTING
    for process in Process:
        for write in WriteProbe:
            r = replace(written, process=process, write=write, ping_ok=True, pid=None)
            store.put_report(r)
            got = store.reports("main")["db1"]
            assert got == r and got.process is process and got.write is write


def test_whole_seconds_come_back_as_floats(store: Store) -> None:
    r = replace(full(), fence_ttl=6.0, sent_at=100.0, stalled_for=None, ping_ms=None)
    store.put_report(r)
    got = store.reports("main")["db1"]
    assert got == r and type(got.fence_ttl) is float and type(got.sent_at) is float


def test_a_newer_report_replaces_the_nodes_last(store: Store) -> None:
    assert store.reports("main") == {}
    store.put_report(full("db1", 1))
    store.put_report(full("db2", 1))
    newer = replace(full("db1", 2), process=Process.GAVE_UP, fenced="")
    store.put_report(newer)
    assert store.reports("main") == {"db1": newer, "db2": full("db2", 1)}


def test_reports_are_kept_apart_by_pool(store: Store) -> None:
    """`main2` starts with `main`: an etcd prefix without its slash would mix them."""
    for pool in ("main", "main2", "other"):
        store.put_report(full("db1", seq=len(pool), pool=pool))
    assert store.reports("main") == {"db1": full("db1", 4, "main")}
    assert store.reports("main2") == {"db1": full("db1", 5, "main2")}
    assert store.reports("other") == {"db1": full("db1", 5, "other")}
    assert store.reports("none") == {}
    assert store.pools() == [], "a report is not a pool's state"


_DAMAGED = [
    "not json",
    "[1, 2]",
    '{"node": "db1", "pool": "main"}',
    '{"node": "db1", "pool": "main", "seq": "x", "fence_ttl": 6, "process": "running"}',
    '{"node": "db1", "pool": "main", "seq": 1, "fence_ttl": 6, "process": "zombie"}',
    '{"node": "db1", "pool": "main", "seq": 1, "fence_ttl": NaN, "process": "running"}',
]


def _damage(store: Store, text: str) -> str:
    """Store `text` as db1's report behind the store's back; the store's name in errors."""
    if isinstance(store, SqliteStore):
        db = sqlite3.connect(store.path)
        with db:
            db.execute(
                "INSERT OR REPLACE INTO agent_report (pool, node, report) VALUES (?, ?, ?)",
                ("main", "db1", text),
            )
        db.close()
        return str(store.path)
    assert isinstance(store, EtcdStore)
    key = base64.b64encode(f"{store.prefix}/agents/main/db1".encode()).decode()
    value = base64.b64encode(text.encode()).decode()
    httpx.post(f"{store.endpoints[0]}/v3/kv/put", json={"key": key, "value": value})
    return repr(store)


@pytest.mark.parametrize("text", _DAMAGED)
def test_an_unreadable_report_is_a_store_error_naming_the_store(store: Store, text: str) -> None:
    store.put_report(full("db2"))
    where = _damage(store, text)
    with pytest.raises(StoreError) as caught:
        store.reports("main")
    message = str(caught.value)
    assert where in message and "agent report of pool 'main' is unreadable" in message
    assert store.reports("other") == {}, "another pool's reports still read"


def test_the_state_file_stays_private_with_reports(tmp_path: Path) -> None:
    """Reports quote server errors: the file and its WAL stay 0600 whatever the umask."""
    old = os.umask(0)
    try:
        path = tmp_path / "new" / "state.db"
        store = SqliteStore(path)
        for seq in range(3):
            store.put_report(full(seq=seq))
        modes = {
            p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir() if p.is_file()
        }
        assert modes.keys() >= {"state.db", "state.db-wal"}
        assert set(modes.values()) == {0o600}, modes
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        store.close()
    finally:
        os.umask(old)


def test_a_report_not_written_is_a_store_error(tmp_path: Path, ports: Ports) -> None:
    """The agent counts its lease renewed only if put_report returned: a locked SQLite file
    or an etcd that does not answer must raise, not pass silently."""
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    store._db.execute("PRAGMA busy_timeout = 100")  # not 10 s of waiting in a test
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match=rf"cannot write state store {path}.*locked"):
            store.put_report(full())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.reports("main") == {}
    store.put_report(full())
    assert store.reports("main") == {"db1": full()}
    store.close()
    port = ports.port()  # nothing listens here
    lonely = EtcdStore([f"http://127.0.0.1:{port}"], "/x", timeout=0.5)
    try:
        with pytest.raises(StoreError, match=rf"no etcd endpoint answered.*{port}"):
            lonely.put_report(full())
    finally:
        lonely.close()


def test_a_sqlite_read_error_is_a_store_error(tmp_path: Path) -> None:
    """The loop reads reports every cycle and carries on after a StoreError; a bare
    sqlite3 error would end the pool's loop instead."""
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    store.put_report(full())
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("DROP TABLE agent_report")
    other.close()
    try:
        with pytest.raises(StoreError, match=rf"cannot read state store {path}: no such table"):
            store.reports("main")
    finally:
        store.close()
