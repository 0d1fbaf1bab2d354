"""The daemon's in-memory view of every pool, shared by the publishers.

The poll loop writes the latest committed state here (a Publisher); the API, the checks,
the agent port, the router and the metrics read it. Answering from memory is what keeps a
load balancer's check fast and consistent with the status table: no MySQL round-trip and no
store read per request.
"""

from __future__ import annotations

from collections.abc import Callable

from mpp.config import Config
from mpp.model import Event, PoolState

Listener = Callable[[PoolState, tuple[Event, ...]], None]


class Hub:
    def __init__(
        self,
        config: Config,
        states: dict[str, PoolState | None] | None = None,
        leader: Callable[[], str | None] = lambda: None,
        owner: str | None = None,
    ) -> None:
        self.config = config
        self.owner = owner  # this process's leadership owner id (None: not tracked)
        self.leader = leader  # the owner id of the mpp that leads, as last seen
        self.states: dict[str, PoolState | None] = {p.name: None for p in config.pool}
        self.states.update(states or {})
        self.listeners: list[Listener] = []
        self.cycle_seconds: dict[str, float] = {}

    def publish(self, state: PoolState, events: tuple[Event, ...]) -> None:
        """The daemon's Publisher: remember, then tell every listener (metrics, notify)."""
        self.states[state.name] = state
        for listener in self.listeners:
            listener(state, events)

    def state(self, pool: str) -> PoolState | None:
        return self.states.get(pool)
