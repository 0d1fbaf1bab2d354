"""Tests written against mutants of mpp/logic that survived the other unit and property
tests (issue 16's hand-made ones first, then mutmut's, `make mutate`): each fails when its
mutant is applied. docs/reliability.md "Mutation testing" lists the ones still alive."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mpp.logic import registry
from mpp.logic.failover import (
    LOGIC,
    FailoverLogic,
    apply_command,
    complete,
    decide,
    initial_state,
    reconcile,
    veto,
)
from mpp.logic.failover import converge as topology
from mpp.logic.interface import BaseLogic
from mpp.model import (
    Acknowledge,
    Activate,
    Change,
    ChangeKind,
    CommandRefused,
    Decision,
    Event,
    EventKind,
    Fail,
    Fence,
    NodeState,
    Observation,
    Outcome,
    PoolSpec,
    PoolState,
    Promote,
    Recover,
    Repoint,
    Request,
    RequestKind,
    State,
    Switchover,
    Takeover,
    Unfence,
)
from tests.builders import observe, ring_spec, star, star_spec


def states(state: PoolState) -> dict[str, State]:
    return {n.name: n.state for n in state.nodes}


LOST = {"db1": "offline", "db2": "io_lost", "db3": "io_lost"}  # every replica lost db1


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


# -- the generic logic (interface.py) and the rw answers ------------------------------------------


class _Plain(BaseLogic):
    name = "test-plain-base"


def test_base_logic_starts_every_node_unknown_and_takes_writes_on_every_active_node() -> None:
    spec = ring_spec()
    logic = _Plain()
    start = logic.initial_state(spec)
    assert start == PoolState("main", tuple(NodeState(n) for n in ("db1", "db2", "db3")))
    assert logic.recheck(spec, observe(spec, {})) == []
    two = PoolState(
        "main",
        (NodeState("db1", State.ACTIVE), NodeState("db2", State.ACTIVE), NodeState("db3")),
    )
    assert logic.writer(spec, two, two.node("db1")) == (True, "db1 is ACTIVE")
    assert logic.writer(spec, two, two.node("db3")) == (False, "db3 is UNKNOWN")
    assert logic.writers(spec, two) == (True, "pool main: rw on db1, db2")
    assert logic.writers(spec, start) == (False, "pool main: no node is UP for rw")


def test_a_vetoed_change_leaves_the_pool_as_it_was_with_the_reason() -> None:
    spec = star_spec()
    state = decide(spec, initial_state(spec), star(spec, {}), 0.0).state
    state = replace(state, request=Request(RequestKind.SWITCHOVER, "db2", 0.5))
    decision = decide(spec, state, star(spec, LOST), 1.0)
    assert decision.change == Change(ChangeKind.FAILOVER, "db1", "db2")
    vetoed = veto(spec, state, decision, "pre_failover hook said no", 2.0)
    assert vetoed.actions == () and vetoed.change is None
    assert vetoed.state == replace(
        state, request=None, alert="pre_failover hook said no", updated_at=2.0
    )
    assert vetoed.events == (
        Event(2.0, "main", "-", EventKind.POOL, "failover", "vetoed", "pre_failover hook said no"),
    )
    nothing = Decision(state)
    assert veto(spec, state, nothing, "no", 3.0).events[0].old == "change"


def test_reconcile_follows_config_edits_and_forgets_a_removed_pin() -> None:
    spec = ring_spec()
    state = decide(spec, initial_state(spec), observe(spec, {}), 0.0).state
    pinned = replace(state, pinned="db3", name="old-name")
    smaller = replace(spec, nodes=spec.nodes[:2])
    kept = reconcile(smaller, pinned)
    assert kept.name == "main" and [n.name for n in kept.nodes] == ["db1", "db2"]
    assert kept.nodes == state.nodes[:2]
    assert kept.pinned is None
    assert reconcile(spec, pinned).pinned == "db3"
    bigger = replace(spec, nodes=(*spec.nodes, replace(spec.nodes[2], name="db4")))
    assert reconcile(bigger, state).node("db4") == NodeState("db4")


def test_failover_writer_answers_say_why_a_node_takes_no_writes() -> None:
    spec = star_spec()
    state = PoolState(
        "main",
        (NodeState("db1", State.ACTIVE), NodeState("db2", State.STANDBY), NodeState("db3")),
        draining=(),
    )
    logic = FailoverLogic()
    assert logic.writer(spec, state, state.node("db1")) == (True, "db1 is ACTIVE")
    assert logic.writer(spec, state, state.node("db2")) == (False, "db2 is STANDBY; ACTIVE: db1")
    drained = replace(state, draining=("db1",))
    assert logic.writer(spec, drained, drained.node("db1")) == (
        False,
        "db1 is draining (switchover in progress)",
    )
    promoting = replace(state, promoting="db1")
    assert logic.writer(spec, promoting, promoting.node("db1")) == (
        False,
        "db1 is being promoted (not writable yet)",
    )
    none = replace(state, nodes=(NodeState("db1", State.FAILED_OFFLINE),))
    assert logic.writer(spec, none, none.node("db1")) == (
        False,
        "db1 is FAILED_OFFLINE; ACTIVE: none",
    )
    assert logic.writers(spec, state) == (True, "pool main: ACTIVE db1")
    assert logic.writers(spec, none) == (False, "pool main has no ACTIVE node")


def test_recheck_asks_for_a_second_look_only_in_primary_replica_pools() -> None:
    star_pool = star_spec()
    obs = star(star_pool, {"db1": "offline"})
    assert LOGIC.recheck(star_pool, obs) == ["db2", "db3"]
    assert LOGIC.recheck(star_pool, star(star_pool, {})) == []
    ring = ring_spec()
    assert LOGIC.recheck(ring, observe(ring, {"db1": "offline"})) == []


# -- the registry ---------------------------------------------------------------------------------


class _Registered(FailoverLogic):
    name = "test-registered"


def test_registry_knows_the_builtin_logic_and_registered_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "_REGISTERED", {})
    assert registry.get("failover") is LOGIC
    assert registry.names()[0] == "failover"
    with pytest.raises(ValueError, match="'failover' is a built-in logic"):
        registry.register(FailoverLogic())
    with pytest.raises(KeyError, match="no logic named 'nope' \\(known: failover"):
        registry.get("nope")
    plugged = _Registered()
    registry.register(plugged)
    assert registry.get("test-registered") is plugged
    assert registry.names().count("test-registered") == 1
    assert registry._load("mpp.logic.failover:LOGIC") is LOGIC


# -- what a poll records on each node -------------------------------------------------------------


def test_a_poll_records_lag_position_latency_and_reachability_on_each_node() -> None:
    spec = star_spec()
    obs = star(spec, {"db3": "offline"}, gtids={"db1": "0-1-12", "db2": "0-1-11"})
    obs["db1"] = replace(obs["db1"], latency_ms=1.23456, at=7.5)
    rep = obs["db2"].replication
    assert rep is not None
    obs["db2"] = replace(obs["db2"], replication=replace(rep, seconds_behind=3), latency_ms=2.0)
    fresh = initial_state(spec)
    start = replace(fresh, nodes=tuple(replace(n, gtid="0-1-5") for n in fresh.nodes))
    state = decide(spec, start, obs, 8.0).state
    db1, db2, db3 = state.nodes
    assert (db1.latency_ms, db1.lag, db1.gtid, db1.reachable, db1.last_request) == (
        1.235,
        None,
        "0-1-12",
        True,
        7.5,
    )
    assert (db2.latency_ms, db2.lag, db2.gtid, db2.reachable) == (2.0, 3, "0-1-11", True)
    # unreachable: nothing new about its position, which is kept
    assert (db3.latency_ms, db3.lag, db3.gtid, db3.reachable) == (None, None, "0-1-5", False)
    assert db3.req == 1 and db1.req == 0
    # a node not probed this cycle keeps everything it had
    again = decide(spec, state, {k: v for k, v in obs.items() if k != "db2"}, 9.0).state
    assert again.node("db2") == replace(db2, notice=False)


def test_notice_marks_the_cycle_a_node_changed_state() -> None:
    spec = ring_spec()
    state = decide(spec, initial_state(spec), observe(spec, {}), 0.0).state
    assert all(n.notice for n in state.nodes)
    state = decide(spec, state, observe(spec, {}), 1.0).state
    assert not any(n.notice for n in state.nodes)


def test_the_cycle_counts_polls_not_commands_and_records_when() -> None:
    spec = ring_spec()
    state = decide(spec, initial_state(spec), observe(spec, {}), 5.0).state
    assert (state.cycle, state.updated_at) == (1, 5.0)
    state = apply_command(spec, state, Fail("db3", False), 6.0).state
    assert (state.cycle, state.updated_at) == (1, 6.0)
    state = decide(spec, state, observe(spec, {}), 7.0).state
    assert state.cycle == 2


# -- ring: successors, operator commands -----------------------------------------------------------


def test_a_failed_node_reporting_recovery_is_no_successor() -> None:
    spec = ring_spec()
    state = PoolState(
        "main",
        (
            NodeState("db1", State.ACTIVE, req=3),
            NodeState("db2", State.FAILED_ONLINE, req=0),
            NodeState("db3", State.STANDBY),
        ),
        cycle=5,
    )
    state = decide(spec, state, observe(spec, {"db1": "offline"}), 1.0).state
    assert states(state) == {
        "db1": State.FAILED_OFFLINE,
        "db2": State.FAILED_ONLINE,
        "db3": State.ACTIVE,
    }


def test_activate_needs_a_node_seen_healthy_and_pins_only_a_lower_priority_one() -> None:
    spec = ring_spec()
    fresh = initial_state(spec)
    with pytest.raises(CommandRefused) as refused:
        apply_command(spec, fresh, Activate("db2"), 0.0)
    assert str(refused.value) == (
        "db2 is not healthy (req=0, last: ''); only a node with status OK can be made ACTIVE"
    )
    state = decide(spec, fresh, observe(spec, {}), 0.0).state
    pinned = apply_command(spec, state, Activate("db2"), 1.0).state
    assert pinned.pinned == "db2" and states(pinned)["db2"] is State.ACTIVE
    # pinned: db1, healthy and of higher priority, does not take ACTIVE back
    kept = decide(spec, pinned, observe(spec, {}), 2.0).state
    kept = decide(spec, kept, observe(spec, {}), 3.0).state
    assert states(kept)["db2"] is State.ACTIVE and kept.relinquish_to is None
    back = apply_command(spec, kept, Activate("db1"), 4.0).state
    assert back.pinned is None and states(back)["db1"] is State.ACTIVE
    # a failover away from the pinned node forgets the pin
    dead = decide(spec, pinned, observe(spec, {"db2": "offline"}), 5.0).state
    for t in range(spec.fail_point):
        dead = decide(spec, dead, observe(spec, {"db2": "offline"}), 6.0 + t).state
    assert states(dead)["db1"] is State.ACTIVE and dead.pinned is None


def test_operator_fail_of_the_active_node_needs_a_standby_that_answered_its_last_poll() -> None:
    spec = ring_spec()
    state = decide(spec, initial_state(spec), observe(spec, {}), 0.0).state
    state = decide(spec, state, observe(spec, {"db2": "offline", "db3": "lag"}), 1.0).state
    with pytest.raises(CommandRefused, match="no healthy STANDBY can take over"):
        apply_command(spec, state, Fail("db1", False), 2.0)
    forced = apply_command(spec, state, Fail("db1", True), 2.0)
    assert forced.state.active == () and forced.change is None
    assert states(forced.state)["db1"] is State.FAILED_ONLINE
    # an unreachable node the operator fails is FAILED_OFFLINE
    assert states(apply_command(spec, state, Fail("db2", False), 2.0).state)["db2"] is (
        State.FAILED_OFFLINE
    )
    with pytest.raises(CommandRefused, match="db1 is already FAILED_ONLINE"):
        apply_command(spec, forced.state, Fail("db1", False), 3.0)
    # the pool without an ACTIVE node elects one as soon as a node is healthy: a failover
    elected = decide(spec, forced.state, observe(spec, {}), 4.0)
    assert states(elected.state)["db2"] is State.ACTIVE
    assert elected.state.node("db2").message == (
        "FAILOVER: Taking over ACTIVE state (the pool had no ACTIVE node)."
    )
    moved = [e for e in elected.events if e.node == "db2" and e.new == "ACTIVE"]
    assert [e.change for e in moved] == [ChangeKind.FAILOVER]


class _PinnedWrites(BaseLogic):
    """A logic whose rw answer depends on the spec and the state: writers must pass both."""

    name = "test-pinned-writes"

    def writer(self, spec: PoolSpec, state: PoolState, node: NodeState) -> tuple[bool, str]:
        return node.name == state.pinned and spec.name == "main", node.name


def test_writers_asks_writer_with_the_spec_and_the_state() -> None:
    spec = ring_spec()
    state = replace(initial_state(spec), pinned="db2")
    assert _PinnedWrites().writers(spec, state) == (True, "pool main: rw on db2")


def test_rw_answers_name_every_active_node() -> None:
    spec = star_spec()
    two = PoolState(
        "main",
        (NodeState("db1", State.ACTIVE), NodeState("db2", State.ACTIVE), NodeState("db3")),
    )
    assert LOGIC.writer(spec, two, two.node("db3")) == (False, "db3 is UNKNOWN; ACTIVE: db1, db2")
    assert LOGIC.writers(spec, two) == (True, "pool main: ACTIVE db1, db2")


# -- switchover outcomes ---------------------------------------------------------------------------


def _switching(spec: PoolSpec, **pool: object) -> Decision:
    state = decide(spec, initial_state(spec), star(spec, {}), 0.0).state
    state = replace(state, **pool)  # type: ignore[arg-type]
    state = apply_command(spec, state, Switchover("db2"), 1.0).state
    decision = decide(spec, state, star(spec, {}), 2.0)
    assert decision.state.switching is not None
    return decision


def test_a_switchover_is_committed_only_by_the_targets_promote() -> None:
    spec = star_spec()
    decision = _switching(spec)
    fence, catchup, promote = decision.actions[:3]
    assert isinstance(promote, Promote)
    failed = [Outcome(fence, True), Outcome(catchup, True), Outcome(promote, False, "denied")]
    done = complete(spec, decision.state, failed, 3.0)
    assert states(done.state)["db1"] is State.ACTIVE and done.actions == (Unfence("db1"),)
    assert done.change is None
    rolled = [e for e in done.events if e.new == "rolled back"]
    assert [e.reason for e in rolled] == ["promote db2: denied; db1 stays ACTIVE"]
    # no outcome at all (the executor ran nothing): rolled back, "not promoted"
    nothing = complete(spec, decision.state, [], 3.0)
    assert [e.reason for e in nothing.events] == ["not promoted; db1 stays ACTIVE"]
    assert nothing.actions == (Unfence("db1"),)
    assert nothing.state.switching is None and nothing.state.draining == ()


def test_a_committed_switchover_clears_the_failover_marks() -> None:
    spec = star_spec()
    decision = _switching(spec, alert="old alert", promoted_at="0-1-5", pinned="db3")
    assert decision.state.promoted_at == "0-1-5"
    done = complete(spec, decision.state, [Outcome(a, True) for a in decision.actions], 3.0)
    assert states(done.state)["db2"] is State.ACTIVE
    assert (done.state.promoted_at, done.state.pinned, done.state.alert) == ("", None, "")
    assert done.change == Change(ChangeKind.SWITCHOVER, "db1", "db2")


def test_an_interrupted_switchover_is_completed_with_its_history_lines() -> None:
    spec = star_spec()
    decision = _switching(spec)
    after = star(spec, {"db1": "fenced"}, source="db2")  # mpp died after promoting db2
    resolved = decide(spec, decision.state, after, 5.0)
    lines = [(e.node, e.old, e.new, e.reason, e.change) for e in resolved.events if e.node != "-"]
    assert (
        "db1",
        "ACTIVE",
        "STANDBY",
        "interrupted SWITCHOVER completed: db2 ACTIVE",
        ChangeKind.SWITCHOVER,
    ) in lines
    assert (
        "db2",
        "STANDBY",
        "ACTIVE",
        "interrupted SWITCHOVER from db1 completed",
        ChangeKind.SWITCHOVER,
    ) in lines
    assert resolved.state.switching is None and resolved.state.draining == ()


@pytest.mark.parametrize("to", ["db4", None])
def test_a_stored_takeover_to_a_node_no_longer_configured_is_refused(to: str | None) -> None:
    """The request was recorded, then the configuration lost that node (or a damaged store
    lost the name): refused with the reason, nothing moves."""
    spec = star_spec()
    state = decide(spec, initial_state(spec), star(spec, {}), 0.0).state
    state = replace(state, request=Request(RequestKind.TAKEOVER, to, 0.5, id="op-9"))
    decision = decide(spec, state, star(spec, {}), 1.0)
    assert decision.change is None and decision.state.request is None
    assert states(decision.state)["db1"] is State.ACTIVE
    refused = [(e.node, e.old, e.new, e.reason) for e in decision.events]
    assert refused == [(to or "-", "takeover", "refused", f"no node {to!r} in pool main")]


# -- operator commands: times, messages, what they clear ---------------------------------------


def test_commands_and_outcomes_are_recorded_at_their_time() -> None:
    spec = star_spec()
    state = decide(spec, initial_state(spec), star(spec, {}), 0.0).state
    decision = apply_command(spec, state, Switchover("db2"), 4.5)
    assert decision.state.updated_at == 4.5
    assert [e.at for e in decision.events] == [4.5]
    planned = decide(spec, decision.state, star(spec, {}), 5.0)
    done = complete(spec, planned.state, [Outcome(a, True) for a in planned.actions], 6.5)
    assert done.state.updated_at == 6.5
    assert {e.at for e in done.events} == {6.5}


def test_acknowledge_clears_the_alert_and_says_what_it_acknowledged() -> None:
    spec = star_spec()
    state = decide(spec, initial_state(spec), star(spec, {}), 0.0).state
    plain = apply_command(spec, state, Acknowledge(), 1.0)
    assert [(e.old, e.new, e.reason) for e in plain.events] == [
        ("-", "acknowledged", "operator acknowledged")
    ]
    alerted = apply_command(spec, replace(state, alert="look at db2"), Acknowledge(), 1.0)
    assert alerted.state.alert == "" and alerted.state.failover_acknowledged is True
    assert alerted.events[0].old == "look at db2"


def test_recover_starts_the_ladder_again() -> None:
    spec = ring_spec()
    state = PoolState(
        "main",
        (
            NodeState("db1", State.ACTIVE),
            NodeState("db2", State.FAILED_ONLINE, req=9),
            NodeState("db3", State.STANDBY),
        ),
        cycle=3,
    )
    recovered = apply_command(spec, state, Recover("db2"), 1.0).state.node("db2")
    assert (recovered.state, recovered.req) == (State.UNKNOWN, 0)


def test_switchover_and_takeover_need_a_primary_replica_pool() -> None:
    spec = ring_spec()
    state = decide(spec, initial_state(spec), observe(spec, {}), 0.0).state
    for command in (Switchover("db2"), Takeover("db2")):
        with pytest.raises(CommandRefused) as refused:
            apply_command(spec, state, command, 1.0)
        assert str(refused.value) == (
            'pool main is master-master: switchover and takeover need topology = "primary-replica"'
            "; use `mpp activate NODE`"
        )


def test_auto_failover_off_says_so_in_full() -> None:
    spec = star_spec(auto_failover=False)
    state = decide(spec, initial_state(spec), star(spec, {}), 0.0).state
    state = decide(spec, state, star(spec, LOST), 1.0).state
    assert state.alert == (
        "automatic failover is off (auto_failover = false): run `mpp takeover main --to NODE`"
    )


def test_a_stored_switchover_without_an_active_node_is_refused() -> None:
    spec = star_spec()
    pool = PoolState(
        "main",
        (
            NodeState("db1", State.FAILED_OFFLINE, req=9),
            NodeState("db2", State.STANDBY),
            NodeState("db3", State.STANDBY),
        ),
        cycle=5,
        request=Request(RequestKind.SWITCHOVER, "db2", 0.5),
    )
    decision = decide(spec, pool, star(spec, {"db1": "offline", "db2": "io_lost"}), 1.0)
    refused = [(e.old, e.new, e.reason) for e in decision.events if e.new == "refused"]
    assert refused == [
        ("switchover", "refused", "no healthy ACTIVE node to switch over from; use takeover")
    ]


def test_a_semi_sync_switchover_asks_semi_sync_of_every_repoint() -> None:
    spec = star_spec(semi_sync=True)
    state = decide(spec, initial_state(spec), star(spec, {}), 0.0).state
    state = apply_command(spec, state, Switchover("db2", timeout=4.0), 1.0).state
    actions = decide(spec, state, star(spec, {}), 2.0).actions
    assert actions[2:] == (
        Promote("db2", timeout=4.0, semi_sync=True),
        Repoint("db3", source="db2", semi_sync=True),
        Repoint("db1", source="db2", rejoin=True, semi_sync=True),
    )


# -- primary-replica: successor ranking, contenders, promotion marks -----------------------------


def test_order_counts_only_nodes_strictly_behind_not_incomparable_or_equal_ones() -> None:
    spec = star_spec(5)
    gtids = {"db2": "0-1-9", "db3": "0-1-5", "db4": "1-1-5", "db5": "1-1-5"}
    obs = star(spec, {"db1": "offline"}, gtids=gtids)
    # db2 has all db3 has and more; db4 and db5 are equal, and incomparable with db2/db3
    assert topology.order(spec, ["db5", "db4", "db3", "db2"], obs) == ["db2", "db3", "db4", "db5"]
    gtids = {"db2": "1-1-3", "db3": "0-1-9", "db4": "0-1-5"}
    obs = star(star_spec(4), {"db1": "offline"}, gtids=gtids)
    assert topology.order(star_spec(4), ["db2", "db3", "db4"], obs) == ["db3", "db2", "db4"]


def test_a_failed_node_holding_more_does_not_block_the_failover() -> None:
    """FAILED nodes are the operator's: their transactions are not a successor's to have."""
    spec = star_spec()
    state = PoolState(
        "main",
        (
            NodeState("db1", State.ACTIVE),
            NodeState("db2", State.STANDBY),
            NodeState("db3", State.FAILED_ONLINE, req=9),
        ),
        cycle=5,
    )
    obs = star(spec, {"db1": "offline", "db2": "io_lost", "db3": "broken"})
    obs["db3"] = replace(obs["db3"], gtid_executed="0-1-20", gtid_binlog="0-1-20")
    obs["db3"] = with_io_pos(obs["db3"], "0-1-20")
    decision = decide(spec, state, obs, 1.0)
    assert decision.change == Change(ChangeKind.FAILOVER, "db1", "db2")


def test_the_failing_primary_is_no_contender_for_its_own_successor() -> None:
    """Without confirmation a busy primary that can be fenced (its admin path) is failed
    over even if it reports more than its replicas have (what no replica received is lost
    with it, as in any failover)."""
    spec = star_spec(confirm_with_replicas=False)
    spec = replace(spec, nodes=(replace(spec.nodes[0], admin_path=True), *spec.nodes[1:]))
    state = decide(spec, initial_state(spec), star(spec, {}), 0.0).state
    busy = Observation(
        "db1", 0.0, reachable=True, error="1040 Too many connections", gtid_executed="0-1-20"
    )
    obs = {**star(spec, {}), "db1": busy}
    for t in range(spec.fail_point - 1):
        state = decide(spec, state, obs, 1.0 + t).state
    assert decide(spec, state, obs, 9.0).change == Change(ChangeKind.FAILOVER, "db1", "db2")


def test_an_election_without_active_node_is_recorded_as_a_failover() -> None:
    spec = star_spec()
    pool = PoolState(
        "main",
        (NodeState("db1", State.FAILED_OFFLINE, req=9), NodeState("db2"), NodeState("db3")),
        cycle=5,
    )
    decision = decide(spec, pool, star(spec, {"db1": "offline", "db2": "io_lost"}), 1.0)
    assert decision.state.node("db2").message == (
        "FAILOVER: Taking over ACTIVE state (the pool had no ACTIVE node)."
    )
    moved = [e for e in decision.events if e.node == "db2" and e.new == "ACTIVE"]
    assert [e.change for e in moved] == [ChangeKind.FAILOVER]
    first = decide(spec, initial_state(spec), star(spec, {}), 0.0)
    assert [e.change for e in first.events if e.new == "ACTIVE"] == [None]
    assert first.change is None
    assert first.state.node("db1").message == (
        "Elected ACTIVE: the running primary, else the most advanced healthy node."
    )


def test_a_failover_clears_the_alert_and_the_pin_and_waits_for_a_read_only_successor() -> None:
    spec = star_spec()
    state = decide(spec, initial_state(spec), star(spec, {}), 0.0).state
    state = replace(state, alert="old alert", pinned="db2")
    decision = decide(spec, state, star(spec, LOST), 1.0)
    assert decision.change == Change(ChangeKind.FAILOVER, "db1", "db2")
    assert (decision.state.alert, decision.state.pinned) == ("", None)
    assert decision.state.promoting == "db2"


def test_a_successor_already_writable_needs_no_promotion_wait() -> None:
    """A pool without ACTIVE node meets a running primary (UNKNOWN: never placed): elected,
    and rw need not wait for a promotion."""
    spec = star_spec()
    pool = PoolState(
        "main",
        (NodeState("db1", State.FAILED_OFFLINE, req=9), NodeState("db2"), NodeState("db3")),
        cycle=5,
    )
    obs = star(spec, {"db1": "offline"}, source="db2")
    decision = decide(spec, pool, obs, 1.0)
    assert decision.change == Change(ChangeKind.FAILOVER, "", "db2")
    assert decision.state.promoting is None
    read_only = star(spec, {"db1": "offline", "db2": "fenced", "db3": "io_lost"})
    assert decide(spec, pool, read_only, 1.0).state.promoting == "db2"


def test_a_stored_switchover_to_a_node_no_longer_configured_is_refused() -> None:
    spec = star_spec()
    state = decide(spec, initial_state(spec), star(spec, {}), 0.0).state
    state = replace(state, request=Request(RequestKind.SWITCHOVER, "db4", 0.5))
    decision = decide(spec, state, star(spec, {}), 1.0)
    assert [(e.new, e.reason) for e in decision.events] == [("refused", "no node 'db4'")]


# -- primary-replica: returning nodes ------------------------------------------------------------


def test_rejoin_goes_on_past_a_failed_node_not_probed_this_cycle() -> None:
    spec = star_spec()
    pool = PoolState(
        "main",
        (
            NodeState("db1", State.FAILED_ONLINE, req=9),
            NodeState("db2", State.ACTIVE),
            NodeState("db3", State.FAILED_ONLINE, req=9),
        ),
        cycle=5,
        promoted_at="0-1-10",
    )
    obs = star(spec, {}, source="db2")
    del obs["db1"]
    state = decide(spec, pool, obs, 1.0).state
    assert states(state) == {
        "db1": State.FAILED_ONLINE,
        "db2": State.ACTIVE,
        "db3": State.STANDBY,
    }


def test_a_writable_node_with_errant_transactions_is_said_to_be_fenced() -> None:
    spec = star_spec()
    pool = PoolState(
        "main",
        (
            NodeState("db1", State.FAILED_ONLINE, req=9),
            NodeState("db2", State.ACTIVE),
            NodeState("db3", State.STANDBY),
        ),
        cycle=5,
        promoted_at="0-1-10",
    )
    obs = star(spec, {"db1": "primary"}, source="db2", gtids={"db1": "0-1-12", "db2": "0-2-14"})
    decision = decide(spec, pool, obs, 1.0)
    assert decision.state.node("db1").message == (
        "errant transactions 0-1-12 (not on db2): being fenced; "
        "inspect, then rebuild or `mpp recover` it"
    )
    assert Fence("db1") in decision.actions


def test_rejoin_goes_on_past_a_quarantined_node() -> None:
    spec = star_spec()
    pool = PoolState(
        "main",
        (
            NodeState("db1", State.FAILED_ONLINE, req=9),
            NodeState("db2", State.ACTIVE),
            NodeState("db3", State.FAILED_ONLINE, req=9),
        ),
        cycle=5,
        promoted_at="0-1-10",
    )
    obs = star(spec, {"db1": "fenced"}, source="db2", gtids={"db1": "0-1-12", "db2": "0-2-14"})
    state = decide(spec, pool, obs, 1.0).state
    assert states(state) == {
        "db1": State.FAILED_ONLINE,
        "db2": State.ACTIVE,
        "db3": State.STANDBY,
    }
    assert "errant transactions 0-1-12" in state.node("db1").message


@pytest.mark.parametrize(
    ("reachable", "failed"), [(True, State.FAILED_ONLINE), (False, State.FAILED_OFFLINE)]
)
def test_an_active_node_failed_while_not_probed_is_failed_as_last_seen(
    reachable: bool, failed: State
) -> None:
    """Kept ACTIVE at the fail point (no standby), then not probed in the cycle a successor
    appears: its FAILED state follows its last probe."""
    spec = ring_spec()
    pool = PoolState(
        "main",
        (
            NodeState("db1", State.ACTIVE, req=6, reachable=reachable),
            NodeState("db2", State.STANDBY),
            NodeState("db3", State.STANDBY, req=1),
        ),
        cycle=5,
    )
    obs = {k: v for k, v in observe(spec, {}).items() if k != "db1"}
    state = decide(spec, pool, obs, 1.0).state
    assert states(state) == {"db1": failed, "db2": State.ACTIVE, "db3": State.STANDBY}


def test_electing_the_pinned_node_keeps_the_pin() -> None:
    spec = ring_spec()
    pool = PoolState(
        "main",
        (
            NodeState("db1", State.FAILED_OFFLINE, req=9),
            NodeState("db2", State.STANDBY),
            NodeState("db3", State.STANDBY),
        ),
        cycle=5,
        pinned="db2",
    )
    state = decide(spec, pool, observe(spec, {"db1": "offline"}), 1.0).state
    assert states(state)["db2"] is State.ACTIVE and state.pinned == "db2"
    other = decide(spec, replace(pool, pinned="db3"), observe(spec, {"db1": "offline"}), 1.0)
    assert states(other.state)["db2"] is State.ACTIVE and other.state.pinned is None


def test_a_node_added_to_the_configuration_is_placed_and_recorded() -> None:
    spec = ring_spec(name="other")
    state = decide(spec, initial_state(spec), observe(spec, {}), 0.0).state
    bigger = ring_spec(4, name="other")
    decision = decide(bigger, state, observe(bigger, {}), 1.0)
    assert states(decision.state)["db4"] is State.STANDBY
    added = [(e.node, e.old, e.new) for e in decision.events]
    assert added == [("db4", "UNKNOWN", "STANDBY")]
    assert {e.pool for e in decision.events} == {"other"}
    assert decision.state.name == "other"


def test_a_primary_that_reached_the_fail_point_on_the_ladder_is_not_relabelled_dead() -> None:
    """Held below the fail point while its replicas streamed, then they lost it too: it
    fails at the fail point it reached, with its own message."""
    spec = star_spec()
    state = decide(spec, initial_state(spec), star(spec, {}), 0.0).state
    for t in range(3):
        state = decide(spec, state, star(spec, {"db1": "offline"}), 1.0 + t).state
    assert state.node("db1").req == spec.fail_point - 1
    decision = decide(spec, state, star(spec, LOST), 5.0)
    assert decision.change == Change(ChangeKind.FAILOVER, "db1", "db2")
    assert decision.state.node("db1").message == "FAIL: 2003 refused; ACTIVE handed to db2"


@pytest.mark.parametrize("fail_point", [1, 4])
def test_an_interrupted_switchover_completed_does_not_count_against_the_new_primary(
    fail_point: int,
) -> None:
    """Bug found by the primary-replica invariants (this session): the cycle that found the
    interrupted switchover completed judged its target as a STANDBY that must replicate,
    "not replicating", one bad poll; with fail_point = 1 the new primary was failed over
    in the very cycle it took the writes."""
    spec = replace(star_spec(), fail_point=fail_point)
    decision = _switching(spec)
    after = star(spec, {"db1": "fenced"}, source="db2")  # mpp died after promoting db2
    resolved = decide(spec, decision.state, after, 5.0)
    assert states(resolved.state)["db2"] is State.ACTIVE
    assert resolved.state.node("db2").req == 0
    assert resolved.change is None
    assert not any(e.new == "FAILED_ONLINE" for e in resolved.events)
