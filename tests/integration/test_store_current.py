"""Store.is_current with `within`: etcd answers from one read of every pool's version per
`within` seconds (and from its own saves), SQLite exactly; a stale answer never loses another
writer's save (a real etcd and a real SQLite file)."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

from mpp.logic import logic_for
from mpp.model import Decision, PoolState
from mpp.run.transact import Kept, transact_cycle
from mpp.sandbox.etcd import EtcdServer
from mpp.store import Store
from mpp.store.etcd import EtcdStore
from tests.builders import observe, ring_spec

SPEC = ring_spec()
LOGIC = logic_for(SPEC.logic)


def _saved(store: Store, state: PoolState, expect: int | None) -> int:
    written = store.save(state, (), expect)
    assert written
    return written


def test_the_version_is_current_until_another_writer_saves(store: Store) -> None:
    mine = _saved(store, replace(LOGIC.initial_state(SPEC), pinned="db1"), None)
    assert store.is_current(SPEC.name, mine, within=0.05)
    stored = store.load(SPEC.name)
    assert stored is not None
    theirs = _saved(store, replace(stored.state, pinned="db2"), mine)
    time.sleep(0.1)  # older than `within`: read again
    assert not store.is_current(SPEC.name, mine, within=0.05)
    assert store.is_current(SPEC.name, theirs, within=0.05)
    assert not store.is_current("no-such-pool", theirs, within=0.05)


def test_etcd_answers_from_one_read_and_from_its_own_saves(etcd_server: EtcdServer) -> None:
    prefix = f"/test-{uuid.uuid4().hex[:8]}"
    store = EtcdStore([etcd_server.endpoint], prefix)
    other = EtcdStore([etcd_server.endpoint], prefix)
    try:
        first = _saved(store, LOGIC.initial_state(SPEC), None)
        assert not store.is_current(SPEC.name, first), "within 0: cannot tell for less"
        assert store.is_current(SPEC.name, first, within=30.0)
        second = _saved(store, replace(LOGIC.initial_state(SPEC), pinned="db1"), first)
        assert store.is_current(SPEC.name, second, within=30.0), "its own save, no new read"
        assert not store.is_current(SPEC.name, first, within=30.0)
        # another writer's save is not seen until the read is `within` old (the staleness
        # the contract allows), then it is
        third = _saved(other, replace(LOGIC.initial_state(SPEC), pinned="db2"), second)
        assert store.is_current(SPEC.name, second, within=30.0)
        assert store.is_current(SPEC.name, third, within=0.001)
    finally:
        store.close()
        other.close()


def test_a_cycle_on_a_stale_answer_builds_on_the_other_writers_save(
    etcd_server: EtcdServer,
) -> None:
    """The stale True of a 30 s `within`: the cycle decides on what it kept, its save fails
    the compare, and it decides again on the other writer's state, which it keeps."""
    prefix = f"/test-{uuid.uuid4().hex[:8]}"
    store = EtcdStore([etcd_server.endpoint], prefix)
    other = EtcdStore([etcd_server.endpoint], prefix)
    seen: list[str | None] = []

    def cycle(kept: Kept | None, at: float, **kinds: str) -> tuple[Decision, Kept | None]:
        observations = observe(SPEC, dict(kinds), at)

        def step(prev: PoolState) -> Decision:
            seen.append(prev.pinned)
            return LOGIC.decide(SPEC, prev, observations, at)

        return transact_cycle(store, SPEC, step, kept, 2.0, current_within=30.0)

    try:
        _, kept = cycle(None, 100.0)
        _, kept = cycle(kept, 101.0)
        stored = other.load(SPEC.name)
        assert stored is not None and kept is not None
        assert store.is_current(SPEC.name, kept.version, within=30.0)
        assert other.save(replace(stored.state, pinned="db2"), (), stored.version)
        seen.clear()
        decision, kept = cycle(kept, 101.2, db3="offline")  # a change: it must be saved
        assert seen == [None, "db2"], "decided on what it kept, then again on theirs"
        assert decision.state.pinned == "db2" and decision.state.node("db3").req == 1
        final = other.load(SPEC.name)
        assert final is not None and final.state.pinned == "db2", "their save not lost"
        assert kept is not None and kept.version == final.version
    finally:
        store.close()
        other.close()
