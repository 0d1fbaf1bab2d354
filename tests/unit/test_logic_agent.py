"""The agent rules of the failover logic, each on hand-built observations: restarts
exhausted, a write that cannot commit, the fence lease before promoting past an old primary
mpp cannot fence, and maintenance mode (docs/fencing.md has the timing rule)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpp.logic import agent as facts
from mpp.logic.failover import apply_command, decide, initial_state
from mpp.model import (
    Activate,
    AgentReport,
    AgentView,
    ChangeKind,
    CommandRefused,
    Decision,
    EventKind,
    Fail,
    Fence,
    Maintenance,
    Observation,
    PoolSpec,
    PoolState,
    Process,
    Promote,
    Recover,
    SetReadOnly,
    State,
    Takeover,
    WriteProbe,
)
from mpp.store import codec
from tests.builders import observe, ring_spec, star, star_spec
from tests.examples import examples

Obs = dict[str, Observation]
LOST = {"db1": "offline", "db2": "io_lost", "db3": "io_lost"}
KILLED = "killed by signal 9 (SIGKILL)"


def report(node: str, seq: int = 1, **fields: Any) -> AgentReport:
    base: dict[str, Any] = {"fence_ttl": 6.0, "process": Process.RUNNING, "retry_limit": 2}
    return AgentReport(node=node, pool="main", seq=seq, **{**base, **fields})


def agent(obs: Obs, node: str, age: float = 0.0, **fields: Any) -> Obs:
    """obs with `node` carrying its agent's report, first seen `age` seconds ago."""
    return {**obs, node: replace(obs[node], agent=AgentView(report(node, **fields), age))}


def states(state: PoolState) -> dict[str, State]:
    return {n.name: n.state for n in state.nodes}


def settled(spec: PoolSpec, obs: Obs | None = None) -> PoolState:
    first = obs or (star(spec, {}) if spec.primary_replica else observe(spec, {}))
    return decide(spec, initial_state(spec), first, 0.0).state


def pool_events(d: Decision) -> list[tuple[str, str, str]]:
    return [(e.node, e.new, e.reason) for e in d.events if e.kind is EventKind.POOL]


def restarted(state: PoolState) -> PoolState:
    return codec.loads(codec.dumps(state))


# -- restarts exhausted, restarting -------------------------------------------------------


def test_restarts_exhausted_on_the_primary_fails_it_over_in_the_same_cycle() -> None:
    """fail_point 4 and the replicas still streaming (they have not noticed yet): the
    agent's word is enough, no ladder, no replica check."""
    spec = star_spec(fail_point=4)
    state = settled(spec)
    obs = agent(
        star(spec, {"db1": "offline"}),
        "db1",
        process=Process.GAVE_UP,
        last_exit=KILLED,
        restarts_used=2,
    )
    d = decide(spec, state, obs, 1.0)
    assert states(d.state) == {
        "db1": State.FAILED_OFFLINE,
        "db2": State.ACTIVE,
        "db3": State.STANDBY,
    }
    fail = next(e for e in d.events if e.node == "db1" and e.kind is EventKind.STATE)
    assert f"mysqld {KILLED}, restarts exhausted" in fail.reason
    assert d.state.node("db1").agent == f"mysqld {KILLED}, restarts exhausted"
    assert d.change is not None and d.change.kind is ChangeKind.FAILOVER
    assert "db1's agent reports mysqld down" in next(
        e.reason for e in d.events if e.node == "db2" and e.new == "ACTIVE"
    )
    # should the operator restart it with its agent, the agent fences it at once
    assert d.state.fencing == ("db1",)


def test_restarts_exhausted_in_a_ring_fails_the_active_node_at_once() -> None:
    spec = ring_spec(fail_point=4)
    state = settled(spec)
    obs = agent(observe(spec, {"db1": "offline"}), "db1", process=Process.GAVE_UP)
    d = decide(spec, state, obs, 1.0)
    assert states(d.state)["db1"] is State.FAILED_OFFLINE
    assert states(d.state)["db2"] is State.ACTIVE


def test_a_stale_report_of_restarts_exhausted_is_not_acted_on() -> None:
    spec = ring_spec(fail_point=4)
    state = settled(spec)
    obs = agent(observe(spec, {"db1": "offline"}), "db1", age=6.5, process=Process.GAVE_UP)
    d = decide(spec, state, obs, 1.0)
    assert states(d.state)["db1"] is State.ACTIVE and d.state.node("db1").req == 1
    assert "restarts exhausted" not in d.state.node("db1").message
    assert d.state.node("db1").agent.startswith("no report for 6 s (fence lease over); last:")


