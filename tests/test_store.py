"""The SQLite store: compare-and-set, atomic events, history, and a second process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mpp.logic.failover import decide, initial_state
from mpp.model import Event
from mpp.store import SqliteStore, StoreError
from tests.builders import observe, ring_spec


def test_save_is_compare_and_set(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    spec = ring_spec()
    first = decide(spec, initial_state(spec), observe(spec, {}), 1.0)
    assert store.load("main") is None
    assert store.save(first.state, first.events, None) == 1
    assert store.save(first.state, (), None) is None, "pool exists: creating it again must fail"
    snap = store.load("main")
    assert snap is not None and snap.version == 1 and snap.state == first.state
    second = decide(spec, snap.state, observe(spec, {"db2": "offline"}), 2.0)
    assert store.save(second.state, second.events, 1) == 2
    assert store.save(second.state, second.events, 1) is None, "stale version must lose"
    assert [e.new for e in store.history("main") if e.kind == "state"] == [
        "ACTIVE",
        "STANDBY",
        "STANDBY",
    ]


def test_conflicting_save_writes_no_events(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    spec = ring_spec()
    state = initial_state(spec)
    store.save(state, (), None)
    event = Event(1.0, "main", "db1", "state", "UNKNOWN", "ACTIVE", "test")
    assert store.save(state, (event,), 99) is None
    assert store.history() == []


def test_history_filters_and_limits(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    spec = ring_spec()
    events = [
        Event(float(i), "main", f"db{i % 3 + 1}", "status", "OK", "OK INFO", f"r{i}")
        for i in range(10)
    ]
    store.save(initial_state(spec), events, None)
    assert [e.reason for e in store.history(limit=3)] == ["r7", "r8", "r9"]
    assert {e.node for e in store.history(node="db2")} == {"db2"}
    assert store.pools() == ["main"]


def test_another_process_sees_committed_state(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    spec = ring_spec()
    store.save(decide(spec, initial_state(spec), observe(spec, {}), 1.0).state, (), None)
    code = (
        "import sys; from mpp.store import SqliteStore; "
        f"s = SqliteStore(__import__('pathlib').Path({str(path)!r})); "
        "print(s.load('main').state.node('db1').state)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open state store"):
        SqliteStore(blocker / "sub" / "state.db")
