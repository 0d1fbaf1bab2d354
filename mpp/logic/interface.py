"""What every pool logic provides (MPP's pluggable "brain"), and the generic parts of it.

A logic is a pure function of the core, split in the calls the stages make:
- the loop asks `recheck` which nodes to probe again before deciding, then `decide`;
- a pre_* hook may refuse the decision's change: `veto`;
- after the executor ran the decision's actions: `complete` records the outcomes;
- the CLI and the API: `apply_command`;
- the publishers (checks, agent-check, router): `writer`/`writers`, the rw role.
No call touches a socket, a file or a clock; `now` is passed in. `BaseLogic` gives the
generic behaviour a logic need not write again; a logic refines only what it means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from mpp.model import (
    Command,
    Decision,
    Event,
    EventKind,
    NodeState,
    Observation,
    Outcome,
    PoolSpec,
    PoolState,
    State,
)

Answer = tuple[bool, str]  # (UP?, the reason a person reads)


class Logic(Protocol):
    name: str

    def initial_state(self, spec: PoolSpec) -> PoolState: ...

    def recheck(self, spec: PoolSpec, observations: Mapping[str, Observation]) -> list[str]: ...

    def decide(
        self, spec: PoolSpec, prev: PoolState, observations: Mapping[str, Observation], now: float
    ) -> Decision: ...

    def veto(
        self, spec: PoolSpec, prev: PoolState, decision: Decision, why: str, now: float
    ) -> Decision: ...

    def complete(
        self, spec: PoolSpec, prev: PoolState, outcomes: Sequence[Outcome], now: float
    ) -> Decision: ...

    def apply_command(
        self, spec: PoolSpec, prev: PoolState, command: Command, now: float
    ) -> Decision: ...

    def writer(self, spec: PoolSpec, state: PoolState, node: NodeState) -> Answer: ...

    def writers(self, spec: PoolSpec, state: PoolState) -> Answer: ...


class BaseLogic:
    """Generic behaviour: every node UNKNOWN at first, nothing probed twice, a vetoed change
    leaves the pool as it was (with the reason as its alert)."""

    name = "base"

    def initial_state(self, spec: PoolSpec) -> PoolState:
        """A pool never seen before: every node UNKNOWN with status OK, as in MPP."""
        return PoolState(name=spec.name, nodes=tuple(NodeState(name=n.name) for n in spec.nodes))

    def reconcile(self, spec: PoolSpec, prev: PoolState) -> PoolState:
        """Follow configuration edits: new nodes start UNKNOWN, removed ones are forgotten."""
        names = {n.name for n in spec.nodes}
        nodes = tuple(
            prev.node(n.name) if prev.has(n.name) else NodeState(n.name) for n in spec.nodes
        )
        pinned = prev.pinned if prev.pinned in names else None
        return replace(prev, name=spec.name, nodes=nodes, pinned=pinned)

    def recheck(self, spec: PoolSpec, observations: Mapping[str, Observation]) -> list[str]:
        return []

    def veto(
        self, spec: PoolSpec, prev: PoolState, decision: Decision, why: str, now: float
    ) -> Decision:
        """A pre_* hook refused the change: the pool stays as it was, with the reason recorded
        (a failover is tried again next cycle; a switchover request is dropped)."""
        kind = decision.change.kind.value if decision.change else "change"
        state = replace(self.reconcile(spec, prev), request=None, alert=why, updated_at=now)
        event = Event(now, spec.name, "-", EventKind.POOL, kind, "vetoed", why)
        return Decision(state, events=(event,))

    def writer(self, spec: PoolSpec, state: PoolState, node: NodeState) -> Answer:
        """rw for one node: by default the ACTIVE nodes take the writes."""
        if node.state is State.ACTIVE:
            return True, f"{node.name} is ACTIVE"
        return False, f"{node.name} is {node.state.value}"

    def writers(self, spec: PoolSpec, state: PoolState) -> Answer:
        """Pool level rw: does this site have a node taking writes?"""
        up = [n.name for n in state.nodes if self.writer(spec, state, n)[0]]
        if up:
            return True, f"pool {spec.name}: rw on {', '.join(up)}"
        return False, f"pool {spec.name}: no node is UP for rw"