def test_a_restart_under_way_keeps_the_ladder_and_says_so() -> None:
    spec = ring_spec(fail_point=4)
    state = settled(spec)
    obs = agent(
        observe(spec, {"db1": "offline"}),
        "db1",
        process=Process.RESTARTING,
        last_exit=KILLED,
        restarts_used=1,
    )
    d = decide(spec, state, obs, 1.0)
    node = d.state.node("db1")
    assert node.state is State.ACTIVE and node.req == 1
    assert node.message == f"2003 refused; agent: mysqld {KILLED}, restart 1/2"


def test_no_agent_leaves_the_summary_empty_and_a_quiet_one_too() -> None:
    spec = star_spec()
    d = decide(spec, settled(spec), agent(star(spec, {}), "db2"), 1.0)
    assert [n.agent for n in d.state.nodes] == ["", "", ""]
    assert d == decide(spec, settled(spec), star(spec, {}), 1.0)


# -- a write that cannot commit ------------------------------------------------------------


def test_a_primary_that_cannot_commit_past_the_grace_is_failed_over_after_fencing() -> None:
    spec = star_spec(fail_point=2)
    state = settled(spec)
    obs = agent(star(spec, {}), "db1", write=WriteProbe.STALLED, stalled_for=12.0)
    d = decide(spec, state, obs, 1.0)
    assert d.state.node("db1").req == 1
    assert d.state.node("db1").message.startswith("cannot commit: write probe stalled 12 s")
    d = decide(spec, d.state, obs, 2.0)
    # the replicas still stream from it (it is alive): mpp fences it, and that must work
    assert states(d.state)["db2"] is State.ACTIVE
    fence = d.actions.index(Fence("db1"))
    assert fence < next(i for i, a in enumerate(d.actions) if isinstance(a, Promote))
    assert not d.state.fencing  # mpp fences it itself: nothing to ask its agent


def test_a_stall_under_the_grace_is_only_a_warning() -> None:
    spec = star_spec(fail_point=1)
    state = settled(spec)
    obs = agent(
        star(spec, {}), "db1", write=WriteProbe.FAILED, stalled_for=3.0, write_error="1021 disk"
    )
    d = decide(spec, state, obs, 1.0)
    node = d.state.node("db1")
    assert node.state is State.ACTIVE and node.req == 0
    assert "warning: write probe failing 3 s: 1021 disk (grace 10 s)" in node.message


def test_a_stall_on_a_replica_fails_it_like_any_service_failure() -> None:
    spec = star_spec(fail_point=1)
    obs = agent(star(spec, {}), "db3", write=WriteProbe.STALLED, stalled_for=10.0)
    d = decide(spec, settled(spec), obs, 1.0)
    assert states(d.state)["db3"] is State.FAILED_ONLINE


# -- the fence lease -----------------------------------------------------------------------


def test_no_promotion_past_a_partitioned_primary_while_its_agent_lease_is_live() -> None:
    spec = star_spec()
    state = settled(spec)
    d = decide(spec, state, agent(star(spec, LOST), "db1", age=1.0), 1.0)
    assert states(d.state)["db1"] is State.ACTIVE and d.change is None
    assert not any(isinstance(a, Promote) for a in d.actions)
    assert d.state.fencing == ("db1",)
    assert d.state.alert == "waiting for db1's agent to fence it (lease ends in 7 s)"
    # no new writes sent to a primary that is being taken out, though still ACTIVE
    from mpp.logic.failover import LOGIC

    up, why = LOGIC.writer(spec, d.state, d.state.node("db1"))
    assert not up and "being fenced by its agent" in why
    assert [(n, new) for n, new, _ in pool_events(d)] == [("db1", "fencing")]
    # the next cycle: still waiting, the countdown moves, no second event
    again = decide(spec, d.state, agent(star(spec, LOST), "db1", age=2.5), 2.5)
    assert states(again.state)["db1"] is State.ACTIVE and again.state.fencing == ("db1",)
    assert again.state.alert == "waiting for db1's agent to fence it (lease ends in 6 s)"
    assert pool_events(again) == []
    # a restarted mpp decides the same from the stored state
    assert decide(spec, restarted(d.state), agent(star(spec, LOST), "db1", age=2.5), 2.5) == again
    # the agent fenced its server: promoted in that very cycle, and the request withdrawn
    fenced = agent(star(spec, LOST), "db1", seq=2, fenced="lease not renewed; no majority")
    done = decide(spec, again.state, fenced, 3.0)
    assert states(done.state)["db1"] is State.FAILED_OFFLINE
    assert states(done.state)["db2"] is State.ACTIVE
    reason = next(e.reason for e in done.events if e.node == "db2" and e.new == "ACTIVE")
    assert "db1's agent reports it fenced: lease not renewed; no majority" in reason
    assert done.state.fencing == () and done.state.alert == ""


