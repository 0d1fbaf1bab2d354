"""Leadership in the daemon: who acts when several `mpp run` share a store (SQLite here; the
same contract on etcd is held by tests/integration/test_store.py, and two real processes on etcd by
tests/integration/test_sites.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mpp.config import Config
from mpp.model import Event, EventKind, PoolState
from mpp.run.daemon import PoolWorker
from mpp.run.leadership import Leadership
from mpp.store import NotLeader, SqliteStore, StoreError
from tests import builders
from tests.builders import config_doc, pool


def _config(tmp_path: Path) -> Config:
    # nothing listens on the nodes' ports: every probe is refused at once
    doc = config_doc(
        pool(count=2, password_env="MPP_UNUSED_PASSWORD"),
        mpp={"state": "sqlite://state.db", "interval": "10ms", "connect_timeout": "50ms"},
    )
    return builders.config(doc, tmp_path / "mpp.toml")


@pytest.fixture
def config_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Config, SqliteStore]]:
    """A 2-node config whose nodes nobody listens on, and its SQLite store."""
    monkeypatch.setenv("MPP_UNUSED_PASSWORD", "x")
    config = _config(tmp_path)
    store = SqliteStore(config.state_path)
    yield config, store
    store.close()


def _worker(
    config: Config,
    store: SqliteStore,
    leadership: Leadership | None,
    publish: Callable[[PoolState, tuple[Event, ...]], None] | None = None,
) -> PoolWorker:
    publishers = (publish,) if publish else ()
    return PoolWorker(config, config.pool[0], store, ThreadPoolExecutor(4), publishers, leadership)


def test_one_leader_the_others_see_who_it_is(tmp_path: Path, caplog: Any) -> None:
    store = SqliteStore(tmp_path / "s.db")
    a, b = Leadership(store, "a", 5), Leadership(store, "b", 5)
    caplog.set_level(logging.INFO, logger="mpp")
    with ThreadPoolExecutor(1) as thread:  # `mpp run` renews from a worker thread
        assert thread.submit(a.renew).result() and a.held and a.current == a.owner
    assert not b.renew() and not b.held and b.current == a.owner
    assert f"{b.owner} follows (leader: {a.owner})" in caplog.text
    a.resign()
    assert not a.held
    assert b.renew() and b.current == b.owner
    assert f"{b.owner} is now the leader" in caplog.text
    assert not a.renew() and a.current == b.owner


def test_a_deposed_leader_commits_nothing_and_then_follows(
    config_store: tuple[Config, SqliteStore],
) -> None:
    config, store = config_store
    a, b = Leadership(store, "a", 5), Leadership(store, "b", 5)
    published: list[tuple[PoolState, tuple[Event, ...]]] = []
    worker = _worker(config, store, a, lambda s, e: published.append((s, e)))
    try:
        assert a.renew()
        first = asyncio.run(worker.cycle())
        assert first is not None and first.events, "the leader decides and records"
        took = [e for e in store.history("main") if e.kind is EventKind.LEADER]
        assert [(e.old, e.new) for e in took] == [("none", a.owner)], "its term is in history"
        assert asyncio.run(worker.cycle()) is not None
        assert len([e for e in store.history("main") if e.kind is EventKind.LEADER]) == 1, (
            "once a term"
        )
        saved = store.load("main")
        assert saved is not None
        store.resign(a.owner)  # a's lease is taken behind its back; a still believes it leads
        assert b.renew()
        assert a.held
        with pytest.raises(NotLeader):
            asyncio.run(worker.cycle())
        after = store.load("main")
        assert after is not None and after.version == saved.version, "nothing was committed"

        stop = asyncio.Event()

        async def one_loop() -> None:
            task = asyncio.create_task(worker.run(stop))
            await asyncio.sleep(0.05)
            stop.set()
            await task

        asyncio.run(one_loop())
        assert not a.held, "the loop turned the NotLeader into following"
        published.clear()
        assert asyncio.run(worker.cycle()) is None
        assert published == [(after.state, ())], "a follower publishes the stored state"
    finally:
        worker.close()


def test_a_stall_longer_than_the_lease_neither_loses_it_nor_stops_the_loop(
    config_store: tuple[Config, SqliteStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pre_* hook (or a slow store) that takes longer than the TTL: the lease is renewed
    from its own thread meanwhile, and the event loop (router, checks, API) keeps running."""
    config, store = config_store
    lead = Leadership(store, "a", 2)
    worker = _worker(config, store, lead)

    def stalling_hook(decision: object) -> str:
        time.sleep(2.6)
        return ""

    monkeypatch.setattr(worker, "pre_hook", stalling_hook)
    assert lead.renew()
    halt = lead.start()
    gaps: list[float] = []

    async def cycle_while_ticking() -> object:
        async def tick() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.05)
                gaps.append(time.monotonic() - last)
                last = time.monotonic()

        ticker = asyncio.create_task(tick())
        try:
            return await worker.cycle()
        finally:
            ticker.cancel()

    try:
        decision = asyncio.run(cycle_while_ticking())
        assert decision is not None and lead.held, "committed, still the leader"
        assert max(gaps) < 0.5, f"the event loop stalled {max(gaps):.2f} s"
        assert len([e for e in store.history("main") if e.kind is EventKind.LEADER]) == 1
    finally:
        halt()
        worker.close()


