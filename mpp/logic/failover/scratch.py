"""The scratch object one failover decision is worked out in (pure, no I/O): what the
steps read (spec, stored state, observations, now) and what they write (nodes, pool
fields, events, actions, the change), with the helpers every step shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mpp.model.event import Event
from mpp.model.kinds import ChangeKind, EventKind
from mpp.model.node import NodeState
from mpp.model.observation import Observation
from mpp.model.plan import Action, Change
from mpp.model.pool import PoolState
from mpp.model.spec import PoolSpec


class Scratch:
    """Mutable scratch space for one decision; never escapes the logic's entry points."""

    def __init__(
        self,
        spec: PoolSpec,
        base: PoolState,
        now: float,
        kind: EventKind = EventKind.STATE,
        observations: Mapping[str, Observation] | None = None,
    ) -> None:
        self.spec = spec
        self.base = base
        self.now = now
        self.kind = kind
        self.obs: Mapping[str, Observation] = observations or {}
        self.nodes: dict[str, NodeState] = {n.name: replace(n, notice=False) for n in base.nodes}
        self.reasons: dict[str, str] = {}
        self.changes: dict[str, ChangeKind] = {}  # nodes whose move is part of a change
        self.pool = replace(base, relinquish_to=None)  # pool-level fields, edited in place
        self.pool_events: list[Event] = []
        self.actions: list[Action] = []
        self.change: Change | None = None
        self.confirmed: set[str] = set()  # failing by its agent's word (no replica check)
        self.waiting: set[str] = set()  # old primaries whose agents are asked to fence
        self.left: set[str] = set()  # old primaries promoted past, their agents still asked
        self.released: dict[str, str] = {}  # old primary -> why promoting past it is safe
        self.held = False  # a failing ACTIVE node is kept because it is in maintenance

    def set_pool(self, **changes: Any) -> None:
        self.pool = replace(self.pool, **changes)

    def pool_event(self, old: str, new: str, reason: str, node: str = "-") -> None:
        self.pool_events.append(self.event(node, EventKind.POOL, old, new, reason))

    def event(self, node: str, kind: EventKind, old: str, new: str, reason: str) -> Event:
        return Event(self.now, self.spec.name, node, kind, str(old), str(new), reason)

    def say(self, name: str, message: str) -> None:
        self.nodes[name] = replace(self.nodes[name], message=message)

    def alert(self, node: str, text: str) -> None:
        """The pool needs the operator: said on the node, recorded once per new text."""
        self.say(node, f"{self.nodes[node].message}; {text}")
        if self.pool.alert != text:
            self.pool_event(self.pool.alert or "-", "ALERT", text, node)
        self.set_pool(alert=text)