def test_promotion_once_the_lease_ran_out_past_the_margin() -> None:
    spec = star_spec()
    state = settled(spec)
    waiting = decide(spec, state, agent(star(spec, LOST), "db1", age=7.9), 1.0)
    assert states(waiting.state)["db1"] is State.ACTIVE
    assert waiting.state.alert.endswith("(lease ends in 1 s)")
    d = decide(spec, waiting.state, agent(star(spec, LOST), "db1", age=8.0), 1.1)
    assert states(d.state)["db2"] is State.ACTIVE
    reason = next(e.reason for e in d.events if e.node == "db2" and e.new == "ACTIVE")
    assert "db1's agent fence lease ran out: no renewal seen for 8 s" in reason
    # it stays asked to fence until its agent says it did (it reads the store when it can)
    assert d.state.fencing == ("db1",)
    later = star(spec, {"db1": "offline"}, source="db2")
    d = decide(spec, d.state, agent(later, "db1", seq=3, fenced="no majority"), 2.0)
    assert d.state.fencing == ()


def test_a_primary_its_agent_reports_down_is_promoted_past_at_once() -> None:
    spec = star_spec()
    obs = agent(star(spec, LOST), "db1", age=0.5, process=Process.STOPPED)
    d = decide(spec, settled(spec), obs, 1.0)
    assert states(d.state)["db2"] is State.ACTIVE and d.state.fencing == ("db1",)


def test_a_larger_margin_waits_longer() -> None:
    spec = star_spec()
    spec = replace(spec, agents=replace(spec.agents, fence_margin=5.0))
    d = decide(spec, settled(spec), agent(star(spec, LOST), "db1", age=8.0), 1.0)
    assert states(d.state)["db1"] is State.ACTIVE
    assert d.state.alert.endswith("(lease ends in 3 s)")


def test_a_forced_takeover_still_obeys_the_lease() -> None:
    spec = star_spec()
    state = settled(spec)
    state = apply_command(spec, state, Takeover("db2", force=True), 0.5).state
    obs = agent(star(spec, {"db1": "offline"}), "db1", age=1.0)
    d = decide(spec, state, obs, 1.0)
    assert states(d.state)["db1"] is State.ACTIVE and d.change is None
    assert d.state.request is not None and d.state.request.to == "db2"  # kept for later
    assert d.state.fencing == ("db1",)
    with pytest.raises(CommandRefused, match="already has a takeover in progress"):
        apply_command(spec, d.state, Takeover("db3"), 1.2)
    dead = agent(star(spec, {"db1": "offline"}), "db1", seq=2, process=Process.GAVE_UP)
    done = decide(spec, d.state, dead, 2.0)
    assert done.change is not None and done.change.kind is ChangeKind.TAKEOVER
    assert states(done.state)["db2"] is State.ACTIVE and done.state.request is None


def test_a_primary_mpp_can_fence_itself_is_not_waited_for() -> None:
    """The busy primary answers with its read_only off: mpp's own Fence (which must
    succeed first) stops its writes, the agent is not needed."""
    spec = star_spec(fail_point=1)
    obs = agent(star(spec, {}), "db1", age=0.0, write=WriteProbe.STALLED, stalled_for=30.0)
    d = decide(spec, settled(spec), obs, 1.0)
    assert states(d.state)["db2"] is State.ACTIVE and d.state.fencing == ()
    assert Fence("db1") in d.actions


