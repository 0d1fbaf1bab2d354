"""The role rules (mpp.publish.roles) on plain values, and their invariants under hypothesis."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mpp.logic import registry
from mpp.logic.failover import FailoverLogic, apply_command, decide
from mpp.logic.failover import initial_state as first_state
from mpp.model import Activate, CommandRefused, Fail, NodeState, PoolSpec, PoolState, Recover, State
from mpp.publish.roles import Role, check_node, check_pool, healthy
from tests.builders import observe, ring_spec

SPEC = ring_spec(3)


def pool(*nodes: NodeState, draining: tuple[str, ...] = ()) -> PoolState:
    return PoolState("main", nodes, cycle=5, updated_at=100.0, draining=draining)


def n(
    name: str, state: State, req: int = 0, lag: int | None = 0, notice: bool = False
) -> NodeState:
    return NodeState(name, state, req=req, lag=lag, notice=notice, reachable=req == 0)


HEALTHY = pool(n("db1", State.ACTIVE), n("db2", State.STANDBY), n("db3", State.STANDBY, lag=4))


def up(state: PoolState | None, node: str, role: Role, max_lag: float | None = None) -> bool:
    return check_node(SPEC, state, node, role, max_lag)[0]


def test_rw_is_the_active_node_only() -> None:
    assert check_node(SPEC, HEALTHY, "db1", Role.RW) == (True, "db1 is ACTIVE")
    ok, reason = check_node(SPEC, HEALTHY, "db2", Role.RW)
    assert not ok and reason == "db2 is STANDBY; ACTIVE: db1"


def test_rw_is_down_while_draining_and_the_pool_stays_writable() -> None:
    state = replace(HEALTHY, draining=("db1",))
    ok, reason = check_node(SPEC, state, "db1", Role.RW)
    assert not ok and "draining" in reason
    assert check_pool(SPEC, state, Role.RW)[0], "a switchover does not make the site unwritable"


def test_ro_prefers_standbys_within_the_lag_limit() -> None:
    assert up(HEALTHY, "db2", Role.RO) and up(HEALTHY, "db3", Role.RO)
    ok, reason = check_node(SPEC, HEALTHY, "db1", Role.RO)
    assert not ok and reason == "db1 is ACTIVE; reads go to db2, db3"
    # the request's limit overrides the pool's 10s
    assert not up(HEALTHY, "db3", Role.RO, max_lag=2.0)
    assert check_node(SPEC, HEALTHY, "db3", Role.RO, 2.0)[1] == "db3 lag 4s > 2s"


def test_ro_falls_back_to_the_active_node() -> None:
    state = pool(
        n("db1", State.ACTIVE),
        n("db2", State.FAILED_OFFLINE, req=4, lag=None),
        n("db3", State.STANDBY, lag=None, req=1),
    )
    ok, reason = check_node(SPEC, state, "db1", Role.RO)
    assert ok and "fallback" in reason
    assert not up(state, "db2", Role.RO) and not up(state, "db3", Role.RO)
    assert check_node(SPEC, state, "db3", Role.RO)[1] == "db3 status is OK INFO (1 bad polls)"


def test_ro_needs_a_known_lag() -> None:
    state = pool(n("db1", State.ACTIVE), n("db2", State.STANDBY, lag=None), n("db3", State.STANDBY))
    assert check_node(SPEC, state, "db2", Role.RO) == (False, "db2 replication lag is unknown")
    # a request's laxer limit can bring a lagging standby back and take the ACTIVE out
    lagging = pool(n("db1", State.ACTIVE), n("db2", State.STANDBY, lag=300))
    assert up(lagging, "db1", Role.RO) and not up(lagging, "db2", Role.RO)
    assert up(lagging, "db2", Role.RO, 600.0) and not up(lagging, "db1", Role.RO, 600.0)


def test_ok_is_no_bad_poll_and_counts_a_notice_as_ok() -> None:
    state = pool(
        n("db1", State.ACTIVE, notice=True),  # OK INFO of a state change: still OK
        n("db2", State.STANDBY, req=1),  # OK INFO of a first bad poll: not OK
        n("db3", State.FAILED_ONLINE),  # healthy again but FAILED until recovered
    )
    assert check_node(SPEC, state, "db1", Role.OK) == (True, "db1 status OK (ACTIVE)")
    assert check_node(SPEC, state, "db2", Role.OK) == (
        False,
        "db2 status is OK INFO (1 bad polls)",
    )
    assert check_node(SPEC, state, "db3", Role.OK) == (False, "db3 is FAILED_ONLINE")


def test_no_state_yet_is_down_with_a_reason() -> None:
    assert check_node(SPEC, None, "db1", Role.RW) == (
        False,
        "no state yet: mpp has not polled pool main",
    )
    assert check_pool(SPEC, None, Role.RW)[0] is False
    partial = pool(n("db1", State.ACTIVE))
    assert check_node(SPEC, partial, "db2", Role.OK) == (False, "db2 has no state yet in pool main")


def test_pool_level_roles() -> None:
    assert check_pool(SPEC, HEALTHY, Role.RW) == (True, "pool main: ACTIVE db1")
    assert check_pool(SPEC, HEALTHY, Role.RO) == (True, "pool main: ro on db2, db3")
    empty = pool(n("db1", State.FAILED_OFFLINE, req=4), n("db2", State.STANDBY, req=2))
    assert check_pool(SPEC, empty, Role.RW) == (False, "pool main has no ACTIVE node")
    assert check_pool(SPEC, empty, Role.OK) == (False, "pool main: no node is UP for ok")


class EveryHealthyNodeWrites(FailoverLogic):
    """A stand-in for a cluster logic: the rw role is whatever the pool's logic says."""

    name = "test-every-healthy-node"

    def writer(self, spec: PoolSpec, state: PoolState, node: NodeState) -> tuple[bool, str]:
        return healthy(node), node.name


