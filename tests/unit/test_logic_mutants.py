"""Tests written against mutants of mpp/logic that survived the other unit and property
tests (issue 16's hand-made ones first, then mutmut's, `make mutate`): each fails when its
mutant is applied. docs/reliability.md "Mutation testing" lists the ones still alive."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mpp.logic.failover import converge as topology
from mpp.logic.failover import decide, initial_state
from mpp.model import (
    Change,
    ChangeKind,
    NodeState,
    Observation,
    PoolState,
    State,
)
from tests.builders import observe, ring_spec, star, star_spec


def states(state: PoolState) -> dict[str, State]:
    return {n.name: n.state for n in state.nodes}


def with_io_pos(obs: Observation, io_pos: str) -> Observation:
    assert obs.replication is not None
    return replace(obs, replication=replace(obs.replication, gtid_io_pos=io_pos))


# -- two ACTIVE nodes in a damaged store -------------------------------------------------------


@pytest.mark.parametrize("primary_replica", [False, True])
def test_two_active_nodes_in_a_damaged_store_are_repaired_keeping_the_preferred(
    primary_replica: bool,
) -> None:
    spec = star_spec() if primary_replica else ring_spec()
    obs = star(spec, {}) if primary_replica else observe(spec, {})
    damaged = PoolState(
        "main",
        (
            NodeState("db1", State.ACTIVE),
            NodeState("db2", State.STANDBY),
            NodeState("db3", State.ACTIVE),
        ),
        cycle=5,
    )
    decision = decide(spec, damaged, obs, 1.0)
    assert states(decision.state) == {
        "db1": State.ACTIVE,
        "db2": State.STANDBY,
        "db3": State.STANDBY,
    }
    assert "two ACTIVE nodes found; db1 kept" in decision.state.node("db3").message
    moved = [e for e in decision.events if e.node == "db3" and e.new == "STANDBY"]
    assert len(moved) == 1 and "two ACTIVE" in moved[0].reason


# -- an election with no ACTIVE node ------------------------------------------------------------


def test_election_without_an_active_node_refuses_a_candidate_lacking_transactions() -> None:
    """No ACTIVE node (the operator failed it with --force, say): the best healthy candidate
    is not elected while another reachable node, unhealthy this cycle, has more."""
    spec = star_spec()
    pool = PoolState(
        "main",
        (
            NodeState("db1", State.FAILED_OFFLINE, req=9),
            NodeState("db2", State.STANDBY),
            NodeState("db3", State.STANDBY),
        ),
        cycle=5,
    )
    obs = star(
        spec,
        {"db1": "offline", "db2": "io_lost", "db3": "sql_stopped"},
        gtids={"db2": "0-1-10", "db3": "0-1-20"},
    )
    decision = decide(spec, pool, obs, 1.0)
    assert decision.state.active == ()
    assert decision.change is None
    assert "refusing to promote db2: db3 has 0-1-20" in decision.state.alert
    # the same world with db3 holding nothing more: db2 is elected, as a failover
    even = star(spec, {"db1": "offline", "db2": "io_lost", "db3": "sql_stopped"})
    decision = decide(spec, pool, even, 1.0)
    assert states(decision.state)["db2"] is State.ACTIVE
    assert decision.change == Change(ChangeKind.FAILOVER, "", "db2")


# -- the relay log in successor ranking --------------------------------------------------------


def test_received_counts_the_relay_log_not_only_what_was_applied() -> None:
    spec = star_spec()
    obs = star(spec, {"db1": "offline", "db2": "io_lost", "db3": "io_lost"})
    obs["db3"] = with_io_pos(obs["db3"], "0-1-15")  # received 11..15, not applied yet
    assert str(topology.received(obs["db3"])) == "0-1-15"
    assert str(topology.received(obs["db2"])) == "0-1-10"
    assert topology.order(spec, ["db2", "db3"], obs) == ["db3", "db2"]


def test_the_successor_is_the_one_that_received_most_even_if_not_applied() -> None:
    """Semi-sync acknowledges a write once a replica *received* it: the replica holding it
    only in its relay log must win, or acknowledged writes are lost."""
    spec = star_spec()
    state = decide(spec, initial_state(spec), star(spec, {}), 0.0).state
    obs = star(spec, {"db1": "offline", "db2": "io_lost", "db3": "io_lost"})
    obs["db3"] = with_io_pos(obs["db3"], "0-1-15")
    decision = decide(spec, state, obs, 1.0)
    assert states(decision.state)["db3"] is State.ACTIVE
    assert decision.change == Change(ChangeKind.FAILOVER, "db1", "db3")


def test_a_candidate_lacking_what_another_received_in_its_relay_log_is_refused() -> None:
    """db3 is the only candidate (db2's SQL thread is stopped), and db2 received more than
    db3 has: refused."""
    spec = star_spec()
    state = decide(spec, initial_state(spec), star(spec, {}), 0.0).state
    obs = star(spec, {"db1": "offline", "db2": "broken", "db3": "io_lost"})
    obs["db2"] = with_io_pos(obs["db2"], "0-1-12")
    decision = decide(spec, state, obs, 1.0)
    assert decision.change is None
    assert states(decision.state)["db1"] is State.ACTIVE
    assert "refusing to promote db3: db2 has 0-1-12" in decision.state.alert