def test_a_busy_primary_that_cannot_commit_waits_for_its_agent_then_goes() -> None:
    """Too many connections for mpp (its read_only unknown: mpp's fence is best effort),
    replicas still streaming, the agent's write probe stalled past the grace: the agent's
    word fails it over despite the replicas, but only once the agent has fenced it."""
    spec = star_spec(fail_point=2)
    busy = Observation("db1", 0.0, reachable=True, error="1040 Too many connections")
    world = {**star(spec, {}), "db1": busy}
    obs = agent(world, "db1", write=WriteProbe.STALLED, stalled_for=15.0)
    d = decide(spec, settled(spec), obs, 1.0)
    d = decide(spec, d.state, obs, 2.0)
    assert states(d.state)["db1"] is State.ACTIVE and d.state.fencing == ("db1",)
    # not probed in the next cycle: still waiting, nothing promoted
    unseen = {m: o for m, o in obs.items() if m != "db1"}
    d = decide(spec, d.state, unseen, 3.0)
    assert states(d.state)["db1"] is State.ACTIVE and d.state.fencing == ("db1",)
    fenced = agent(world, "db1", seq=2, write=WriteProbe.STALLED, stalled_for=17.0, fenced="asked")
    d = decide(spec, d.state, fenced, 4.0)
    assert states(d.state)["db2"] is State.ACTIVE and d.state.fencing == ()
    assert "db1's agent reports it fenced: asked" in next(
        e.reason for e in d.events if e.node == "db2" and e.new == "ACTIVE"
    )


def test_the_request_is_withdrawn_when_the_primary_answers_again() -> None:
    spec = star_spec()
    state = decide(spec, settled(spec), agent(star(spec, LOST), "db1", age=1.0), 1.0).state
    assert state.fencing == ("db1",)
    d = decide(spec, state, agent(star(spec, {}), "db1", age=0.0), 2.0)
    assert states(d.state)["db1"] is State.ACTIVE and d.state.fencing == ()
    assert d.state.alert == ""
    assert [(n, new) for n, new, _ in pool_events(d)] == [("db1", "-")]


def test_recover_withdraws_the_request() -> None:
    spec = star_spec()
    state = settled(spec)
    state = decide(spec, state, agent(star(spec, LOST), "db1", age=9.0), 1.0).state
    assert state.fencing == ("db1",) and states(state)["db1"] is State.FAILED_OFFLINE
    state = apply_command(spec, state, Recover("db1"), 2.0).state
    assert state.fencing == ()


def test_in_a_ring_a_failover_past_a_silent_active_node_waits_for_its_agent() -> None:
    spec = ring_spec(fail_point=2)
    state = settled(spec)
    down = observe(spec, {"db1": "offline"})
    state = decide(spec, state, agent(down, "db1", age=1.0), 1.0).state
    d = decide(spec, state, agent(down, "db1", age=2.0), 2.0)
    assert states(d.state)["db1"] is State.ACTIVE and d.state.fencing == ("db1",)
    d = decide(spec, d.state, agent(down, "db1", age=8.5), 3.0)
    assert states(d.state)["db2"] is State.ACTIVE and d.state.alert == ""


def test_in_a_ring_a_node_its_agent_fenced_cannot_serve() -> None:
    spec = ring_spec(fail_point=1)
    obs = agent(observe(spec, {}), "db1", fenced="no majority")
    d = decide(spec, settled(spec), obs, 1.0)
    assert states(d.state)["db1"] is State.FAILED_ONLINE
    assert states(d.state)["db2"] is State.ACTIVE
    assert d.state.node("db1").message.startswith("FAIL: read-only: fenced by its agent")


# -- maintenance ---------------------------------------------------------------------------


def test_maintenance_on_and_off_with_events() -> None:
    spec = star_spec()
    state = settled(spec)
    d = apply_command(spec, state, Maintenance("db2", True, 600.0), 10.0)
    node = d.state.node("db2")
    assert (node.maintenance_since, node.maintenance_until) == (10.0, 610.0)
    assert node.in_maintenance(11.0)
    assert pool_events(d) == [
        (
            "db2",
            "maintenance",
            "maintenance of db2 for 600 s: no failover to or from it, no fencing, "
            "no restarts by its agent",
        )
    ]
    off = apply_command(spec, d.state, Maintenance("db2", False), 20.0)
    assert off.state.node("db2").maintenance_since is None
    assert pool_events(off) == [("db2", "-", "maintenance of db2 ended by operator")]
    with pytest.raises(CommandRefused, match="db2 is not in maintenance"):
        apply_command(spec, off.state, Maintenance("db2", False), 21.0)
    with pytest.raises(CommandRefused, match="positive number of seconds"):
        apply_command(spec, state, Maintenance("db2", True, 0.0), 21.0)
    with pytest.raises(CommandRefused, match="no node 'db9'"):
        apply_command(spec, state, Maintenance("db9", True), 21.0)
    forever = apply_command(spec, state, Maintenance("db3", True), 22.0).state.node("db3")
    assert forever.maintenance_until is None and forever.in_maintenance(1e12)


