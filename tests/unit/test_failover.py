"""Scenario tests of the pure failover logic: MPP's rules and the flaws it fixes."""

from __future__ import annotations

import pytest

from mpp.logic.failover import apply_command, decide, initial_state
from mpp.logic.ladder import status_of
from mpp.model import (
    Activate,
    CommandRefused,
    EventKind,
    Fail,
    PoolSpec,
    PoolState,
    Recover,
    State,
    Status,
)
from mpp.store import codec
from tests.builders import observe, ring_spec


def run(spec: PoolSpec, state: PoolState, kinds: dict[str, str], t: float = 0.0) -> PoolState:
    return decide(spec, state, observe(spec, kinds, t), t).state


def states(state: PoolState) -> dict[str, State]:
    return {n.name: n.state for n in state.nodes}


def status(spec: PoolSpec, state: PoolState, name: str) -> Status:
    n = state.node(name)
    return status_of(n.req, spec.fail_point, n.notice)


def healthy_pool(spec: PoolSpec) -> PoolState:
    return run(spec, initial_state(spec), {})


def test_first_cycle_elects_the_primary_and_stands_by_the_rest() -> None:
    spec = ring_spec()
    state = healthy_pool(spec)
    assert states(state) == {"db1": State.ACTIVE, "db2": State.STANDBY, "db3": State.STANDBY}
    assert status(spec, state, "db1") is Status.OK_INFO  # a state change raises a notice


def test_dead_active_climbs_the_ladder_and_hands_over_in_the_same_cycle() -> None:
    spec = ring_spec()
    state = healthy_pool(spec)
    dead = {"db1": "offline", "db2": "io_down"}  # db2 replicates from db1 in the ring
    seen = []
    for _ in range(4):
        decision = decide(spec, state, observe(spec, dead), 1.0)
        state = decision.state
        seen.append((status(spec, state, "db1"), state.node("db1").state))
    assert seen == [
        (Status.OK_INFO, State.ACTIVE),
        (Status.OK_WARN, State.ACTIVE),
        (Status.OK_CRIT, State.ACTIVE),
        (Status.FAIL, State.FAILED_OFFLINE),
    ]
    assert state.node("db2").state is State.ACTIVE
    assert state.node("db2").req == 0, "db2's IO thread to the dead db1 is not held against it"
    reasons = [e.reason for e in decision.events if e.kind is EventKind.STATE]
    assert any("FAILOVER" in r for r in reasons)


def test_active_with_no_standby_is_not_failed_into_an_empty_pool() -> None:
    spec = ring_spec(2)
    state = healthy_pool(spec)
    for _ in range(6):
        state = run(spec, state, {"db1": "offline", "db2": "service"})
    assert state.node("db1").state is State.ACTIVE
    assert "no other server is on standby" in state.node("db1").message
    assert state.node("db2").state is State.FAILED_ONLINE
    # once a standby is healthy again (after recovery), the dead ACTIVE is failed over at once
    state = apply_command(spec, state, Recover("db2"), 2.0).state
    state = run(spec, state, {"db1": "offline", "db2": "io_down"})
    assert states(state) == {"db1": State.FAILED_OFFLINE, "db2": State.ACTIVE}


def test_broken_replication_fails_a_standby_but_only_warns_on_the_active() -> None:
    spec = ring_spec()
    state = healthy_pool(spec)
    for _ in range(5):
        state = run(spec, state, {"db1": "sql_stopped", "db3": "sql_stopped"})
    assert state.node("db3").state is State.FAILED_ONLINE
    assert state.node("db1").state is State.ACTIVE
    assert status(spec, state, "db1") is Status.OK_WARN
    assert "SQL thread stopped" in state.node("db1").message


def test_io_thread_down_to_a_live_source_counts() -> None:
    spec = ring_spec()
    state = healthy_pool(spec)
    for _ in range(4):
        state = run(spec, state, {"db3": "io_down"})
    assert state.node("db3").state is State.FAILED_ONLINE


def test_lag_over_max_lag_is_a_request_error() -> None:
    spec = ring_spec()
    state = run(spec, healthy_pool(spec), {"db2": "lag"})
    assert state.node("db2").req == 1
    assert "over max_lag" in state.node("db2").message


def test_good_poll_resets_req_and_says_recovering() -> None:
    spec = ring_spec()
    state = run(spec, healthy_pool(spec), {"db2": "offline"})
    state = run(spec, state, {})
    assert state.node("db2").req == 0
    assert state.node("db2").message.startswith("(recovering)")


def _failed_over(spec: PoolSpec) -> PoolState:
    state = healthy_pool(spec)
    for _ in range(spec.fail_point):
        state = run(spec, state, {"db1": "offline", "db2": "io_down"})
    assert states(state)["db1"] is State.FAILED_OFFLINE
    return state


def test_failed_stays_failed_until_recover_even_when_healthy() -> None:
    spec = ring_spec()
    state = _failed_over(spec)
    for _ in range(3):
        state = run(spec, state, {})
    assert state.node("db1").state is State.FAILED_ONLINE
    assert "Manual intervention required" in state.node("db1").message