def test_the_rw_role_is_the_pools_logics_answer() -> None:
    registry.register(EveryHealthyNodeWrites())
    spec = replace(SPEC, logic=EveryHealthyNodeWrites.name)
    state = pool(n("db1", State.ACTIVE), n("db2", State.STANDBY), n("db3", State.STANDBY, req=2))
    assert [check_node(spec, state, x, Role.RW)[0] for x in ("db1", "db2", "db3")] == [
        True,
        True,
        False,
    ]


# -- properties ---------------------------------------------------------------------------------

NAMES = ["db1", "db2", "db3", "db4"]


@st.composite
def pool_states(draw: Any) -> tuple[PoolSpec, PoolState]:
    """Arbitrary states with at most one ACTIVE node (what the failover logic guarantees)."""
    count = draw(st.integers(1, 4))
    spec = ring_spec(count, fail_point=draw(st.integers(1, 6)))
    names = NAMES[:count]
    active = draw(st.one_of(st.none(), st.sampled_from(names)))
    others = [State.UNKNOWN, State.STANDBY, State.FAILED_ONLINE, State.FAILED_OFFLINE]
    nodes = tuple(
        NodeState(
            name,
            State.ACTIVE if name == active else draw(st.sampled_from(others)),
            req=draw(st.integers(0, 7)),
            lag=draw(st.one_of(st.none(), st.integers(0, 40))),
            notice=draw(st.booleans()),
        )
        for name in names
    )
    draining = tuple(draw(st.lists(st.sampled_from(names), unique=True, max_size=2)))
    return spec, PoolState("main", nodes, cycle=1, draining=draining)


LAGS = st.one_of(st.none(), st.floats(0, 60, allow_nan=False))


def _assert_invariants(spec: PoolSpec, state: PoolState, max_lag: float | None) -> None:
    rw = [x.name for x in state.nodes if check_node(spec, state, x.name, Role.RW)[0]]
    ro = [x.name for x in state.nodes if check_node(spec, state, x.name, Role.RO, max_lag)[0]]
    ok = [x.name for x in state.nodes if check_node(spec, state, x.name, Role.OK)[0]]
    assert len(rw) <= 1, "rw is UP for at most one node of a failover pool"
    assert all(state.node(x).state is State.ACTIVE for x in rw)
    if state.active:
        assert ro, "ro has an UP node whenever the pool has an ACTIVE node"
    # the ACTIVE node serves reads only as the fallback
    readers = [x for x in ro if state.node(x).state is State.STANDBY]
    assert not (readers and any(state.node(x).state is State.ACTIVE for x in ro))
    assert all(state.node(x).req == 0 for x in ok + readers)
    assert check_pool(spec, state, Role.RW)[0] == bool(state.active)
    assert check_pool(spec, state, Role.RO, max_lag)[0] == bool(ro)


@settings(max_examples=300, deadline=None)
@given(pool_states(), LAGS)
def test_role_invariants_on_arbitrary_states(case: tuple[PoolSpec, PoolState], lag: Any) -> None:
    _assert_invariants(*case, lag)


KINDS = ["good", "good", "good", "offline", "service", "sql_stopped", "io_down", "lag"]


@st.composite
def histories(draw: Any) -> tuple[PoolSpec, list[Any]]:
    count = draw(st.integers(1, 4))
    spec = ring_spec(count, fail_point=draw(st.integers(1, 5)))
    names = NAMES[:count]
    poll = st.fixed_dictionaries({x: st.sampled_from(KINDS) for x in names})
    command = st.builds(
        lambda k, x, force: Recover(x) if k == 0 else Activate(x) if k == 1 else Fail(x, force),
        st.integers(0, 2),
        st.sampled_from(names),
        st.booleans(),
    )
    return spec, draw(st.lists(st.one_of(poll, poll, poll, command), min_size=1, max_size=30))


@settings(max_examples=150, deadline=None)
@given(histories(), LAGS)
def test_role_invariants_on_states_the_logic_produces(
    case: tuple[PoolSpec, list[Any]], lag: Any
) -> None:
    spec, steps = case
    state = first_state(spec)
    for t, step in enumerate(steps):
        if isinstance(step, dict):
            state = decide(spec, state, observe(spec, step, t), float(t)).state
        else:
            try:
                state = apply_command(spec, state, step, float(t)).state
            except CommandRefused:
                continue
        _assert_invariants(spec, state, lag)