def test_maintenance_ends_by_itself_when_it_expires() -> None:
    spec = star_spec()
    state = apply_command(spec, settled(spec), Maintenance("db2", True, 5.0), 1.0).state
    d = decide(spec, state, star(spec, {}), 3.0)
    assert d.state.node("db2").maintenance_since == 1.0
    d = decide(spec, d.state, star(spec, {}), 6.0)
    assert d.state.node("db2").maintenance_since is None
    assert pool_events(d) == [("db2", "-", "maintenance of db2 ended (expired)")]


def test_an_active_node_in_maintenance_is_never_failed_over() -> None:
    spec = star_spec(fail_point=2)
    state = apply_command(spec, settled(spec), Maintenance("db1", True), 0.5).state
    d = decide(spec, state, star(spec, LOST), 1.0)
    d = decide(spec, d.state, star(spec, LOST), 2.0)
    d = decide(spec, d.state, agent(star(spec, LOST), "db1", process=Process.GAVE_UP), 3.0)
    assert states(d.state)["db1"] is State.ACTIVE and d.state.node("db1").req >= 2
    assert d.state.alert == "failover held: db1 is in maintenance"
    assert "in maintenance" in d.state.node("db1").message
    assert not any(a.node == "db1" for a in d.actions) and d.state.fencing == ()
    # maintenance off: the alert goes, and the failover goes ahead
    state = apply_command(spec, d.state, Maintenance("db1", False), 4.0).state
    assert state.alert == ""
    d = decide(spec, state, star(spec, LOST), 5.0)
    assert states(d.state)["db2"] is State.ACTIVE and d.state.alert == ""


def test_a_node_in_maintenance_is_not_failed_promoted_or_touched() -> None:
    spec = star_spec(fail_point=1)
    state = apply_command(spec, settled(spec), Maintenance("db2", True), 0.5).state
    d = decide(spec, state, star(spec, {"db2": "offline"}), 1.0)
    assert states(d.state)["db2"] is State.STANDBY and d.state.node("db2").req == 1
    # the primary dies: db3 is promoted, never db2 (which is first by priority)
    d = decide(spec, d.state, star(spec, LOST), 2.0)
    assert states(d.state)["db3"] is State.ACTIVE and states(d.state)["db2"] is State.STANDBY
    assert not any(a.node == "db2" for a in d.actions)
    # writable and replicating from the wrong node: left as it is
    wrong = star(spec, {"db1": "offline", "db2": "writable_orphan"}, source="db3")
    d = decide(spec, d.state, wrong, 3.0)
    assert SetReadOnly("db2") not in d.actions and not any(a.node == "db2" for a in d.actions)


@pytest.mark.parametrize(
    "command",
    [Takeover("db2"), Activate("db2"), Fail("db2")],
)
def test_operator_commands_that_would_move_a_node_in_maintenance_are_refused(
    command: Any,
) -> None:
    spec = ring_spec() if isinstance(command, Activate | Fail) else star_spec()
    state = settled(spec)
    state = apply_command(spec, state, Maintenance("db2", True), 1.0).state
    with pytest.raises(CommandRefused, match="db2 is in maintenance"):
        apply_command(spec, state, command, 2.0)


def test_maintenance_is_refused_for_a_node_a_takeover_is_about_to_move() -> None:
    spec = star_spec()
    state = apply_command(spec, settled(spec), Takeover("db2"), 1.0).state
    with pytest.raises(CommandRefused, match="takeover involving db2 is in progress"):
        apply_command(spec, state, Maintenance("db2", True), 2.0)


# -- a ring's random histories with agents and maintenance ---------------------------------

RING_KINDS = ["good", "good", "good", "offline", "offline", "service", "io_down", "lag"]


