"""The failover logic: exactly one ACTIVE node per pool, chosen by priority (pure, no I/O).

Rules of this module (the h11 discipline):
- Everything that decides a node's STATE lives here; nothing here touches a socket, a file
  or a clock. Inputs are the pool spec, the previous pool state, this cycle's observations
  and `now`; outputs are the new state, actions and events, each event with its reason.
- Whatever the next decision depends on is in the returned PoolState, so a restarted mpp
  that reloads it decides exactly as the old process would have.

One cycle, in order:
1. health: each node's verdict (mpp.logic.health) moves its req up the ladder or resets it.
2. failures: a non-ACTIVE node at the fail point becomes FAILED_OFFLINE (cannot connect) or
   FAILED_ONLINE (reachable but unhealthy). FAILED_* is only left by an operator's recover.
3. the ACTIVE node: a failing ACTIVE hands over to the best healthy node in the same cycle,
   and is kept (with a message) when there is none; a pool without ACTIVE elects one at
   once; a lower-priority ACTIVE yields to a healthy higher-priority STANDBY, at once with
   hostile_takeover, else after announcing it one cycle ahead. Handovers are atomic: the old
   ACTIVE becomes STANDBY in the same cycle the new one becomes ACTIVE.
4. a healthy UNKNOWN node that was not elected becomes STANDBY.

Node agents (mpp/logic/agent.py, docs/fencing.md) add to step 1 (restarts exhausted fails a
node at once; a write that cannot commit past write_stall_grace is a SERVICE failure) and
to step 3: no promotion past an old primary mpp cannot fence itself while its agent's fence
lease is live and it reports neither fenced nor down (PoolState.fencing asks it to fence).
A node in maintenance is never a candidate, never failed, never failed over, never acted on.

MPP's flaws fixed: no cycle without an ACTIVE node during a reinstatement; an ACTIVE node
with no healthy standby is not failed into an empty pool; secondaries yield by priority,
not only to the PRIMARY; a replica is not failed because its source died (see health).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mpp.logic.failover.converge import second_look
from mpp.logic.failover.cycle import Cycle
from mpp.logic.failover.primary_replica import PrimaryReplicaCycle
from mpp.logic.failover.ring import RingCycle
from mpp.logic.interface import Answer, BaseLogic
from mpp.model import (
    Acknowledge,
    Activate,
    Command,
    CommandRefused,
    Decision,
    EventKind,
    Fail,
    Maintenance,
    NodeState,
    Observation,
    Outcome,
    PoolSpec,
    PoolState,
    Recover,
    Request,
    RequestKind,
    State,
    Switchover,
    Takeover,
)
from mpp.model.command import target


class FailoverLogic(BaseLogic):
    """MPP's failover logic; the steps live in Cycle (and PrimaryReplicaCycle)."""

    name = "failover"

    def recheck(self, spec: PoolSpec, observations: Mapping[str, Observation]) -> list[str]:
        """Primary-replica pools look twice at replicas of a node that failed this round
        (converge.second_look says why); a ring has no such question."""
        return second_look(spec, observations) if spec.primary_replica else []

    def decide(
        self,
        spec: PoolSpec,
        prev: PoolState,
        observations: Mapping[str, Observation],
        now: float,
    ) -> Decision:
        """One poll cycle of the failover logic."""
        cycle = _cycle_class(spec)(spec, self.reconcile(spec, prev), now, observations=observations)
        cycle.run()
        return cycle.finish(prev)

    def apply_command(
        self, spec: PoolSpec, prev: PoolState, command: Command, now: float
    ) -> Decision:
        """An operator's command against the stored state; refused with a reason when unsafe.

        Switchover and takeover only record the request here: they need fresh observations
        and the executor, so the daemon's next cycle carries them out.
        """
        base = self.reconcile(spec, prev)
        node = target(command)
        if node is not None and not base.has(node):
            raise CommandRefused(f"pool {spec.name} has no node {node!r}")
        cycle = _cycle_class(spec)(spec, base, now, kind=EventKind.OPERATOR)
        cycle.end_expired_maintenance()
        match command:
            case Recover(name):
                cycle.recover(name)
            case Fail(name, force):
                _primary_replica_guard(spec, base, name, "fail")
                _moving_writes_guard(spec, base, name)
                cycle.fail_by_operator(name, force)
            case Activate(name):
                _primary_replica_guard(spec, base, name, "activate")
                cycle.activate(name)
            case Maintenance(name, on, duration):
                cycle.maintenance(name, on, duration)
            case Switchover() | Takeover():
                request = _request(spec, base, command, now)
                for involved in (request.to, *(n.name for n in base.active)):
                    if involved is not None:
                        cycle.refuse_resting(involved, "move the writes to or from")
                cycle.set_pool(request=request)
                cycle.pool_event("-", command.__class__.__name__.lower(), f"requested: {command}")
            case Acknowledge():
                cycle.set_pool(failover_acknowledged=True, alert="")
                cycle.pool_event(base.alert or "-", "acknowledged", "operator acknowledged")
        return cycle.finish(prev)

    def complete(
        self, spec: PoolSpec, prev: PoolState, outcomes: Sequence[Outcome], now: float
    ) -> Decision:
        """Record what the executor did; the topology's cycle finishes (or rolls back) what
        the outcomes complete, such as a switchover in flight."""
        cycle = _cycle_class(spec)(spec, self.reconcile(spec, prev), now, kind=EventKind.SWITCHOVER)
        for o in outcomes:
            cycle.record_outcome(o)
        cycle.outcomes_done(prev, outcomes)
        return cycle.finish(prev)

    def writer(self, spec: PoolSpec, state: PoolState, node: NodeState) -> Answer:
        """rw: only the ACTIVE node, and not while it is drained or not yet writable."""
        if node.state is not State.ACTIVE:
            active = ", ".join(a.name for a in state.active) or "none"
            return False, f"{node.name} is {node.state.value}; ACTIVE: {active}"
        if node.name in state.draining:
            return False, f"{node.name} is draining (switchover in progress)"
        if node.name == state.promoting:
            return False, f"{node.name} is being promoted (not writable yet)"
        if node.name in state.fencing:
            # mpp is failing it over and waits for its agent to fence it: no new writes
            # should be sent to a primary that is being taken out
            return False, f"{node.name} is being fenced by its agent (failover waiting)"
        return True, f"{node.name} is ACTIVE"

    def writers(self, spec: PoolSpec, state: PoolState) -> Answer:
        if state.active:
            return True, f"pool {spec.name}: ACTIVE {', '.join(a.name for a in state.active)}"
        return False, f"pool {spec.name} has no ACTIVE node"


