"""How pools are spread over live instances (mpp.run.shards.assignment), and the scoped
leases and membership of the SQLite store (the etcd ones: tests/integration/test_shards.py)."""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mpp.run.shards import assignment, instance_name
from mpp.store.sqlite import SqliteStore

names = st.text("abcdefgh", min_size=1, max_size=3)


@given(st.sets(names, max_size=40), st.sets(names, min_size=1, max_size=8))
def test_every_pool_has_one_leader_and_no_instance_more_than_its_share(
    pools: set[str], members: set[str]
) -> None:
    owners = [f"{m}@host:1:t:s" for m in members]
    chosen = assignment(pools, owners)
    assert set(chosen) == pools
    share = -(-len(pools) // len(owners))
    for owner in owners:
        assert list(chosen.values()).count(owner) <= share
    assert assignment(sorted(pools, reverse=True), reversed(owners)) == chosen  # order-free


def test_a_restarted_instance_gets_its_pools_back_and_a_leaver_moves_few_others() -> None:
    pools = [f"p{i}" for i in range(12)]
    a, b, c = "a@h:1:x:s", "b@h:2:x:s", "c@h:3:x:s"
    before = assignment(pools, [a, b, c])
    assert {instance_name(o) for o in before.values()} == {"a", "b", "c"}
    again = assignment(pools, [a, "b@h:9:new:s", c])  # b restarted: a new owner id
    assert {p for p, o in again.items() if o.startswith("b@")} == {
        p for p, o in before.items() if o == b
    }
    without_b = assignment(pools, [a, c])
    assert set(without_b.values()) == {a, c}
    # bounded load: with more room each, a pool that had to take its second choice may go
    # back to its first; most of the others stay where they were
    stayed = [p for p, o in before.items() if o != b and without_b[p] == o]
    assert len(stayed) >= len([o for o in before.values() if o != b]) // 2


def test_sqlite_scoped_leases_and_members(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    try:
        assert store.lead("a", 5.0, "p1") and store.lead("b", 5.0, "p2")
        assert not store.lead("b", 5.0, "p1")  # held by a
        assert store.leader("p1") is not None and store.leader("p1").owner == "a"  # type: ignore[union-attr]
        assert store.leader() is None  # the one lease is another key
        assert store.leaders() == {"p1": "a", "p2": "b"}
        store.resign("b", "p1")  # not b's: nothing happens
        assert store.leaders()["p1"] == "a"
        store.resign("a", "p1")
        assert store.lead("b", 5.0, "p1")
        store.join("a", 0.2)
        store.join("b", 5.0)
        assert store.members() == ["a", "b"]
        time.sleep(0.3)
        assert store.members() == ["b"]  # a's presence expired
    finally:
        store.close()
