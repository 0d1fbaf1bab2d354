"""Invariants of the failover logic over random histories (hypothesis).

Each history is a random sequence of steps; a step is either one poll cycle with a random
verdict per node, or an operator command on a random node.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mpp.logic.failover import apply_command, decide, initial_state
from mpp.model import Activate, CommandRefused, Fail, PoolSpec, Recover, State
from mpp.store import codec
from tests.builders import observe, ring_spec
from tests.examples import examples

KINDS = ["good", "good", "good", "offline", "service", "sql_stopped", "io_down", "lag"]


@st.composite
def scenario(draw: Any) -> tuple[PoolSpec, list[Any]]:
    n = draw(st.integers(1, 4))
    spec = ring_spec(n, fail_point=draw(st.integers(1, 5)), hostile=draw(st.booleans()))
    names = [f"db{i + 1}" for i in range(n)]
    poll = st.fixed_dictionaries({name: st.sampled_from(KINDS) for name in names})
    command = st.builds(
        lambda kind, node, force: (
            Recover(node) if kind == 0 else Activate(node) if kind == 1 else Fail(node, force)
        ),
        st.integers(0, 2),
        st.sampled_from(names),
        st.booleans(),
    )
    steps = draw(st.lists(st.one_of(poll, poll, poll, command), min_size=1, max_size=40))
    return spec, steps


def _healthy(spec: PoolSpec, kinds: dict[str, str]) -> set[str]:
    obs = observe(spec, kinds)
    # "good" polls, plus a replica whose only problem is its dead source
    good = {n for n, k in kinds.items() if k == "good"}
    for name, kind in kinds.items():
        rep = obs[name].replication
        if kind == "io_down" and rep is not None:
            source = next(s.name for s in spec.nodes if s.address == rep.source_address)
            if kinds[source] == "offline":
                good.add(name)
    return good


@settings(max_examples=examples(400), deadline=None)
@given(scenario())
def test_invariants_hold_over_random_histories(case: tuple[PoolSpec, list[Any]]) -> None:
    spec, steps = case
    state = initial_state(spec)
    for t, step in enumerate(steps):
        before = state
        if isinstance(step, dict):
            decision = decide(spec, state, observe(spec, step, t), float(t))
            # a restart from the stored state yields the same decision
            again = decide(spec, codec.loads(codec.dumps(state)), observe(spec, step, t), float(t))
            assert again == decision
            state = decision.state
            healthy = {n for n in _healthy(spec, step) if not state.node(n).state.failed}
            # a pool with a healthy node is never left without an ACTIVE node after a cycle
            if healthy:
                assert len(state.active) == 1, (step, state)
        else:
            try:
                state = apply_command(spec, state, step, float(t)).state
            except CommandRefused:
                continue
        # never two ACTIVE nodes; ACTIVE is never a FAILED state
        assert len(state.active) <= 1
        # FAILED_* is left only by the operator's recover of that very node
        for old, new in zip(before.nodes, state.nodes, strict=True):
            if old.state.failed and not new.state.failed:
                assert step == Recover(old.name), (old, new, step)
                assert new.state is State.UNKNOWN


@settings(max_examples=examples(200), deadline=None)
@given(scenario())
def test_every_state_change_is_recorded_with_a_reason(case: tuple[PoolSpec, list[Any]]) -> None:
    spec, steps = case
    state = initial_state(spec)
    for t, step in enumerate(steps):
        try:
            decision = (
                decide(spec, state, observe(spec, step, t), float(t))
                if isinstance(step, dict)
                else apply_command(spec, state, step, float(t))
            )
        except CommandRefused:
            continue
        changed = {
            o.name
            for o, n in zip(state.nodes, decision.state.nodes, strict=True)
            if o.state is not n.state
        }
        recorded = {e.node for e in decision.events if e.kind in ("state", "operator")}
        assert changed == recorded
        assert all(e.reason for e in decision.events)
        state = decision.state
