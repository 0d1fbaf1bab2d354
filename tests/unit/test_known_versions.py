"""mpp/store/versions.py: what the process knows of the pools' versions (pure, no store)."""

from __future__ import annotations

import time

from mpp.store.versions import KnownVersions


def _never() -> dict[str, int]:
    raise AssertionError("no read expected")


def test_a_read_is_the_truth_except_writes_since_it_began() -> None:
    known = KnownVersions()
    known.learn({"a": 10, "b": 20}, time.monotonic())
    assert known.current("a", 10, 30.0, _never) and known.current("b", 20, 30.0, _never)
    begun = time.monotonic()
    known.wrote("a", 15)  # answered while the next read was under way
    known.learn({"a": 12, "b": 5}, begun)  # b went down: a restored etcd
    assert known.current("a", 15, 30.0, _never), "written after the read began: kept"
    assert known.current("b", 5, 30.0, _never), "the read wins over what was known"
    known.learn({"b": 6}, time.monotonic())
    assert not known.current("a", 15, 30.0, _never), "a pool missing from a read is forgotten"


def test_a_read_begun_before_the_last_one_learnt_is_ignored() -> None:
    known = KnownVersions()
    older = time.monotonic()
    known.learn({"a": 7}, time.monotonic())
    known.learn({"a": 3}, older)
    assert known.current("a", 7, 30.0, _never)


def test_a_stale_read_is_made_again() -> None:
    known = KnownVersions()
    known.learn({"a": 1}, time.monotonic() - 10.0)
    assert known.current("a", 2, 1.0, lambda: {"a": 2})
    assert not known.current("a", 1, 1.0, _never)
