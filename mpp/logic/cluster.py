"""The cluster logic: every healthy node serves (pure, no I/O).

For Galera-like clusters and read-only farms behind one address, where no node is "the"
primary and mpp rewires nothing: it only decides which nodes are in service, and the
checks, the agent-check and the router (which spreads rw connections over every writer)
follow. `logic = "cluster"` in a pool.

Rules of this module (the h11 discipline):
- In service is ACTIVE; out of service is STANDBY (it fails, or it is earning its way
  back); FAILED_ONLINE only by the operator's `mpp fail`, left only by `mpp recover`.
- A poll is good when the node answers, runs its queries, and, if it replicates, its
  replication threads run within max_lag (a stale reader serves wrong answers).
- An ACTIVE node with `fail_point` bad polls in a row leaves service, unless that leaves
  fewer than `min_nodes` in service: then it stays (the last nodes keep serving) and the
  pool alert says CRITICAL.
- A node out of service returns after `return_after` good polls in a row. A node met for
  the first time (UNKNOWN) serves at its first good poll: at start every healthy node serves.
- No actions: the servers are never touched, so a restart of mpp decides the same from the
  stored state (req and streak are in it).
- Switchover and takeover have no meaning here and are refused with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from mpp.logic.interface import BaseLogic
from mpp.model import (
    Acknowledge,
    Activate,
    Command,
    CommandRefused,
    Decision,
    Event,
    EventKind,
    Fail,
    Maintenance,
    NodeState,
    Observation,
    Outcome,
    PoolSpec,
    PoolState,
    Recover,
    State,
    Switchover,
    Takeover,
)
from mpp.model.command import target


def poll_verdict(spec: PoolSpec, obs: Observation | None) -> tuple[bool, str]:
    """(good?, why) for one node this cycle, by the cluster's own measure."""
    if obs is None:
        return False, "not probed this cycle"
    if not obs.reachable:
        return False, obs.error or "cannot connect"
    if obs.error:
        return False, obs.error
    rep = obs.replication
    if rep is not None:
        if not rep.sql_running or rep.io_running != "Yes":
            return False, f"replication stopped (IO {rep.io_running}, SQL {rep.sql_running})"
        if rep.seconds_behind is None or rep.seconds_behind > spec.max_lag:
            lag = "unknown" if rep.seconds_behind is None else f"{rep.seconds_behind}s"
            return False, f"replication lag {lag} over max_lag {spec.max_lag:g}s"
    return True, "serving" + (", read-only" if obs.read_only else "")


