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

MPP's flaws fixed: no cycle without an ACTIVE node during a reinstatement; an ACTIVE node
with no healthy standby is not failed into an empty pool; secondaries yield by priority,
not only to the PRIMARY; a replica is not failed because its source died (see health).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from mpp.logic.cycle import CommandRefused as CommandRefused
from mpp.logic.cycle import Cycle
from mpp.logic.primary_replica import PrimaryReplicaCycle
from mpp.model import (
    Decision,
    Event,
    NodeState,
    Observation,
    Outcome,
    PoolSpec,
    PoolState,
    Promote,
    Request,
    State,
)


@dataclass(frozen=True)
class Recover:
    node: str


@dataclass(frozen=True)
class Fail:
    node: str
    force: bool = False


@dataclass(frozen=True)
class Activate:
    node: str


@dataclass(frozen=True)
class Switchover:
    """Planned: the old primary stops writes, the target catches up, roles swap."""

    to: str | None = None
    timeout: float = 10.0
    id: str = ""


@dataclass(frozen=True)
class Takeover:
    """The old primary is gone (or cut off): promote `to` without it."""

    to: str
    force: bool = False
    id: str = ""


@dataclass(frozen=True)
class Acknowledge:
    """The operator has seen the last failover: lift the anti-flapping block and alert."""


Command = Recover | Fail | Activate | Switchover | Takeover | Acknowledge
NodeCommand = (Recover, Fail, Activate)


def initial_state(spec: PoolSpec) -> PoolState:
    """A pool never seen before: every node UNKNOWN with status OK, as in MPP."""
    return PoolState(name=spec.name, nodes=tuple(NodeState(name=n.name) for n in spec.nodes))


def reconcile(spec: PoolSpec, prev: PoolState) -> PoolState:
    """Follow configuration edits: new nodes start UNKNOWN, removed ones are forgotten."""
    nodes = tuple(prev.node(n.name) if prev.has(n.name) else NodeState(n.name) for n in spec.nodes)
    pinned = prev.pinned if prev.pinned in {n.name for n in spec.nodes} else None
    return replace(prev, name=spec.name, nodes=nodes, pinned=pinned)


def decide(
    spec: PoolSpec,
    prev: PoolState,
    observations: Mapping[str, Observation],
    now: float,
) -> Decision:
    """One poll cycle of the failover logic."""
    cycle = _cycle_class(spec)(spec, reconcile(spec, prev), now, observations=observations)
    cycle.run()
    return cycle.finish(prev)


def apply_command(spec: PoolSpec, prev: PoolState, command: Command, now: float) -> Decision:
    """An operator's command against the stored state; refused with a reason when unsafe.

    Switchover and takeover only record the request here: they need fresh observations
    and the executor, so the daemon's next cycle carries them out.
    """
    base = reconcile(spec, prev)
    node = getattr(command, "node", None) or getattr(command, "to", None)
    if node is not None and not base.has(node):
        raise CommandRefused(f"pool {spec.name} has no node {node!r}")
    cycle = _cycle_class(spec)(spec, base, now, kind="operator")
    match command:
        case Recover(name):
            cycle.recover(name)
        case Fail(name, force):
            _primary_replica_guard(spec, base, name, "fail")
            cycle.fail_by_operator(name, force)
        case Activate(name):
            _primary_replica_guard(spec, base, name, "activate")
            cycle.activate(name)
        case Switchover() | Takeover():
            cycle.set_pool(request=_request(spec, base, command, now))
            cycle.pool_event("-", command.__class__.__name__.lower(), f"requested: {command}")
        case Acknowledge():
            cycle.set_pool(failover_acknowledged=True, alert="")
            cycle.pool_event(base.alert or "-", "acknowledged", "operator acknowledged")
    return cycle.finish(prev)


def complete(spec: PoolSpec, prev: PoolState, outcomes: Sequence[Outcome], now: float) -> Decision:
    """Record what the executor did; finish (or roll back) a switchover in flight."""
    cycle = _cycle_class(spec)(spec, reconcile(spec, prev), now, kind="switchover")
    for o in outcomes:
        cycle.pool_events.append(
            cycle.event(
                o.action.node,
                "action",
                o.action.describe(),
                "ok" if o.ok else "FAILED",
                f"{o.detail} ({o.seconds * 1000:.0f} ms)"
                if o.detail
                else f"{o.seconds * 1000:.0f} ms",
            )
        )
    if isinstance(cycle, PrimaryReplicaCycle):
        for o in outcomes:
            if isinstance(o.action, Promote) and o.ok:
                cycle.promoted(o.action.node)
        if prev.switching is not None:
            cycle.finish_switchover(outcomes)
    return cycle.finish(prev)


def veto(spec: PoolSpec, prev: PoolState, decision: Decision, why: str, now: float) -> Decision:
    """A pre_* hook refused the change: the pool stays as it was, with the reason recorded
    (a failover is tried again next cycle; a switchover request is dropped)."""
    kind = decision.change[0] if decision.change else "change"
    state = replace(reconcile(spec, prev), request=None, alert=why, updated_at=now)
    return Decision(state, events=(Event(now, spec.name, "-", "pool", kind, "vetoed", why),))


def _primary_replica_guard(spec: PoolSpec, base: PoolState, name: str, verb: str) -> None:
    """In primary-replica pools moving ACTIVE by hand would skip catch-up and fencing."""
    if spec.primary_replica and (verb == "activate" or base.node(name).state is State.ACTIVE):
        raise CommandRefused(
            f"in a primary-replica pool use `mpp switchover {spec.name} --to NODE` "
            f"(planned) or `mpp takeover {spec.name} --to NODE` (primary lost) instead of {verb}"
        )


def _request(spec: PoolSpec, base: PoolState, command: Command, now: float) -> Request:
    if not spec.primary_replica:
        raise CommandRefused(
            f"pool {spec.name} is {spec.topology}: switchover and takeover need "
            'topology = "primary-replica"; use `mpp activate NODE`'
        )
    if base.request is not None or base.switching is not None:
        kind = (base.request or base.switching or Request("request", None, 0)).kind
        raise CommandRefused(f"pool {spec.name} already has a {kind} in progress")
    if isinstance(command, Switchover):
        return Request("switchover", command.to, now, command.timeout, id=command.id)
    assert isinstance(command, Takeover)
    return Request("takeover", command.to, now, force=command.force, id=command.id)


def _cycle_class(spec: PoolSpec) -> type[Cycle]:
    return PrimaryReplicaCycle if spec.primary_replica else Cycle