@st.composite
def ring_history(draw: Any) -> tuple[PoolSpec, list[Any]]:
    n = draw(st.integers(2, 4))
    spec = ring_spec(n, fail_point=draw(st.integers(1, 4)), hostile=draw(st.booleans()))
    names = [f"db{i + 1}" for i in range(n)]
    node = st.sampled_from(names)
    view = st.builds(
        lambda name, process, fenced, age, seq: AgentView(
            report(name, seq=seq, process=process, fenced=fenced), age
        ),
        st.just(""),
        st.sampled_from([Process.RUNNING] * 4 + [*Process]),
        st.sampled_from([""] * 5 + ["no majority"]),
        st.sampled_from([0.0, 1.0, 7.0, 8.0, 30.0]),
        st.integers(1, 5),
    )
    poll = st.fixed_dictionaries(
        {m: st.tuples(st.sampled_from(RING_KINDS), st.none() | st.none() | view) for m in names}
    )
    command = st.one_of(
        st.builds(Recover, node),
        st.builds(Recover, node),
        st.builds(Activate, node),
        st.builds(Fail, node, st.booleans()),
        st.builds(Maintenance, node, st.sampled_from([True, True, False]), st.none()),
    )
    steps = draw(st.lists(st.one_of(poll, poll, poll, command), min_size=1, max_size=30))
    # mostly: the ACTIVE node (db1) goes silent for a while, with random agent views
    good = {m: ("good", None) for m in names}
    silent = st.builds(lambda v: {**good, "db1": ("offline", v)}, st.none() | view | view)
    steps = [good, *draw(st.lists(silent, max_size=6)), *steps]
    if draw(st.booleans()):  # a node in maintenance from the start, mostly the ACTIVE one
        steps.insert(0, Maintenance(draw(st.sampled_from(["db1", *names])), True, None))
    return spec, steps


def _ring_world(spec: PoolSpec, step: dict[str, Any], at: float) -> Obs:
    world = observe(spec, {m: kind for m, (kind, _) in step.items()}, at)
    return {
        m: replace(o, agent=None if v is None else AgentView(replace(v.report, node=m), v.age))
        for m, o in world.items()
        for v in [step[m][1]]
    }


@settings(max_examples=examples(300), deadline=None)
@given(ring_history())
def test_ring_invariants_with_agents_and_maintenance(case: tuple[PoolSpec, list[Any]]) -> None:
    spec, steps = case
    state = initial_state(spec)
    for t, step in enumerate(steps):
        now = float(t)
        prev = state
        if isinstance(step, dict):
            obs = _ring_world(spec, step, now)
            d = decide(spec, state, obs, now)
            assert decide(spec, restarted(state), obs, now) == d  # restart: same decision
            old = prev.active[0].name if prev.active else None
            if old is not None and d.state.active and d.state.node(old).state.failed:
                view = obs[old].agent
                said_down = view is not None and (
                    bool(view.report.fenced)
                    or view.report.process is Process.GAVE_UP
                    or (view.report.dead and view.age <= view.report.fence_ttl)
                )
                if view is not None and not said_down:
                    # never failed over past a live fence lease (a ring's logic fences
                    # nothing itself); a healthy node yielding by priority is no failover
                    assert view.lease_left + spec.agents.fence_margin <= 0, (
                        old,
                        step[old][0],
                        [e.reason for e in d.events],
                    )
            for n in prev.nodes:
                then = d.state.node(n.name)
                gave_up = n.state is State.ACTIVE and facts.gave_up(obs[n.name].agent)
                if gave_up and then.state is State.ACTIVE and not n.in_maintenance(now):
                    # restarts exhausted: failed over, or kept (no standby) saying why
                    assert then.req >= spec.fail_point and "restarts exhausted" in then.message
        else:
            try:
                d = apply_command(spec, state, step, now)
            except CommandRefused:
                continue
        state = d.state
        assert len(state.active) <= 1
        for n in prev.nodes:
            then = state.node(n.name)
            if n.in_maintenance(now):  # never promoted, failed or failed over
                assert then.state is State.ACTIVE or n.state is not State.ACTIVE, (n, step)
                assert then.state is not State.ACTIVE or n.state is State.ACTIVE, (n, step)
                assert not then.state.failed or then.state is n.state, (n, then, step)
                assert n.name not in state.fencing


def test_a_stale_stopped_report_does_not_release_the_lease_but_gave_up_does() -> None:
    from mpp.logic.agent import confirms_down, fence_wait
    from mpp.model import AgentReport, AgentView

    stopped = AgentReport("db1", "main", seq=1, fence_ttl=6.0, process=Process.STOPPED)
    assert confirms_down(AgentView(stopped, age=1.0))  # fresh: mysqld is down now
    stale = AgentView(stopped, age=7.0)  # maintenance may have ended and mysqld come back
    assert not confirms_down(stale) and fence_wait(stale, 2.0) == pytest.approx(1.0)
    gave_up = AgentView(replace(stopped, process=Process.GAVE_UP), age=7.0)
    assert confirms_down(gave_up) and fence_wait(gave_up, 2.0) == 0.0  # final: never restarted