class ClusterLogic(BaseLogic):
    name = "cluster"

    def decide(
        self, spec: PoolSpec, prev: PoolState, observations: Mapping[str, Observation], now: float
    ) -> Decision:
        base = self.reconcile(spec, prev)
        policy = spec.cluster
        verdicts = {n.name: poll_verdict(spec, observations.get(n.name)) for n in spec.nodes}
        nodes: dict[str, NodeState] = {}
        reasons: dict[str, str] = {}
        for node in base.nodes:
            if node.maintenance_until is not None and now >= node.maintenance_until:
                node = replace(node, maintenance_since=None, maintenance_until=None)
            good, why = verdicts[node.name]
            reach = observations[node.name].reachable if node.name in observations else None
            if good:
                node = replace(node, req=0, streak=node.streak + 1, message=why, reachable=reach)
            else:
                node = replace(node, req=node.req + 1, streak=0, message=why, reachable=reach)
            nodes[node.name] = node
        # leaving service: worst first would be arbitrary; priority order keeps it stable
        serving = [n for n in nodes.values() if n.state is State.ACTIVE]
        held: list[str] = []
        for node in serving:
            if node.req < spec.fail_point or node.in_maintenance(now):
                continue
            if len([n for n in nodes.values() if n.state is State.ACTIVE]) <= policy.min_nodes:
                held.append(node.name)
                continue
            nodes[node.name] = replace(node, state=State.STANDBY)
            reasons[node.name] = f"out of service after {node.req} bad polls: {node.message}"
        for node in list(nodes.values()):
            if node.state is State.UNKNOWN and node.req == 0:
                nodes[node.name] = replace(node, state=State.ACTIVE)
                reasons[node.name] = "in service: healthy at its first poll"
            elif node.state is State.UNKNOWN and node.req >= spec.fail_point:
                nodes[node.name] = replace(node, state=State.STANDBY)
                reasons[node.name] = f"not in service: {node.req} bad polls ({node.message})"
            elif node.state is State.STANDBY and node.streak >= policy.return_after:
                nodes[node.name] = replace(node, state=State.ACTIVE)
                reasons[node.name] = f"back in service after {node.streak} good polls"
        alert = _alert(spec, nodes, held)
        return _finish(spec, base, prev, nodes, reasons, EventKind.STATE, now, alert)

    def complete(
        self, spec: PoolSpec, prev: PoolState, outcomes: Sequence[Outcome], now: float
    ) -> Decision:
        """No actions are ever planned, so there is nothing to record."""
        return Decision(prev)

    def apply_command(
        self, spec: PoolSpec, prev: PoolState, command: Command, now: float
    ) -> Decision:
        base = self.reconcile(spec, prev)
        name = target(command)
        if name is not None and not base.has(name):
            raise CommandRefused(f"pool {spec.name} has no node {name}")
        nodes = {n.name: n for n in base.nodes}
        reasons: dict[str, str] = {}
        match command:
            case Switchover() | Takeover():
                raise CommandRefused(
                    f"pool {spec.name} uses the cluster logic: every healthy node serves, so "
                    "there is no primary to switch; use `mpp fail NODE` to take one out"
                )
            case Fail(node=node, force=force):
                serving = [n for n in nodes.values() if n.state is State.ACTIVE]
                last = len(serving) <= spec.cluster.min_nodes
                if nodes[node].state is State.ACTIVE and last and not force:
                    raise CommandRefused(
                        f"{node} is one of the last {len(serving)} nodes in service "
                        f"(min_nodes {spec.cluster.min_nodes}); add --force to take it out"
                    )
                nodes[node] = replace(nodes[node], state=State.FAILED_ONLINE, streak=0)
                reasons[node] = "taken out of service by the operator"
            case Recover(node=node):
                if not nodes[node].state.failed:
                    raise CommandRefused(f"{node} is {nodes[node].state.value}, not FAILED")
                nodes[node] = replace(nodes[node], state=State.STANDBY, streak=0)
                reasons[node] = "recovered by the operator: back after good polls"
            case Activate(node=node):
                nodes[node] = replace(nodes[node], state=State.ACTIVE, req=0)
                reasons[node] = "put in service by the operator"
            case Maintenance(node=node, on=on, duration=duration):
                until = None if duration is None else now + duration
                nodes[node] = replace(
                    nodes[node],
                    maintenance_since=now if on else None,
                    maintenance_until=until if on else None,
                )
            case Acknowledge():
                pass
        return _finish(spec, base, prev, nodes, reasons, EventKind.OPERATOR, now, base.alert)


def _alert(spec: PoolSpec, nodes: Mapping[str, NodeState], held: Sequence[str]) -> str:
    healthy = [n.name for n in nodes.values() if n.state is State.ACTIVE and n.req == 0]
    if len(healthy) >= spec.cluster.min_nodes:
        return ""
    kept = f"; kept in service though failing: {', '.join(held)}" if held else ""
    return (
        f"CRITICAL: {len(healthy)} healthy node(s) in service, min_nodes is "
        f"{spec.cluster.min_nodes}{kept}"
    )


def _finish(
    spec: PoolSpec,
    base: PoolState,
    prev: PoolState,
    nodes: Mapping[str, NodeState],
    reasons: Mapping[str, str],
    kind: EventKind,
    now: float,
    alert: str,
) -> Decision:
    events: list[Event] = []
    out: list[NodeState] = []
    for name in (n.name for n in spec.nodes):
        node = nodes[name]
        old = prev.node(name) if prev.has(name) else NodeState(name)
        changed = old.state is not node.state
        out.append(replace(node, notice=changed))
        if changed:
            why = reasons.get(name, node.message)
            events.append(Event(now, spec.name, name, kind, old.state, node.state, why))
        if (old.maintenance_since is None) != (node.maintenance_since is None):
            on = node.maintenance_since is not None
            events.append(
                Event(
                    now,
                    spec.name,
                    name,
                    EventKind.OPERATOR,
                    "maintenance" if not on else "-",
                    "maintenance" if on else "-",
                    "maintenance on" if on else "maintenance ended",
                )
            )
    if alert != base.alert:
        events.append(
            Event(now, spec.name, "-", EventKind.POOL, "alert", "alert", alert or "clear")
        )
    state = replace(
        base,
        nodes=tuple(out),
        cycle=base.cycle + (1 if kind is EventKind.STATE else 0),
        updated_at=now,
        alert=alert,
    )
    return Decision(state, events=tuple(events))


LOGIC = ClusterLogic()
