"""mpp.run.follow: one store read per fifth of an interval serves every followed pool, and each
follower gets its pool's new events once (a real SQLite store; the clock is the test's)."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mpp.logic.failover import initial_state
from mpp.model import Event, EventKind
from mpp.run.follow import FollowFeed
from mpp.store import Followed, SqliteStore
from tests.builders import ring_spec


class _Counting(SqliteStore):
    """Counts the follow reads (the store itself is real)."""

    reads = 0

    def follow(self, after: int | None) -> Followed:
        self.reads += 1
        return super().follow(after)


def test_one_read_per_half_interval_and_each_pools_events(tmp_path: Path) -> None:
    store = _Counting(tmp_path / "s.db")
    now = [100.0]
    feed = FollowFeed(store, interval=1.0, monotonic=lambda: now[0])
    state = initial_state(ring_spec())
    for pool in ("a", "b"):
        store.save(dataclasses.replace(state, name=pool), (), None)
    assert feed.get().states.keys() == {"a", "b"} and store.reads == 1
    event = Event(5.0, "a", "db1", EventKind.STATUS, "OK", "FAIL", "x")
    snap = feed.get().states["a"]
    store.save(snap.state, (event,), snap.version)
    now[0] += 0.15
    assert feed.get().states["a"].version == snap.version and store.reads == 1  # within 0.2 s
    assert feed.events("a") == ()
    now[0] += 0.05
    assert feed.get().states["a"].version != snap.version and store.reads == 2
    assert feed.events("a") == (event,) and feed.events("b") == ()
    now[0] += 0.2
    unchanged = feed.get().states["b"]
    now[0] += 0.2
    assert feed.get().states["b"] is unchanged and store.reads == 4  # decoded once
    assert feed.events("a") == (event,), "an event is read once, and kept for the followers"
    store.close()


class _Slow(SqliteStore):
    """A follow read that waits for the test to let it finish (the store itself is real)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.slow = False

    def follow(self, after: int | None) -> Followed:
        if self.slow:
            self.entered.set()
            assert self.release.wait(10)
        return super().follow(after)


def test_a_follower_takes_the_last_read_while_another_thread_reads(tmp_path: Path) -> None:
    store = _Slow(tmp_path / "s.db")
    now = [100.0]
    feed = FollowFeed(store, interval=1.0, monotonic=lambda: now[0])
    store.save(dataclasses.replace(initial_state(ring_spec()), name="a"), (), None)
    first = feed.get()
    now[0] += 0.5  # the last read is stale: the next get reads
    store.slow = True
    with ThreadPoolExecutor(1) as pool:
        reading = pool.submit(feed.get)
        assert store.entered.wait(10)
        started = time.monotonic()
        assert feed.get() is first, "a second caller does not wait for the read under way"
        assert time.monotonic() - started < 1.0
        store.release.set()
        newer = reading.result(10)
    assert newer is not first and feed.get() is newer
    store.close()
