"""Every state and status change of a pool, whoever committed it.

The daemon publishes each cycle's state with the events *its* decision made. A change that
another writer committed (an operator's `mpp fail` from the CLI, a second mpp) reaches the
daemon only as a different starting state, without events. Notifications and metrics must
not miss those, so this module compares each published state with the previous one and
fills the gaps with events of its own. Pure apart from the remembered previous states.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from mpp.logic.ladder import status_of
from mpp.model import ChangeKind, Event, EventKind, NodeState, PoolState, State

_STATE, _STATUS = EventKind.STATE, EventKind.STATUS
OUTSIDE = "committed outside this mpp run (operator command?)"


def is_failover(event: Event) -> bool:
    """A node took the writes in a failover (the logic marks the line; see Event.change)."""
    return event.promoted_by_failover


class ChangeTracker:
    """Remembers the last state of each pool; `feed` returns the complete list of changes."""

    def __init__(self, fail_points: dict[str, int], states: Iterable[PoolState | None] = ()):
        self.fail_points = fail_points
        self.prev: dict[str, PoolState] = {s.name: s for s in states if s is not None}

    def feed(self, state: PoolState, events: tuple[Event, ...]) -> list[Event]:
        prev = self.prev.get(state.name)
        self.prev[state.name] = state
        if prev is None:
            return list(events)
        fail_point = self.fail_points.get(state.name, 4)
        at = state.updated_at or max((e.at for e in events), default=0.0)
        out: list[Event] = []
        lost_active: list[str] = []
        gained_active: list[str] = []
        for node in state.nodes:
            mine = [e for e in events if e.node == node.name]
            old = prev.node(node.name) if prev.has(node.name) else None
            if old is None:
                out.extend(mine)
                continue
            # state: walk the writer's events from what we last saw, filling any gap
            current = old.state.value
            status = status_of(old.req, fail_point).label
            for e in mine:
                if e.kind.moves_state:
                    if e.old != current:
                        out.append(self._gap(state, node.name, at, _STATE, current, e.old, node))
                    current = e.new
                elif e.kind is EventKind.STATUS:
                    if e.old != status:
                        out.append(self._gap(state, node.name, at, _STATUS, status, e.old, node))
                    status = e.new
                out.append(e)
            if current != node.state.value:
                gap = self._gap(state, node.name, at, _STATE, current, node.state.value, node)
                out.append(gap)
                if current == State.ACTIVE.value:
                    lost_active.append(node.name)
                if node.state is State.ACTIVE:
                    gained_active.append(node.name)
            new_status = status_of(node.req, fail_point).label
            if status != new_status:
                out.append(self._gap(state, node.name, at, _STATUS, status, new_status, node))
        return self._name_failovers(state, prev, out, lost_active, gained_active)

    @staticmethod
    def _gap(
        state: PoolState,
        node: str,
        at: float,
        kind: EventKind,
        old: str,
        new: str,
        ns: NodeState,
    ) -> Event:
        return Event(at, state.name, node, kind, old, new, f"{OUTSIDE}; now: {ns.message}")

    @staticmethod
    def _name_failovers(
        state: PoolState,
        prev: PoolState,
        out: list[Event],
        lost: list[str],
        gained: list[str],
    ) -> list[Event]:
        """A node that became ACTIVE while the old ACTIVE went FAILED is a failover, even
        when another writer made it: say so, so counters and alerts treat it as one."""
        failed_active = [
            n for n in lost if state.has(n) and state.node(n).state.failed and prev.has(n)
        ]
        if not failed_active or not gained:
            return out
        named: list[Event] = []
        for e in out:
            if e.kind is EventKind.STATE and e.new == State.ACTIVE.value and e.node in gained:
                reason = f"FAILOVER: Taking over ACTIVE state from {failed_active[0]} ({OUTSIDE})"
                e = replace(e, reason=reason, change=ChangeKind.FAILOVER)
            named.append(e)
        return named
