"""Invariants every registered logic must keep, and each logic's own, over random histories
of observations and operator commands (issue 11: the property tests run against every
registered logic).

Shared: FAILED_* is left only by recover (or a logic's own rejoin, which needs replication
facts these histories never give); a restart from the stored state decides the same; every
state change is recorded as an event with its reason; commands are refused or applied, never
crash. Own: failover keeps at most one ACTIVE; cluster never has fewer than min_nodes in
service once that many served. A logic registered later (a plug-in installed in the test's
environment) is run against the shared ones too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpp.logic import registry
from mpp.logic.interface import Logic
from mpp.model import (
    Action,
    ClusterPolicy,
    Command,
    CommandRefused,
    Decision,
    Fail,
    Observation,
    Outcome,
    PoolSpec,
    PoolState,
    Recover,
    State,
)
from mpp.store import codec
from tests.builders import observe, ring_spec
from tests.examples import examples

Own = Callable[[PoolSpec, PoolState, PoolState], None]


def one_active(spec: PoolSpec, prev: PoolState, state: PoolState) -> None:
    assert len(state.active) <= 1


def min_nodes_served(spec: PoolSpec, prev: PoolState, state: PoolState) -> None:
    eligible = [n for n in state.nodes if not n.state.failed]
    if len(prev.active) >= spec.cluster.min_nodes and len(eligible) >= spec.cluster.min_nodes:
        assert len(state.active) >= spec.cluster.min_nodes


OWN: dict[str, Own] = {"failover": one_active, "cluster": min_nodes_served}
KINDS = ("good", "offline", "service", "sql_stopped", "io_down", "lag")


def execute(actions: Sequence[Action]) -> list[Outcome]:
    """Every non-background action succeeds (the executor's report, in order)."""
    return [Outcome(a, True, "", 0.01) for a in actions if not a.best_effort]


def restarted(state: PoolState) -> PoolState:
    return codec.loads(codec.dumps(state))


def recorded(prev: PoolState, decision: Decision) -> None:
    moved = {n.name for n in decision.state.nodes if prev.has(n.name)}
    moved = {m for m in moved if prev.node(m).state is not decision.state.node(m).state}
    logged = {e.node for e in decision.events if e.kind.moves_state}
    assert moved <= logged, f"state changes without an event: {moved - logged}"
    assert all(e.reason for e in decision.events)


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, list[object]]:
    n = draw(st.integers(2, 4))
    names = [f"db{i + 1}" for i in range(n)]
    poll = st.dictionaries(st.sampled_from(names), st.sampled_from(KINDS), max_size=n)
    command = st.tuples(st.sampled_from(["fail", "recover"]), st.sampled_from(names))
    return n, draw(st.lists(st.one_of(poll, command), max_size=25))


def _spec(name: str, n: int) -> PoolSpec:
    spec = replace(ring_spec(n, fail_point=2), logic=name)
    return replace(spec, cluster=ClusterPolicy(min_nodes=min(2, n), return_after=2))


@pytest.mark.parametrize("name", registry.names())
@settings(max_examples=examples(150), deadline=None)
@given(case=histories())
def test_every_registered_logic_keeps_the_shared_invariants(
    name: str, case: tuple[int, list[object]]
) -> None:
    logic: Logic = registry.get(name)
    n, steps = case
    spec = _spec(name, n)
    state = logic.initial_state(spec)
    for now, step in enumerate(steps, start=1):
        prev = state
        if isinstance(step, tuple):
            kind, node = step
            command: Command = Fail(node, force=True) if kind == "fail" else Recover(node)
            try:
                decision = logic.apply_command(spec, prev, command, float(now))
            except CommandRefused:
                continue
            recovered = {node} if isinstance(command, Recover) else set()
        else:
            assert isinstance(step, dict)
            observations: dict[str, Observation] = observe(spec, step, at=float(now))
            decision = logic.decide(spec, prev, observations, float(now))
            again = logic.decide(spec, restarted(prev), observations, float(now))
            assert again == decision, "a restart changed the decision"
            if decision.actions:
                done = execute(decision.actions)
                recorded(prev, decision)
                decision = logic.complete(spec, decision.state, done, float(now))
            recovered = set()
        recorded(prev, decision)
        state = decision.state
        for node_state in prev.nodes:
            if node_state.state.failed and node_state.name not in recovered:
                # ONLINE <-> OFFLINE follows reachability; leaving FAILED needs a recover
                assert state.node(node_state.name).state.failed, (
                    f"{name}: {node_state.name} left {node_state.state} without recover"
                )
        own = OWN.get(name)
        if own is not None and not isinstance(step, tuple):  # a forced `mpp fail` may break it
            own(spec, prev, state)


def test_every_builtin_logic_declares_its_own_invariant() -> None:
    assert set(registry._BUILTIN) <= set(OWN)
    assert State.ACTIVE  # the invariants above are about ACTIVE; keep the import honest