def test_terms_are_recorded_once_and_not_by_mpp_poll(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    lead = Leadership(store, "a", 5)
    assert lead.renew() and lead.term == 1
    lead._held_until = 0.0  # a stall: `held` lapsed, the lease itself was never lost
    assert lead.renew() and lead.term == 1, "renewing after a stall is the same term"
    lead.lost()  # NotLeader: really lost
    assert lead.renew() and lead.term == 2 and lead.leader() == lead.owner
    poll = Leadership(store, "cron", 5, record_terms=False)
    assert poll.event("main", 1.0) is None
    assert lead.event("main", 1.0) is not None


def test_a_follower_publishes_the_leaders_new_history(
    config_store: tuple[Config, SqliteStore],
) -> None:
    config, store = config_store
    leader, follower = Leadership(store, "a", 5), Leadership(store, "b", 5)
    assert leader.renew() and not follower.renew()
    published: list[tuple[Event, ...]] = []
    mirror = _worker(config, store, follower, lambda s, e: published.append(e))
    acting = _worker(config, store, leader)
    try:
        assert asyncio.run(mirror.cycle()) is None and published == []
        asyncio.run(acting.cycle())
        assert asyncio.run(mirror.cycle()) is None
        assert [e.kind for e in published[-1]][:1] == ["leader"], published
        assert {e.node for e in published[-1]} >= {"db1", "db2"}
        asyncio.run(mirror.cycle())
        assert published[-1] == (), "each event once"
    finally:
        mirror.close()
        acting.close()


def test_the_status_table_names_the_leader_readably(tmp_path: Path) -> None:
    from rich.console import Console

    from mpp.publish.view import document, table

    config = _config(tmp_path)
    console = Console(width=200, record=True)
    owner = "site-a@db-host:4711:1f2e3d4c:12ab34cd.4026531836"
    console.print(table(document(config, {}, owner)))
    assert "leader: site-a on db-host (pid 4711)" in console.export_text()
    console.print(table(document(config, {}, None)))
    assert "leader: none (no mpp run is acting)" in console.export_text()
    assert document(config, {}, owner)["leader"] == owner, "JSON keeps the whole id"


class _CutStore(SqliteStore):
    """A real SQLite store whose lease calls fail once `cut` is set, as etcd's do when the
    instance is cut off from it (the fault matrix's three-instance row cuts a real etcd)."""

    cut = False

    def lead(self, owner: str, ttl: float, scope: str | None = None) -> bool:
        if self.cut:
            raise StoreError("no etcd endpoint answered (timed out)")
        return super().lead(owner, ttl, scope)


def test_a_leader_cut_off_from_its_store_says_it_stops_acting(tmp_path: Path, caplog: Any) -> None:
    """Not "follows (leader: itself)": an instance whose renewals fail while its lease
    runs out has stopped acting, and the log says why."""
    store = _CutStore(tmp_path / "s.db")
    a = Leadership(store, "a", 2)
    caplog.set_level(logging.INFO, logger="mpp")
    assert a.renew() and a.held
    store.cut = True
    time.sleep(2 * 0.8 + 0.1)  # past the held fraction of the TTL
    assert not a.renew() and not a.held
    assert f"{a.owner} stops acting on the pools: its lease could not be renewed" in caplog.text
    assert f"{a.owner} follows" not in caplog.text
    store.close()


@pytest.mark.parametrize("veto", ["", "pre_failover refused"])
def test_the_hooks_see_the_logics_decision_and_the_term_is_recorded_once(
    config_store: tuple[Config, SqliteStore], monkeypatch: pytest.MonkeyPatch, veto: str
) -> None:
    """The first cycle of a term: the pre_* hooks get the logic's decision without this
    process's leadership line (their MPP_REASON), and the line is recorded once, vetoed or
    not."""
    config, store = config_store
    lead = Leadership(store, "a", 5)
    worker = _worker(config, store, lead)
    seen: list[tuple[EventKind, ...]] = []

    def hook(decision: Any) -> str:
        seen.append(tuple(e.kind for e in decision.events))
        return veto

    monkeypatch.setattr(worker, "pre_hook", hook)
    assert lead.renew()
    try:
        decision = asyncio.run(worker.cycle())
        assert decision is not None and seen, "the hook ran on the cycle's decision"
        assert all(EventKind.LEADER not in kinds for kinds in seen)
        kinds = [e.kind for e in store.history("main")]
        assert kinds.count(EventKind.LEADER) == 1
        assert (EventKind.POOL in kinds) == bool(veto), "a veto is recorded as such"
    finally:
        worker.close()