def test_reinstatement_without_hostile_takeover_is_announced_then_atomic() -> None:
    spec = ring_spec()
    state = apply_command(spec, _failed_over(spec), Recover("db1"), 5.0).state
    assert state.node("db1").state is State.UNKNOWN
    state = run(spec, state, {})  # UNKNOWN -> STANDBY
    assert states(state)["db1"] is State.STANDBY
    state = run(spec, state, {})  # db2 announces it will hand back
    assert states(state)["db2"] is State.ACTIVE
    assert "Ready to relinquish ACTIVE state to db1" in state.node("db2").message
    state = run(spec, state, {})  # the swap happens in one cycle: never zero ACTIVE
    assert states(state) == {"db1": State.ACTIVE, "db2": State.STANDBY, "db3": State.STANDBY}


def test_hostile_takeover_reinstates_at_once() -> None:
    spec = ring_spec(hostile=True)
    state = apply_command(spec, _failed_over(spec), Recover("db1"), 5.0).state
    state = run(spec, state, {})
    assert states(state)["db1"] is State.STANDBY
    state = run(spec, state, {})
    assert states(state)["db1"] is State.ACTIVE
    assert states(state)["db2"] is State.STANDBY


def test_secondaries_yield_by_priority_not_only_to_the_primary() -> None:
    spec = ring_spec(hostile=True)
    state = healthy_pool(spec)
    for _ in range(4):  # db1 and db2 die: db3 takes over
        state = run(spec, state, {"db1": "offline", "db2": "offline", "db3": "io_down"})
    assert states(state) == {
        "db1": State.FAILED_OFFLINE,
        "db2": State.FAILED_OFFLINE,
        "db3": State.ACTIVE,
    }
    state = apply_command(spec, state, Recover("db2"), 9.0).state
    state = run(spec, state, {"db1": "offline", "db2": "io_down"})
    state = run(spec, state, {"db1": "offline", "db2": "io_down"})
    assert states(state)["db2"] is State.ACTIVE, "db3 yields to the higher-priority db2"


def test_activate_pins_the_operators_choice_until_it_fails() -> None:
    spec = ring_spec()
    state = healthy_pool(spec)
    state = apply_command(spec, state, Activate("db3"), 1.0).state
    assert states(state) == {"db1": State.STANDBY, "db2": State.STANDBY, "db3": State.ACTIVE}
    for _ in range(3):
        state = run(spec, state, {})
    assert states(state)["db3"] is State.ACTIVE and state.pinned == "db3"
    state = apply_command(spec, state, Activate("db1"), 2.0).state
    assert states(state)["db1"] is State.ACTIVE and state.pinned is None


def test_activate_refuses_failed_or_unhealthy_nodes() -> None:
    spec = ring_spec()
    state = _failed_over(spec)
    with pytest.raises(CommandRefused, match="recover db1"):
        apply_command(spec, state, Activate("db1"), 1.0)
    state = run(spec, state, {"db1": "offline", "db3": "offline"})
    with pytest.raises(CommandRefused, match="not healthy"):
        apply_command(spec, state, Activate("db3"), 1.0)


def test_operator_fail_of_active_hands_over_and_refuses_an_empty_pool() -> None:
    spec = ring_spec(2)
    state = healthy_pool(spec)
    decision = apply_command(spec, state, Fail("db1"), 1.0)
    assert states(decision.state) == {"db1": State.FAILED_ONLINE, "db2": State.ACTIVE}
    assert {e.reason for e in decision.events} >= {"Failed by operator."}
    with pytest.raises(CommandRefused, match="--force"):
        apply_command(spec, decision.state, Fail("db2"), 2.0)
    forced = apply_command(spec, decision.state, Fail("db2", force=True), 2.0).state
    assert not forced.active


def test_recover_refuses_a_node_that_is_not_failed() -> None:
    spec = ring_spec()
    with pytest.raises(CommandRefused, match="nothing to recover"):
        apply_command(spec, healthy_pool(spec), Recover("db2"), 1.0)


def test_every_state_change_is_an_event_with_a_reason() -> None:
    spec = ring_spec()
    decision = decide(spec, initial_state(spec), observe(spec, {}), 0.0)
    changes = [(e.node, e.old, e.new) for e in decision.events if e.kind is EventKind.STATE]
    assert changes == [
        ("db1", "UNKNOWN", "ACTIVE"),
        ("db2", "UNKNOWN", "STANDBY"),
        ("db3", "UNKNOWN", "STANDBY"),
    ]
    assert all(e.reason for e in decision.events)


def test_config_edits_add_and_drop_nodes() -> None:
    spec3 = ring_spec(3)
    state = healthy_pool(spec3)
    spec2 = ring_spec(2)
    state = run(spec2, state, {})
    assert [n.name for n in state.nodes] == ["db1", "db2"]


def test_restart_from_stored_state_decides_the_same() -> None:
    spec = ring_spec()
    state = healthy_pool(spec)
    for _ in range(2):
        state = run(spec, state, {"db1": "offline", "db2": "io_down"})
    reloaded = codec.loads(codec.dumps(state))
    assert reloaded == state
    obs = observe(spec, {"db1": "offline", "db2": "io_down"}, 7.0)
    assert decide(spec, reloaded, obs, 7.0) == decide(spec, state, obs, 7.0)
