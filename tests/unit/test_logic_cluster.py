"""The cluster logic as a pure function: examples, and invariants over random histories.

Invariants (hypothesis): never fewer than min_nodes in service while the pool has that many
nodes out of FAILED; a node leaves service only after fail_point bad polls in a row and
returns only after return_after good ones; FAILED_* is only left by recover; no actions,
ever; a restart from the stored state decides the same (store codec round trip)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpp.logic import logic_for
from mpp.logic.cluster import LOGIC, poll_verdict
from mpp.model import (
    ClusterPolicy,
    CommandRefused,
    Fail,
    Maintenance,
    NodeSpec,
    NodeType,
    Observation,
    PoolSpec,
    PoolState,
    Recover,
    Replication,
    State,
    Switchover,
)
from mpp.store import codec
from tests.examples import examples


def spec(n: int = 3, min_nodes: int = 1, return_after: int = 2, fail_point: int = 2) -> PoolSpec:
    return PoolSpec(
        name="farm",
        nodes=tuple(
            NodeSpec(f"db{i + 1}", NodeType.SECONDARY, f"127.0.0.1:{3306 + i}") for i in range(n)
        ),
        fail_point=fail_point,
        logic="cluster",
        cluster=ClusterPolicy(min_nodes=min_nodes, return_after=return_after),
    )


def obs(name: str, good: bool) -> Observation:
    if good:
        return Observation(name, 0.0, reachable=True, read_only=False)
    return Observation(name, 0.0, reachable=False, error="2003 refused")


def poll(s: PoolSpec, state: PoolState, bad: set[str], now: float = 0.0) -> PoolState:
    observations = {n.name: obs(n.name, n.name not in bad) for n in s.nodes}
    decision = LOGIC.decide(s, state, observations, now)
    assert decision.actions == ()
    return decision.state


def serving(state: PoolState) -> set[str]:
    return {n.name for n in state.nodes if n.state is State.ACTIVE}


def test_registered_as_a_builtin() -> None:
    assert logic_for("cluster") is LOGIC


def test_every_healthy_node_serves_from_the_first_poll() -> None:
    s = spec()
    state = poll(s, LOGIC.initial_state(s), {"db3"})
    assert serving(state) == {"db1", "db2"}
    assert state.node("db3").state is State.UNKNOWN
    state = poll(s, state, {"db3"})
    assert state.node("db3").state is State.STANDBY  # fail_point 2: not in service


def test_a_failing_node_leaves_service_and_returns_after_good_polls() -> None:
    s = spec(return_after=3)
    state = poll(s, LOGIC.initial_state(s), set())
    state = poll(s, state, {"db2"})
    assert "db2" in serving(state)  # one bad poll: still in
    state = poll(s, state, {"db2"})
    assert serving(state) == {"db1", "db3"}
    for _ in range(2):
        state = poll(s, state, set())
        assert "db2" not in serving(state)
    decision = LOGIC.decide(s, state, {n.name: obs(n.name, True) for n in s.nodes}, 1.0)
    assert serving(decision.state) == {"db1", "db2", "db3"}
    (event,) = [e for e in decision.events if e.node == "db2" and e.new == "ACTIVE"]
    assert "3 good polls" in event.reason


def test_min_nodes_keeps_the_last_nodes_in_service_and_raises_critical() -> None:
    s = spec(min_nodes=2)
    state = poll(s, LOGIC.initial_state(s), set())
    for _ in range(2):
        state = poll(s, state, {"db2", "db3"})
    assert len(serving(state)) == 2  # db2 left, db3 kept: the last two stay
    assert serving(state) == {"db1", "db3"}
    assert state.alert.startswith("CRITICAL")
    assert "db3" in state.alert
    for _ in range(2):
        state = poll(s, state, set())
    assert serving(state) == {"db1", "db2", "db3"}
    assert state.alert == ""


def test_a_lagging_or_stopped_replica_is_a_bad_poll() -> None:
    s = spec()
    rep = Replication("10.0.0.1", 3306, "Yes", True, seconds_behind=600)
    lagging = Observation("db1", 0.0, reachable=True, read_only=True, replication=rep)
    assert poll_verdict(s, lagging) == (False, "replication lag 600s over max_lag 10s")
    stopped = replace(lagging, replication=replace(rep, io_running="No", seconds_behind=0))
    assert not poll_verdict(s, stopped)[0]
    fine = replace(lagging, replication=replace(rep, seconds_behind=1))
    assert poll_verdict(s, fine) == (True, "serving, read-only")


def test_commands() -> None:
    s = spec(min_nodes=2)
    state = poll(s, LOGIC.initial_state(s), set())
    with pytest.raises(CommandRefused, match="no primary to switch"):
        LOGIC.apply_command(s, state, Switchover(), 1.0)
    state = LOGIC.apply_command(s, state, Fail("db1"), 1.0).state
    assert state.node("db1").state is State.FAILED_ONLINE
    with pytest.raises(CommandRefused, match="min_nodes 2"):
        LOGIC.apply_command(s, state, Fail("db2"), 1.0)
    state = poll(s, state, set())
    assert state.node("db1").state is State.FAILED_ONLINE  # only recover leaves it
    state = LOGIC.apply_command(s, state, Recover("db1"), 2.0).state
    for _ in range(2):
        state = poll(s, state, set())
    assert state.node("db1").state is State.ACTIVE


def test_maintenance_holds_a_failing_node_in_service_and_expires() -> None:
    s = spec()
    state = poll(s, LOGIC.initial_state(s), set())
    state = LOGIC.apply_command(s, state, Maintenance("db2", True, 10.0), 0.0).state
    assert state.node("db2").in_maintenance(5.0)
    for t in (1.0, 2.0, 3.0):
        state = poll(s, state, {"db2"}, now=t)
    assert "db2" in serving(state)
    decision = LOGIC.decide(s, state, {n.name: obs(n.name, n.name != "db2") for n in s.nodes}, 11.0)
    assert decision.state.node("db2").maintenance_since is None
    assert any(e.reason == "maintenance ended" for e in decision.events)
    assert "db2" not in serving(decision.state)  # out once maintenance no longer holds it


@st.composite
def histories(draw: st.DrawFn) -> tuple[PoolSpec, list[object]]:
    n = draw(st.integers(1, 5))
    s = spec(
        n,
        min_nodes=draw(st.integers(1, n)),
        return_after=draw(st.integers(1, 3)),
        fail_point=draw(st.integers(1, 4)),
    )
    names = [x.name for x in s.nodes]
    step = st.one_of(
        st.sets(st.sampled_from(names)),  # a poll: these nodes are bad
        st.tuples(st.sampled_from(["fail", "recover"]), st.sampled_from(names)),
    )
    return s, draw(st.lists(step, max_size=30))


@settings(max_examples=examples(300), deadline=None)
@given(histories())
def test_cluster_invariants_hold_over_random_histories(case: tuple[PoolSpec, list[object]]) -> None:
    s, steps = case
    state = LOGIC.initial_state(s)
    bad_streak = {n.name: 0 for n in s.nodes}
    good_streak = {n.name: 0 for n in s.nodes}
    for now, step in enumerate(steps):
        prev = state
        if isinstance(step, tuple):
            kind, name = step
            command = Fail(name, force=True) if kind == "fail" else Recover(name)
            try:
                state = LOGIC.apply_command(s, prev, command, float(now)).state
            except CommandRefused:
                continue
            for moved in state.nodes:  # a command moves only its own node
                if moved.name != name:
                    assert moved.state is prev.node(moved.name).state
            continue
        assert isinstance(step, (set, frozenset))
        observations = {n.name: obs(n.name, n.name not in step) for n in s.nodes}
        decision = LOGIC.decide(s, prev, observations, float(now))
        assert decision.actions == ()
        again = LOGIC.decide(s, codec.loads(codec.dumps(prev)), observations, float(now))
        assert again.state == decision.state  # a restart decides the same
        state = decision.state
        for name in (n.name for n in s.nodes):
            bad_streak[name] = bad_streak[name] + 1 if name in step else 0
            good_streak[name] = 0 if name in step else good_streak[name] + 1
            old, new = prev.node(name).state, state.node(name).state
            if old.failed:
                assert new is old  # only recover leaves FAILED
            if old is State.ACTIVE and new is not State.ACTIVE:
                assert bad_streak[name] >= s.fail_point
            if old is State.STANDBY and new is State.ACTIVE:
                assert good_streak[name] >= s.cluster.return_after
        eligible = [n for n in state.nodes if not n.state.failed]
        was_serving = len(serving(prev))
        # never fewer than min_nodes in service once that many served (failed excepted)
        if was_serving >= s.cluster.min_nodes and len(eligible) >= s.cluster.min_nodes:
            assert len(serving(state)) >= s.cluster.min_nodes
