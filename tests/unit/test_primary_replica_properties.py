"""Invariants of the failover logic for primary-replica pools over random histories.

A history is a random sequence of steps fed back into the logic, each step starting from
the state the previous one returned:
- a poll: one random observation per node (reachability, query errors as the probe reports
  them, read_only, GTID positions, which source a replica follows and its threads), seen
  for one or more consecutive cycles, then optionally the executor's outcomes for the
  actions the logic planned (a failed action stops the plan, best-effort ones run in the
  background and report nothing), which go to `complete()` as the daemon does;
- an operator command: recover, fail, switchover, takeover (with or without --force) or
  acknowledge, applied to the stored state (refused ones change nothing);
- in about half the histories, nodes' agent views (random process, write probe, fenced,
  report age) on the observations, and maintenance on/off (with or without a duration)
  among the commands; the other half has neither, as before the agents existed.

Checked after every step (the numbers are those of the invariants asked for):
1. never two ACTIVE nodes;
2. a node made ACTIVE (election, failover, takeover) lacks no transaction that another
   reachable, non-failed node has received, except by a forced takeover; a Promote is only
   for the ACTIVE node or a switchover's target after its Fence of the old primary and
   CatchUp from it; complete() makes ACTIVE only a switchover target whose Promote worked;
3. a failover promotes only after a Fence of the old ACTIVE that must succeed first (not
   best effort), or with the old ACTIVE unreachable and, with confirm_with_replicas, no
   reachable replica still streaming from it;
4. FAILED_* is left only by `recover` of that node (to UNKNOWN), or in a poll cycle by the
   automatic rejoin: to STANDBY, reason "auto-rejoined as a replica of A", with auto_rejoin
   on, A the ACTIVE node, the node replicating from A with a GOOD verdict and no errant
   transactions; complete() never lifts it;
5. deciding (or refusing) again from the state read back from the store gives the same
   Decision;
and every state change is an event of the step's kind, every event has a reason, and the
change a decision announces is the one its state holds. With agents and maintenance:
6. never a promotion past an old primary whose agent's fence lease is live (lease_left +
   fence_margin > 0) and which its agent reports neither fenced nor down, unless mpp fences
   it first (a Fence that must succeed) or sees it read-only;
7. a node in maintenance is never made ACTIVE, never moved to FAILED_* (nor between them),
   never the target of an action, never in PoolState.fencing, and an ACTIVE one stays;
8. an ACTIVE node whose fresh report says restarts exhausted is not ACTIVE after that cycle
   unless in maintenance, or kept at the fail point with the agent's summary said;
9. where every agent view has nothing to say (fresh, running, writes ok, not fenced), the
   decision is the one without agent views, but for a promotion that waits for the lease.

The worlds are not always physically possible (a replica may report transactions its
source never had); the invariants are the logic's promises whatever the probes say.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mpp.logic import agent as agent_facts
from mpp.logic import gtid
from mpp.logic.failover import (
    apply_command,
    complete,
    decide,
    initial_state,
)
from mpp.logic.failover import converge as topology
from mpp.logic.health import classify
from mpp.model import (
    Acknowledge,
    Action,
    AgentReport,
    AgentView,
    CatchUp,
    Change,
    ChangeKind,
    Command,
    CommandRefused,
    Decision,
    EventKind,
    Fail,
    Fence,
    Maintenance,
    Observation,
    Outcome,
    PoolSpec,
    PoolState,
    Process,
    Promote,
    Recover,
    Replication,
    RequestKind,
    State,
    Switchover,
    Takeover,
    Verdict,
    WriteProbe,
)
from mpp.store import codec
from tests.builders import star, star_spec
from tests.examples import examples

_U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
_U2 = "9a9b2c3d-0000-11e1-8000-000000000002"
# small sets so that candidates often tie, lead, or miss each other's transactions
MARIADB = ["", "0-1-1", "0-1-2", "0-1-3", "0-2-3", "0-1-2,1-2-1", "0-1-3,1-2-1"]
MYSQL = ["", f"{_U1}:1-2", f"{_U1}:1-3", f"{_U1}:1-3,{_U2}:1", f"{_U1}:1-2,{_U2}:1-2", f"{_U2}:1"]


@dataclass(frozen=True)
class Poll:
    observations: Mapping[str, Observation]
    cycles: int  # the same observations this many cycles in a row (to climb the ladder)
    gap: float  # seconds between those cycles
    outcomes: tuple[bool, ...] | None  # None: the plan is not run (crash, or a veto)


Step = Poll | Command


def _replication(address: str, io: str, sql: bool, behind: int | None, io_pos: str) -> Replication:
    host, _, port = address.rpartition(":")
    return Replication(
        source_host=host,
        source_port=int(port),
        io_running=io,
        sql_running=sql,
        last_sql_errno=0 if sql else 1062,
        seconds_behind=None if io != "Yes" and behind == 0 else behind,
        gtid_io_pos=io_pos,
    )


@st.composite
def observation(
    draw: Any, spec: PoolSpec, name: str, writer: str, writer_up: bool, positions: list[str]
) -> Observation:
    """One node as the probe reports it (mpp/probe/mysql.py): an unreachable node or one
    whose query failed carries only the error. Mostly a coherent world (the `writer` is a
    writable primary, the others its healthy read-only replicas, whose IO thread mostly
    follows whether the writer is up), with "noisy" nodes whose every field is random."""
    primary = name == writer
    if primary and not writer_up:
        kind = draw(st.sampled_from(["offline"] * 6 + ["error", "noisy"]))
    else:
        kind = draw(st.sampled_from(["healthy"] * 8 + ["offline", "error", "noisy", "noisy"]))
    if kind == "offline":
        return Observation(name, 0.0, reachable=False, error="cannot connect: 2003 refused")
    if kind == "error":
        return Observation(name, 0.0, reachable=True, error="query failed: 1040 Too many")
    common = positions[len(positions) // 2]
    executed = draw(st.sampled_from([common, common, *positions]))
    semi = st.sampled_from([None, True, False])
    if kind == "healthy":
        io = "Yes" if writer_up else draw(st.sampled_from(["Connecting"] * 3 + ["Yes"]))
        address = spec.spec(writer).address
        return Observation(
            name,
            0.0,
            reachable=True,
            read_only=not primary,
            gtid_executed=executed,
            gtid_binlog=executed,
            semi_sync_primary=draw(semi),
            semi_sync_replica=draw(semi),
            replication=None if primary else _replication(address, io, True, 0, executed),
        )
    others = [n.address for n in spec.nodes if n.name != name]
    replication = st.builds(
        _replication,
        st.sampled_from(others),
        st.sampled_from(["Yes", "Yes", "Connecting", "No"]),
        st.sampled_from([True, True, False]),
        st.sampled_from([0, 0, None, 600]),
        st.sampled_from(positions),
    )
    return Observation(
        name,
        0.0,
        reachable=True,
        read_only=draw(st.sampled_from([True, False])),
        gtid_executed=executed,
        gtid_binlog=draw(st.sampled_from([executed, *positions])),
        semi_sync_primary=draw(semi),
        semi_sync_replica=draw(semi),
        replication=draw(st.none() | replication),
    )


@st.composite
def agent_view(draw: Any, name: str) -> AgentView:
    """A node agent's report as mpp sees it: mostly quiet, sometimes restarts exhausted, a
    stalled write, a fence; from fresh to well past its lease."""
    report = AgentReport(
        node=name,
        pool="main",
        seq=draw(st.integers(1, 9)),
        fence_ttl=6.0,
        process=draw(st.sampled_from([Process.RUNNING] * 3 + list(Process))),
        restarts_used=draw(st.integers(0, 2)),
        retry_limit=2,
        last_exit=draw(st.sampled_from(["", "killed by signal 9"])),
        write=draw(st.sampled_from([WriteProbe.OK] * 3 + list(WriteProbe))),
        stalled_for=draw(st.sampled_from([None, 3.0, 10.0, 30.0])),
        fenced=draw(st.sampled_from(["", "", "", "lease not renewed; no majority"])),
    )
    return AgentView(report, draw(st.sampled_from([0.0, 1.0, 5.5, 7.0, 7.9, 8.0, 30.0])))


def with_agents(draw: Any, world: dict[str, Observation]) -> dict[str, Observation]:
    return {
        m: replace(o, agent=draw(st.none() | st.none() | agent_view(m))) for m, o in world.items()
    }


@st.composite
def scenario(draw: Any, resting: bool = False) -> tuple[PoolSpec, list[Step]]:
    """resting: agents on, and a node put in maintenance after the first poll (the
    writer, more often than not), so that maintenance meets failing primaries."""
    n = draw(st.integers(2, 4))
    spec = star_spec(
        n,
        fail_point=draw(st.integers(1, 4)),
        confirm_with_replicas=draw(st.booleans()),
        fast_fail=draw(st.booleans()),
        auto_failover=draw(st.sampled_from([True, True, False])),
        auto_rejoin=draw(st.booleans()),
        failover_block=draw(st.sampled_from([0.0, 60.0])),
        semi_sync=draw(st.booleans()),
    )
    names = [node.name for node in spec.nodes]
    positions = draw(st.sampled_from([MARIADB, MYSQL]))
    node = st.sampled_from(names)
    command: st.SearchStrategy[Command] = st.one_of(
        st.builds(Recover, node),
        st.builds(Fail, node, st.booleans()),
        st.builds(Switchover, st.none() | node, st.sampled_from([1.0, 10.0])),
        st.builds(Takeover, node, st.booleans()),
        st.just(Acknowledge()),
    )
    agents = resting or draw(st.booleans())  # agent views and maintenance, or neither
    if agents:
        maintenance = st.builds(
            Maintenance,
            node,
            st.sampled_from([True, True, False]),
            st.sampled_from([None, None, 60.0, 5.0]),
        )
        command = st.one_of(command, maintenance, maintenance)
    outcomes = st.none() | st.lists(st.sampled_from([True] * 4 + [False]), max_size=8).map(tuple)
    steps: list[Step] = []
    writer = draw(node)
    resting_node = draw(st.sampled_from([writer, writer, *names]))
    for _ in range(draw(st.integers(1, 30))):
        if draw(st.integers(0, 4)) == 0:
            steps.append(draw(command))
            continue
        if draw(st.integers(0, 5)) == 0:  # the world moved on: someone else writes
            writer = draw(node)
        up = draw(st.sampled_from([True, True, False]))
        world = {m: draw(observation(spec, m, writer, up, positions)) for m in names}
        if agents:
            world = with_agents(draw, world)
        steps.append(
            Poll(
                world,
                draw(st.integers(1, 4)),
                draw(st.sampled_from([1.0, 1.0, 30.0])),
                draw(outcomes),
            )
        )
    if resting:  # after the first poll, which mostly elects the writer
        first = 1 if isinstance(steps[0], Poll) else 0
        steps.insert(first, Maintenance(resting_node, True, None))
    return spec, steps


# -- running a history ---------------------------------------------------------------------


def execute(actions: Sequence[Action], flags: Sequence[bool]) -> list[Outcome]:
    """The executor's report (mpp/act/executor.py): in order, stop at the first failure;
    best-effort actions run in the background and are not reported here."""
    out: list[Outcome] = []
    results = iter(flags)
    for action in actions:
        if action.best_effort:
            continue
        ok = next(results, True)
        out.append(Outcome(action, ok, "" if ok else "simulated failure", 0.01))
        if not ok:
            break
    return out


def restarted(state: PoolState) -> PoolState:
    """What a new mpp process reads back from the store."""
    return codec.loads(codec.dumps(state))


def same_after_restart(run: Callable[[PoolState], Decision], state: PoolState) -> Decision | None:
    """Run `run(state)` and again from the stored copy: both decide (or refuse) alike."""
    try:
        decision = run(state)
    except CommandRefused as refused:
        try:
            run(restarted(state))
        except CommandRefused as again:
            assert str(again) == str(refused)
            return None
        raise AssertionError(f"refused only before a restart: {refused}") from None
    assert run(restarted(state)) == decision, "a restart changed the decision"
    return decision


def history(spec: PoolSpec, steps: Sequence[Step]) -> None:
    state = initial_state(spec)
    now = 0.0
    for step in steps:
        if isinstance(step, Poll):
            for _ in range(step.cycles):
                now += step.gap
                obs = {m: _at(o, now) for m, o in step.observations.items()}
                decision = same_after_restart(
                    partial(decide, spec, observations=obs, now=now), state
                )
                assert decision is not None
                check_cycle(spec, state, decision, obs)
                state = decision.state
                if step.outcomes is None:
                    continue
                outcomes = execute(decision.actions, step.outcomes)
                if not outcomes and state.switching is None:
                    continue
                now += 0.1
                done = same_after_restart(
                    partial(complete, spec, outcomes=outcomes, now=now), state
                )
                assert done is not None
                check_completion(spec, state, done, outcomes)
                state = done.state
        else:
            now += 0.5
            command = step
            decision = same_after_restart(
                partial(apply_command, spec, command=command, now=now), state
            )
            if decision is None:
                continue
            check_command(spec, state, decision, command)
            state = decision.state


def _at(obs: Observation, now: float) -> Observation:
    return replace(obs, at=now)


# -- the invariants ------------------------------------------------------------------------


def states(state: PoolState) -> dict[str, State]:
    return {n.name: n.state for n in state.nodes}


def active(state: PoolState) -> str | None:
    return next((n.name for n in state.nodes if n.state is State.ACTIVE), None)


def check_common(prev: PoolState, decision: Decision, kind: EventKind) -> None:
    state = decision.state
    # 1. never two ACTIVE nodes
    assert len(state.active) <= 1, states(state)
    # every state change is an event of this step's kind, with a non-empty reason
    changed = {m for m, s in states(state).items() if states(prev)[m] is not s}
    recorded = {e.node for e in decision.events if e.kind == kind}
    assert changed == recorded, (changed, decision.events)
    for e in decision.events:
        assert e.reason.strip(), e


def check_cycle(
    spec: PoolSpec, prev: PoolState, decision: Decision, obs: Mapping[str, Observation]
) -> None:
    check_common(prev, decision, EventKind.STATE)
    state, actions = decision.state, decision.actions
    old = active(prev)
    # the change a decision announces (hooks, notifications) is the one its state holds
    if decision.change is not None:
        kind, was, new = decision.change.kind, decision.change.old, decision.change.new
        if kind is ChangeKind.SWITCHOVER:  # planned: carried out by the executor, then complete()
            assert state.switching is not None and state.switching.to == new
            assert active(state) == was == old
        else:
            assert kind in (ChangeKind.FAILOVER, ChangeKind.TAKEOVER)
            assert active(state) == new != old
            assert was == (old or "")
    request = prev.request
    forced = request is not None and request.kind is RequestKind.TAKEOVER and request.force
    # 2. a node newly ACTIVE has every transaction of the reachable, non-failed nodes
    #    (the old ACTIVE aside: it is what is being replaced). Exempt: the target of a
    #    forced takeover, and an interrupted switchover found completed on the servers.
    for name in (m for m, s in states(state).items() if s is State.ACTIVE):
        if states(prev)[name] is State.ACTIVE:
            continue
        if forced and decision.change == Change(ChangeKind.TAKEOVER, old or "", name):
            continue
        resolved = any(
            e.node == name and e.new == "ACTIVE" and e.change is ChangeKind.SWITCHOVER
            for e in decision.events
        )
        if prev.switching is not None and prev.switching.to == name and resolved:
            assert topology.is_primary(obs[name]), "switchover completed by guess"
            continue
        mine = topology.received(obs[name])
        for other in spec.nodes:
            o = obs[other.name]
            if other.name in (name, old) or not o.reachable:
                continue
            if states(prev)[other.name].failed or states(state)[other.name].failed:
                continue
            lacks = gtid.beyond(topology.received(o), mine)
            assert lacks.empty, f"{name} made ACTIVE lacking {lacks} that {other.name} has"
    # ... and a Promote is only for the ACTIVE node, or the target of a switchover plan
    #    after its old primary is fenced and the target has caught up with it
    for i, action in enumerate(actions):
        if not isinstance(action, Promote):
            continue
        if state.switching is not None and state.switching.to == action.node:
            assert old is not None and _index(actions, Fence, old) < i
            catchup = next(
                (
                    j
                    for j, a in enumerate(actions)
                    if isinstance(a, CatchUp) and a.node == action.node
                ),
                len(actions),
            )
            assert catchup < i and actions[catchup] == CatchUp(
                action.node, source=old, timeout=state.switching.timeout
            )
        else:
            assert active(state) == action.node, (action, states(state))
    # 3. a failover promotes only once the old ACTIVE is fenced (a Fence that must succeed
    #    before the Promote runs) or confirmed unreachable, by every replica too when
    #    confirm_with_replicas is on
    change = decision.change
    if change is not None and change.kind is ChangeKind.FAILOVER and change.old:
        gone, new = change.old, change.new
        promote = next(
            (i for i, a in enumerate(actions) if isinstance(a, Promote) and a.node == new),
            len(actions),
        )
        fenced = _index(actions, Fence, gone, best_effort=False) < promote
        streaming = [
            m
            for m, o in obs.items()
            if m != gone
            and o.reachable
            and o.replication is not None
            and o.replication.io_running == "Yes"
            and topology.source_of(spec, o) == gone
        ]
        # an ACTIVE that answers mpp only with errors serves no better than one it cannot
        # reach; what confirms either is that no replica streams from it any more
        silent = not obs[gone].reachable or bool(obs[gone].error)
        confirmed = silent and not (spec.replication.confirm_with_replicas and streaming)
        # ... or its host confirms mysqld down for good or the server fenced, or mpp sees
        # it read-only
        said = obs[gone].agent
        down = said is not None and (
            said.report.fenced != ""
            or said.report.process is Process.GAVE_UP
            or (said.report.dead and said.age <= said.report.fence_ttl)
        )
        assert fenced or confirmed or down or read_only(obs[gone]), (
            gone,
            obs[gone],
            streaming,
            actions,
        )
        # 6. never past a live fence lease its agent has not answered
        view = obs[gone].agent
        if view is not None and not down:
            live = view.lease_left + spec.agents.fence_margin > 0
            assert not live or fenced or read_only(obs[gone]), (gone, view, actions)
    # 4. FAILED_* is left in a cycle only by the automatic rejoin, and only as a STANDBY
    #    replicating without errors from the ACTIVE node with no errant transactions
    for name, was in states(prev).items():
        now = states(state)[name]
        if not was.failed or now.failed:
            continue
        head = active(state)
        reasons = [
            e.reason for e in decision.events if e.node == name and e.kind is EventKind.STATE
        ]
        assert now is State.STANDBY and head is not None, (name, was, now)
        assert reasons == [f"auto-rejoined as a replica of {head}"], reasons
        assert spec.replication.auto_rejoin
        o = obs[name]
        assert o.reachable and not o.error and topology.source_of(spec, o) == head
        assert classify(spec, prev, name, obs)[0] is Verdict.GOOD
        # against the base it had when the cycle decided (the cycle forgets the base of a
        # node no longer FAILED)
        base = replace(state, rejoin_base=(*prev.rejoin_base, *state.rejoin_base))
        assert topology.errant(base, head, o, obs).empty
    check_agents(spec, prev, decision, obs)


def read_only(o: Observation) -> bool:
    return o.reachable and not o.error and o.read_only is True


def check_agents(
    spec: PoolSpec, prev: PoolState, decision: Decision, obs: Mapping[str, Observation]
) -> None:
    state = decision.state
    now = state.updated_at
    assert now is not None
    for node in prev.nodes:
        name, was, then = node.name, node.state, states(state)[node.name]
        if node.in_maintenance(now):
            # 7. a node in maintenance: not promoted, failed, touched or asked to fence
            assert then is not State.ACTIVE or was is State.ACTIVE, (name, was, then)
            assert then is State.ACTIVE or was is not State.ACTIVE, (name, was, then)
            assert not then.failed or was is then, (name, was, then)
            assert not [a for a in decision.actions if a.node == name], decision.actions
            assert name not in state.fencing
            continue
        # 8. restarts exhausted on the ACTIVE node: failed over in that cycle, or kept at
        #    the fail point saying why
        view = obs[name].agent
        if was is State.ACTIVE and agent_facts.gave_up(view) and then is State.ACTIVE:
            kept = state.node(name)
            assert view is not None
            assert kept.req >= spec.fail_point, kept
            assert view.report.summary in kept.message, kept.message
    # the pool never asks a node in maintenance to fence itself, nor one it does not know
    assert set(state.fencing) <= {n.name for n in state.nodes}
    # 9. agent views with nothing to say change nothing, but a wait for the lease
    views = [o.agent for o in obs.values() if o.agent is not None]
    if views and all(quiet(v) for v in views) and not prev.fencing:
        stripped = {m: replace(o, agent=None) for m, o in obs.items()}
        plain = decide(spec, prev, stripped, now)
        past = plain.change.old if plain.change is not None else ""
        if not (past and obs[past].agent is not None):
            assert decision == plain, "a quiet agent changed the decision"


def quiet(view: AgentView) -> bool:
    r = view.report
    return (
        agent_facts.fresh(view)
        and r.process is Process.RUNNING
        and not r.last_exit
        and r.write in (WriteProbe.OK, WriteProbe.UNKNOWN)
        and not r.fenced
    )


def check_completion(
    spec: PoolSpec, prev: PoolState, decision: Decision, outcomes: Sequence[Outcome]
) -> None:
    check_common(prev, decision, EventKind.SWITCHOVER)
    state = decision.state
    assert not decision.actions or prev.switching is not None
    if decision.change is not None:
        kind, was, new = decision.change.kind, decision.change.old, decision.change.new
        assert kind is ChangeKind.SWITCHOVER and prev.switching is not None
        assert active(state) == new == prev.switching.to and was == active(prev)
        assert states(state)[was] is State.STANDBY
    for name, was in states(prev).items():
        now = states(state)[name]
        # 4. the executor's report never lifts a FAILED state
        assert not (was.failed and not now.failed), (name, was, now)
        # 2. a node becomes ACTIVE here only as the switchover target whose Promote worked
        if now is State.ACTIVE and was is not State.ACTIVE:
            assert prev.switching is not None and prev.switching.to == name
            assert any(_promoted(o, name) for o in outcomes)


def check_command(spec: PoolSpec, prev: PoolState, decision: Decision, command: Command) -> None:
    check_common(prev, decision, EventKind.OPERATOR)
    assert decision.actions == ()
    for name, was in states(prev).items():
        now = states(decision.state)[name]
        # an operator's command never makes a node ACTIVE (switchover/takeover are requests)
        assert now is not State.ACTIVE or was is State.ACTIVE
        # 4. FAILED_* is left by the operator only with `recover` of that node, to UNKNOWN
        if was.failed and not now.failed:
            assert command == Recover(name) and now is State.UNKNOWN, (command, was, now)
        # 7. an operator's command does not fail a node in maintenance either
        if prev.node(name).in_maintenance(decision.state.updated_at or 0.0):
            assert not now.failed or was is now, (command, was, now)


def _index(
    actions: Sequence[Action], kind: type, node: str, best_effort: bool | None = None
) -> int:
    return next(
        (
            i
            for i, a in enumerate(actions)
            if isinstance(a, kind)
            and a.node == node
            and (best_effort is None or a.best_effort == best_effort)
        ),
        len(actions),
    )


def _promoted(outcome: Outcome, name: str) -> bool:
    return outcome.ok and isinstance(outcome.action, Promote) and outcome.action.node == name


@settings(max_examples=examples(300), deadline=None)
@given(scenario())
def test_primary_replica_invariants_hold_over_random_histories(
    case: tuple[PoolSpec, list[Step]],
) -> None:
    spec, steps = case
    history(spec, steps)


@settings(max_examples=examples(200), deadline=None)
@given(scenario(resting=True))
def test_invariants_hold_with_a_node_in_maintenance(case: tuple[PoolSpec, list[Step]]) -> None:
    spec, steps = case
    history(spec, steps)


def test_takeover_to_the_active_node_is_refused_and_keeps_the_errant_check_base() -> None:
    """Found by the history test: a takeover to the node already ACTIVE was carried out as
    a change and moved promoted_at to its current position, so an old primary returning
    with a transaction written after the failover was rejoined instead of quarantined."""
    spec = star_spec(3)
    state = decide(spec, initial_state(spec), star(spec, {}), 0.0).state
    lost = {"db1": "offline", "db2": "io_lost", "db3": "io_lost"}
    state = decide(spec, state, star(spec, lost), 1.0).state
    assert active(state) == "db2" and state.promoted_at == "0-1-10"
    writing = star(spec, {"db1": "offline"}, source="db2", gtids={"db2": "0-2-12", "db3": "0-2-12"})
    state = decide(spec, state, writing, 2.0).state
    state = apply_command(spec, state, Takeover("db2"), 3.0).state
    decision = decide(spec, state, writing, 4.0)
    assert decision.change is None
    assert [(e.old, e.new) for e in decision.events] == [("takeover", "refused")]
    assert "already the ACTIVE node" in decision.events[0].reason
    assert decision.state.promoted_at == "0-1-10"
    # db1 wrote 0-1-11 after the failover (errant): it must be quarantined, not rejoined
    back = star(
        spec,
        {"db1": "fenced"},
        source="db2",
        gtids={"db1": "0-1-11", "db2": "0-2-12", "db3": "0-2-12"},
    )
    returned = decide(spec, decision.state, back, 5.0)
    assert "errant transactions 0-1-11" in returned.state.node("db1").message
    assert not [a for a in returned.actions if a.node == "db1"]


def test_a_busy_primary_is_fenced_or_kept_not_failed_over_unfenced() -> None:
    """A real bug the history test found (invariant 3), left for the logic's owner to fix:
    a primary that still answers, with an error ("Too many connections": it is busy with
    its clients), for fail_point cycles is failed over with no Fence at all (not even a
    best-effort one), though both replicas still stream from it. Fails until the logic
    fences it before the Promote or does not fail it over."""
    spec = star_spec(3)
    busy = Observation("db1", 0.0, reachable=True, error="cannot connect: 1040 Too many")
    history(
        spec,
        [
            Poll(star(spec, {}), 1, 1.0, None),
            Poll({**star(spec, {}), "db1": busy}, spec.fail_point, 1.0, None),
        ],
    )


def test_the_target_of_a_switchover_in_flight_is_not_failed_under_it() -> None:
    """Found by the history test: `mpp fail` of the switchover's target while it was in
    flight made it FAILED_ONLINE; the next cycle saw the servers had completed the move and
    made the FAILED node ACTIVE, a FAILED state lifted outside the automatic rejoin."""
    spec = star_spec(3)
    state = decide(spec, initial_state(spec), star(spec, {}), 0.0).state
    assert active(state) == "db1"
    state = apply_command(spec, state, Switchover("db2"), 1.0).state
    moving = decide(spec, state, star(spec, {}), 2.0)
    assert moving.state.switching is not None and moving.state.switching.to == "db2"
    assert moving.actions, "the switchover is under way"
    for target_of in (state, moving.state):  # requested, then in flight
        try:
            apply_command(spec, target_of, Fail("db2"), 2.5)
        except CommandRefused as refused:
            assert "target of the switchover" in str(refused)
        else:
            raise AssertionError("the switchover's target was failed under it")
    failed = apply_command(spec, moving.state, Fail("db3"), 2.5).state
    assert states(failed)["db3"] is State.FAILED_ONLINE, "a node not moving writes still can"
