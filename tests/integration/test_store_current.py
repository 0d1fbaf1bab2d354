"""Store.is_current with `within`: etcd answers from one read of every pool's version per
`within` seconds and from this process's own saves, SQLite exactly; a decision on a stale
answer is neither settled (the pre_* hooks) nor saved: it is taken again on the stored state
(a real etcd and a real SQLite file; "another process" is a raw put through etcd's gateway)."""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import replace

import httpx

from mpp.logic import logic_for
from mpp.model import Decision, PoolState
from mpp.run.transact import CycleWrite, Kept, transact_cycle
from mpp.sandbox.etcd import EtcdServer
from mpp.store import Store, codec
from mpp.store.etcd import EtcdStore
from tests.builders import observe, ring_spec

SPEC = ring_spec()
LOGIC = logic_for(SPEC.logic)


def _saved(store: Store, state: PoolState, expect: int | None) -> int:
    written = store.save(state, (), expect)
    assert written
    return written


def test_the_version_is_current_until_a_save(store: Store) -> None:
    mine = _saved(store, replace(LOGIC.initial_state(SPEC), pinned="db1"), None)
    assert store.is_current(SPEC.name, mine, within=0.05)
    stored = store.load(SPEC.name)
    assert stored is not None
    newer = _saved(store, replace(stored.state, pinned="db2"), mine)
    assert not store.is_current(SPEC.name, mine, within=0.05)
    assert store.is_current(SPEC.name, newer, within=0.05)
    time.sleep(0.1)  # older than `within`: read again
    assert store.is_current(SPEC.name, newer, within=0.05)
    assert not store.is_current("no-such-pool", newer, within=0.05)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _put_from_elsewhere(server: EtcdServer, prefix: str, state: PoolState) -> None:
    """Another process's write: straight to etcd, past this process's stores."""
    key, value = f"{prefix}/pools/{state.name}", codec.dumps(state)
    answer = httpx.post(
        f"{server.endpoint}/v3/kv/put", json={"key": _b64(key), "value": _b64(value)}
    )
    assert answer.status_code == 200


def test_etcd_answers_from_one_read_and_this_process_saves(etcd_server: EtcdServer) -> None:
    prefix = f"/test-{uuid.uuid4().hex[:8]}"
    store = EtcdStore([etcd_server.endpoint], prefix)
    api = EtcdStore([etcd_server.endpoint], prefix)  # as the API's store of its own
    try:
        first = _saved(store, LOGIC.initial_state(SPEC), None)
        assert not store.is_current(SPEC.name, first), "within 0: cannot tell for less"
        assert store.is_current(SPEC.name, first, within=30.0)
        second = _saved(api, replace(LOGIC.initial_state(SPEC), pinned="db1"), first)
        assert not store.is_current(SPEC.name, first, within=30.0), "a save here: known"
        assert store.is_current(SPEC.name, second, within=30.0), "with no new read"
        # another process's save is not seen until the read is `within` old (the staleness
        # the contract allows), then it is
        _put_from_elsewhere(etcd_server, prefix, replace(LOGIC.initial_state(SPEC), pinned="db2"))
        assert store.is_current(SPEC.name, second, within=30.0)
        assert not store.is_current(SPEC.name, second, within=0.001)
        third = store.load(SPEC.name)
        assert third is not None and store.is_current(SPEC.name, third.version, within=30.0)
    finally:
        store.close()
        api.close()


def test_a_change_decided_on_a_stale_answer_is_decided_again_on_the_stored_state(
    etcd_server: EtcdServer,
) -> None:
    """The stale True of a 30 s `within`: the cycle decides on what it kept, finds it a
    change, checks exactly, and decides again on the other process's state; only that
    decision is settled (the hooks) and saved, and the other's write is kept."""
    prefix = f"/test-{uuid.uuid4().hex[:8]}"
    store = EtcdStore([etcd_server.endpoint], prefix)
    decided_on: list[str | None] = []
    settled_on: list[str | None] = []

    def cycle(kept: Kept | None, at: float, **kinds: str) -> tuple[Decision, Kept | None]:
        observations = observe(SPEC, dict(kinds), at)

        def step(prev: PoolState) -> Decision:
            decided_on.append(prev.pinned)
            return LOGIC.decide(SPEC, prev, observations, at)

        def settle(prev: PoolState, decision: Decision) -> Decision:
            settled_on.append(prev.pinned)
            return decision

        return transact_cycle(
            store, SPEC, step, kept, CycleWrite(2.0, current_within=30.0), settle=settle
        )

    try:
        _, kept = cycle(None, 100.0)
        _, kept = cycle(kept, 101.0)
        stored = store.load(SPEC.name)
        assert stored is not None and kept is not None
        assert store.is_current(SPEC.name, kept.version, within=30.0)
        _put_from_elsewhere(etcd_server, prefix, replace(stored.state, pinned="db2"))
        assert store.is_current(SPEC.name, kept.version, within=30.0), "stale, as allowed"
        decided_on.clear()
        settled_on.clear()
        decision, kept = cycle(kept, 101.2, db3="offline")  # a change: it must be saved
        assert decided_on == [None, "db2"], "decided on what it kept, then on the store's"
        assert settled_on == ["db2"], "settled only on the stored state"
        assert decision.state.pinned == "db2" and decision.state.node("db3").req == 1
        final = store.load(SPEC.name)
        assert final is not None and final.state.pinned == "db2", "their write is kept"
        assert final.state.node("db3").req == 1
        assert kept is not None and kept.version == final.version
    finally:
        store.close()
