"""An example mpp logic, shipped as its own package: `logic = "pinned"`.

A monitor-only logic: the node configured as `type = "primary"` takes the writes whenever it
answers, and nothing is ever promoted in its place: when it is down the pool has no writer
and says why, and an operator decides (an old-fashioned manual failover, MPP's "no automatic
failover" pools). Every other node that answers is STANDBY and serves reads.

It shows the whole contract of a logic (docs/logic.md): a pure `decide` over the spec, the
previous state and the cycle's observations, `complete` for executed actions (there are
none here), `apply_command` for the operator's commands, and the rw answers inherited from
BaseLogic. It imports only mpp.logic.interface and mpp.model, as a logic must.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from mpp.logic.interface import BaseLogic
from mpp.model import (
    Command,
    CommandRefused,
    Decision,
    Event,
    EventKind,
    NodeType,
    Observation,
    Outcome,
    PoolSpec,
    PoolState,
    State,
)


class PinnedLogic(BaseLogic):
    name = "pinned"

    def decide(
        self, spec: PoolSpec, prev: PoolState, observations: Mapping[str, Observation], now: float
    ) -> Decision:
        base = self.reconcile(spec, prev)
        nodes, events = [], []
        for node in base.nodes:
            obs = observations.get(node.name)
            up = obs is not None and obs.reachable and not obs.error
            primary = spec.spec(node.name).type is NodeType.PRIMARY
            if up:
                new = State.ACTIVE if primary else State.STANDBY
                message = "answers"
            else:
                new = State.FAILED_OFFLINE
                message = obs.error if obs is not None and obs.error else "cannot connect"
                if primary:
                    message += "; the pinned logic promotes nothing: an operator decides"
            req = 0 if up else node.req + 1
            if new is not node.state:
                events.append(
                    Event(now, spec.name, node.name, EventKind.STATE, node.state, new, message)
                )
            nodes.append(replace(node, state=new, req=req, message=message, notice=False))
        state = replace(base, nodes=tuple(nodes), cycle=base.cycle + 1, updated_at=now)
        return Decision(state, events=tuple(events))

    def complete(
        self, spec: PoolSpec, prev: PoolState, outcomes: Sequence[Outcome], now: float
    ) -> Decision:
        return Decision(prev)  # it never plans an action

    def apply_command(
        self, spec: PoolSpec, prev: PoolState, command: Command, now: float
    ) -> Decision:
        raise CommandRefused(
            f"pool {spec.name} uses the pinned logic: its states follow the servers only; "
            f"change the primary in the configuration instead of {type(command).__name__}"
        )


LOGIC = PinnedLogic()
