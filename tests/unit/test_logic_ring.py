"""A self-repairing master-master ring (ring_repair = true) as a pure function: the ring
closes around a failed member, a returning one is put back in its place or quarantined,
and diverged neighbours are refused."""

from __future__ import annotations

from dataclasses import replace

from mpp.logic.failover import decide, initial_state
from mpp.model import Observation, PoolSpec, PoolState, ReplicationPolicy, Repoint, State
from tests.builders import observe, ring_spec


def spec() -> PoolSpec:
    return replace(ring_spec(3, fail_point=2), replication=ReplicationPolicy(ring_repair=True))


def replicating(s: PoolSpec, obs: Observation, source: str, gtid: str = "0-1-10") -> Observation:
    host, _, port = s.spec(source).address.rpartition(":")
    assert obs.replication is not None
    rep = replace(obs.replication, source_host=host, source_port=int(port))
    return replace(obs, replication=rep, gtid_executed=gtid, gtid_binlog=gtid)


def ring(s: PoolSpec, sources: dict[str, str], **kinds: str) -> dict[str, Observation]:
    """Every node healthy at 0-1-10 unless `kinds` says otherwise, replicating from
    `sources` (node -> its source)."""
    base = observe(s, kinds)
    return {
        name: replicating(s, o, sources[name]) if o.reachable and name in sources else o
        for name, o in base.items()
    }


CONFIGURED = {"db1": "db3", "db2": "db1", "db3": "db2"}


def settle(
    s: PoolSpec, state: PoolState, observations: dict[str, Observation], n: int = 3
) -> PoolState:
    for _ in range(n):
        state = decide(s, state, observations, 0.0).state
    return state


def test_a_whole_ring_needs_no_action() -> None:
    s = spec()
    state = settle(s, initial_state(s), ring(s, CONFIGURED))
    decision = decide(s, state, ring(s, CONFIGURED), 0.0)
    assert decision.actions == ()
    assert decision.state.node("db1").state is State.ACTIVE


def test_the_ring_closes_around_a_failed_member() -> None:
    s = spec()
    state = settle(s, initial_state(s), ring(s, CONFIGURED))
    broken = ring(s, CONFIGURED, db2="offline")
    state = settle(s, state, broken, 2)
    assert state.node("db2").state is State.FAILED_OFFLINE
    decision = decide(s, state, broken, 0.0)
    assert decision.actions == (Repoint("db3", source="db1", keep_writable=True),)
    # once db3 replicates from db1 the ring is whole again: nothing more to do
    closed = ring(s, {"db1": "db3", "db3": "db1"}, db2="offline")
    assert decide(s, decision.state, closed, 0.0).actions == ()


def test_a_returning_member_is_put_back_in_its_place() -> None:
    s = spec()
    state = settle(s, initial_state(s), ring(s, CONFIGURED))
    state = settle(s, state, ring(s, CONFIGURED, db2="offline"), 3)
    back = ring(s, {"db1": "db3", "db2": "db1", "db3": "db1"})
    decision = decide(s, state, back, 0.0)
    assert decision.state.node("db2").state is State.STANDBY
    assert "auto-rejoined" in decision.state.node("db2").message
    assert decision.actions == (Repoint("db3", source="db2", keep_writable=True),)


def test_a_returning_member_with_errant_transactions_is_quarantined() -> None:
    s = spec()
    state = settle(s, initial_state(s), ring(s, CONFIGURED))
    state = settle(s, state, ring(s, CONFIGURED, db2="offline"), 3)
    back = ring(s, {"db1": "db3", "db2": "db1", "db3": "db1"})
    back["db2"] = replace(back["db2"], gtid_binlog="0-2-50", gtid_executed="0-2-50")
    decision = decide(s, state, back, 0.0)
    assert decision.state.node("db2").state is State.FAILED_ONLINE
    assert "errant transactions 0-2-50" in decision.state.node("db2").message
    assert all(a.node != "db2" and getattr(a, "source", "") != "db2" for a in decision.actions)


def test_a_member_ahead_of_its_new_source_waits_and_diverged_ones_are_refused() -> None:
    s = spec()
    state = settle(s, initial_state(s), ring(s, CONFIGURED))
    broken = ring(s, CONFIGURED, db2="offline")
    state = settle(s, state, broken, 2)
    ahead = dict(broken)
    ahead["db3"] = replace(broken["db3"], gtid_executed="0-1-12")
    assert decide(s, state, ahead, 0.0).actions == ()  # db1 gets 11, 12 from db3 first
    diverged = dict(broken)
    diverged["db3"] = replace(broken["db3"], gtid_executed="1-3-5")
    diverged["db1"] = replace(broken["db1"], gtid_executed="0-1-10,2-1-7")
    decision = decide(s, state, diverged, 0.0)
    assert decision.actions == ()
    assert decision.state.alert.startswith("ring not closed: db3 and db1 lack each other's")


def test_without_ring_repair_a_ring_is_state_only() -> None:
    s = ring_spec(3, fail_point=2)
    state = settle(s, initial_state(s), ring(s, CONFIGURED))
    state = settle(s, state, ring(s, CONFIGURED, db2="offline"), 3)
    assert decide(s, state, ring(s, CONFIGURED, db2="offline"), 0.0).actions == ()