LOGIC = FailoverLogic()
# the module-level names tests and callers use: the one logic object's methods
initial_state = LOGIC.initial_state
reconcile = LOGIC.reconcile
decide = LOGIC.decide
apply_command = LOGIC.apply_command
complete = LOGIC.complete
veto = LOGIC.veto


def _primary_replica_guard(spec: PoolSpec, base: PoolState, name: str, verb: str) -> None:
    """In primary-replica pools moving ACTIVE by hand would skip catch-up and fencing."""
    if spec.primary_replica and (verb == "activate" or base.node(name).state is State.ACTIVE):
        raise CommandRefused(
            f"in a primary-replica pool use `mpp switchover {spec.name} --to NODE` "
            f"(planned) or `mpp takeover {spec.name} --to NODE` (primary lost) instead of {verb}"
        )


def _moving_writes_guard(spec: PoolSpec, base: PoolState, name: str) -> None:
    """The node a switchover or takeover moves the writes to is not failed under it: the
    servers may already have done the move (found by the history property test: the next
    cycle saw it completed and made the FAILED target ACTIVE, lifting a FAILED state
    outside a rejoin)."""
    for moving in (base.switching, base.request):
        if moving is not None and moving.to == name:
            raise CommandRefused(
                f"{name} is the target of the {moving.kind} in progress in pool {spec.name}:"
                " wait for it to finish or time out, then fail it"
            )


def _request(spec: PoolSpec, base: PoolState, command: Command, now: float) -> Request:
    if not spec.primary_replica:
        raise CommandRefused(
            f"pool {spec.name} is {spec.topology}: switchover and takeover need "
            'topology = "primary-replica"; use `mpp activate NODE`'
        )
    pending = base.request or base.switching
    if pending is not None:
        raise CommandRefused(f"pool {spec.name} already has a {pending.kind} in progress")
    if isinstance(command, Switchover):
        return Request(RequestKind.SWITCHOVER, command.to, now, command.timeout, id=command.id)
    assert isinstance(command, Takeover)
    return Request(RequestKind.TAKEOVER, command.to, now, force=command.force, id=command.id)


def _cycle_class(spec: PoolSpec) -> type[Cycle]:
    if spec.primary_replica:
        return PrimaryReplicaCycle
    return RingCycle if spec.replication.ring_repair else Cycle
