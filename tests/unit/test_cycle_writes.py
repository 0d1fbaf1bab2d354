"""The daemon's cycle writes only what changed (mpp/run/transact.py: transact_cycle), on a
real SQLite store: clock-only cycles are not saved until the heartbeat is due, any other
change is saved at once, and another writer's save is built on, never overwritten."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mpp.logic import logic_for
from mpp.model import Decision, PoolState
from mpp.run.transact import CycleWrite, Kept, transact_cycle
from mpp.store import Snapshot, SqliteStore
from tests.builders import observe, ring_spec

SPEC = ring_spec()
LOGIC = logic_for(SPEC.logic)
HEARTBEAT = 2.0
DEFAULT_WRITE = CycleWrite(HEARTBEAT)  # no recent-only version answers


def _cycle(
    store: SqliteStore,
    kept: Kept | None,
    at: float,
    write: CycleWrite = DEFAULT_WRITE,
    **kinds: str,
) -> tuple[Decision, Kept | None]:
    observations = observe(SPEC, dict(kinds), at)

    def step(prev: PoolState) -> Decision:
        return LOGIC.decide(SPEC, prev, observations, at)

    return transact_cycle(store, SPEC, step, kept, write)


def _version(store: SqliteStore) -> int:
    snapshot = store.load(SPEC.name)
    assert snapshot is not None
    return snapshot.version


def test_clock_only_cycles_wait_for_the_heartbeat(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    try:
        decision, kept = _cycle(store, None, 100.0)
        assert decision.events, "the first cycle elects: written"
        decision, kept = _cycle(store, kept, 101.0)  # the 'elected' notices clear: written
        settled = _version(store)
        cycles = decision.state.cycle
        for at in (101.5, 102.0, 102.5):
            decision, kept = _cycle(store, kept, at)
            assert _version(store) == settled, f"nothing but the clocks changed at {at}"
            assert decision.state.updated_at == at
        assert kept is not None and kept.state.cycle == cycles + 3, "cycles counted in memory"
        decision, kept = _cycle(store, kept, 103.0)  # 2 s after the stored state: heartbeat
        assert _version(store) == settled + 1
        stored = store.load(SPEC.name)
        assert stored is not None and stored.state.updated_at == 103.0
        assert stored.state.cycle == cycles + 4, "the count carried across unwritten cycles"
    finally:
        store.close()


def test_a_real_change_is_written_at_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    try:
        _, kept = _cycle(store, None, 100.0)
        _, kept = _cycle(store, kept, 101.0)
        settled = _version(store)
        decision, kept = _cycle(store, kept, 101.2, db3="offline")
        assert _version(store) == settled + 1, "a bad poll (req) is a change"
        stored = store.load(SPEC.name)
        assert stored is not None and stored.state.node("db3").req == 1
        assert decision.state.node("db3").req == 1
    finally:
        store.close()


def test_another_writers_save_is_built_on(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    try:
        _, kept = _cycle(store, None, 100.0)
        _, kept = _cycle(store, kept, 101.0)
        _, kept = _cycle(store, kept, 101.5)  # not written: kept holds it
        stored = store.load(SPEC.name)
        assert stored is not None
        theirs = replace(stored.state, pinned="db2")  # the CLI, say, between two cycles
        assert store.save(theirs, (), stored.version)
        decision, kept = _cycle(store, kept, 101.8)
        assert decision.state.pinned == "db2", "decided on the other writer's state"
        assert kept is not None and kept.version == _version(store)
    finally:
        store.close()


class CountingStore(SqliteStore):
    """The real SQLite store, counting its full loads (a spy, not a fake: every call
    still goes to the file)."""

    loads = 0
    version_checks = 0

    def load(self, pool: str) -> Snapshot | None:
        self.loads += 1
        return super().load(pool)

    def is_current(self, pool: str, version: int, within: float = 0.0) -> bool:
        self.version_checks += 1
        return super().is_current(pool, version, within)


def test_a_cycle_on_an_unchanged_store_builds_on_what_it_holds(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "state.db")
    try:
        _, kept = _cycle(store, None, 100.0)
        _, kept = _cycle(store, kept, 101.0)
        before = store.loads
        for at in (101.5, 102.0, 102.5):  # clock-only: not written, nothing to load
            _, kept = _cycle(store, kept, at)
        assert store.loads == before, "the stored version alone was read"
        _, kept = _cycle(store, kept, 103.0)  # the heartbeat's save: still no load
        assert store.loads == before
        stored = store.load(SPEC.name)
        assert stored is not None and kept is not None and kept.stored == stored.state
        assert store.save(replace(stored.state, pinned="db2"), (), stored.version)
        decision, kept = _cycle(store, kept, 103.2)
        assert store.loads == before + 2, "another writer's version: loaded again"
        assert decision.state.pinned == "db2"
    finally:
        store.close()


def test_an_exact_store_is_asked_once_before_a_change_is_saved(tmp_path: Path) -> None:
    """The daemon passes `current_within` to every store; SQLite's answer is exact anyway
    (Store.versions_exact), so a change decided on it is saved without a second look."""
    store = CountingStore(tmp_path / "state.db")
    recent = CycleWrite(HEARTBEAT, current_within=0.2)
    try:
        _, kept = _cycle(store, None, 100.0, recent)
        _, kept = _cycle(store, kept, 101.0, recent)
        settled, checks, loads = _version(store), store.version_checks, store.loads
        decision, kept = _cycle(store, kept, 101.2, recent, db3="offline")
        assert _version(store) == settled + 1, "the change was saved"
        assert decision.state.node("db3").req == 1
        assert store.version_checks == checks + 1, "one version check, not two"
        assert store.loads == loads + 1, "only _version's own load"
    finally:
        store.close()
