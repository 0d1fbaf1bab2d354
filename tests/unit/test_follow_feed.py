"""mpp.run.follow: one store read per fifth of an interval serves every followed pool, and each
follower gets its pool's new events once (a real SQLite store; the clock is the test's)."""

from __future__ import annotations

import dataclasses
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
