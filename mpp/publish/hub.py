"""The daemon's in-memory view of every pool, shared by the publishers.

The poll loop writes the latest committed state here (a Publisher); the API, the checks,
the agent port, the router and the metrics read it. Answering from memory is what keeps a
load balancer's check fast and consistent with the status table: no MySQL round-trip and no
store read per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mpp.config import Config
from mpp.model import AgentReport, Event, PoolState, ReachReport

Listener = Callable[[PoolState, tuple[Event, ...]], None]
log = logging.getLogger("mpp")


def guarded(listener: Listener, what: str) -> Listener:
    """A listener runs inside the poll loop's cycle: a bug in metrics or notifications must
    cost a log line, never a cycle (an exception would end the pool's task)."""

    def call(state: PoolState, events: tuple[Event, ...]) -> None:
        try:
            listener(state, events)
        except Exception:
            log.exception("%s listener failed for pool %s (polling goes on)", what, state.name)

    return call


class Hub:
    def __init__(
        self,
        config: Config,
        states: dict[str, PoolState | None] | None = None,
        leader: Callable[[], str | None] = lambda: None,
        owner: str | None = None,
        leading: Callable[[], bool] = lambda: True,
        leaders: Callable[[], dict[str, str | None]] | None = None,
    ) -> None:
        self.config = config
        # pools shared among instances: who leads each pool (None: one leader for all)
        self.leaders = leaders
        self.leading = leading  # False on a follower: it mirrors, it must not notify
        self.owner = owner  # this process's leadership owner id (None: not tracked)
        self.leader = leader  # the owner id of the mpp that leads, as last seen
        self.states: dict[str, PoolState | None] = {p.name: None for p in config.pool}
        self.states.update(states or {})
        self.listeners: list[Listener] = []
        self.cycle_seconds: dict[str, float] = {}
        # The node agents' latest reports by pool, as the loop last read them from the
        # store (`set_reports`); empty without agents. Shown, never decided on, here.
        self.reports: dict[str, dict[str, AgentReport]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # why this instance sends no writes ("" when it may): its checkpoints say it is cut
        # off (mpp.run.reach); every rw answer of the checks and the router reads it
        self.barred: Callable[[], str] = lambda: ""
        self.reach: Callable[[], ReachReport | None] = lambda: None  # shown by the API

    def publish(self, state: PoolState, events: tuple[Event, ...]) -> None:
        """The daemon's Publisher: remember, then tell every listener (metrics, notify)."""
        self.states[state.name] = state
        for listener in self.listeners:
            listener(state, events)

    def set_reports(self, pool: str, reports: dict[str, AgentReport]) -> None:
        """The loop hands over what `Store.reports(pool)` returned this cycle (replaced
        whole: a plain assignment, safe from the loop's worker threads)."""
        self.reports[pool] = dict(reports)

    def leads(self, pool: str) -> bool:
        """Does this instance lead `pool` (its own lease, or the one lease)?"""
        if self.leaders is None:
            return self.leading()
        return self.owner is not None and self.leaders().get(pool) == self.owner

    def state(self, pool: str) -> PoolState | None:
        return self.states.get(pool)

    def lock(self, pool: str) -> asyncio.Lock:
        """Held around "commit, then publish" of a pool by the poll loop and by the API's
        operator commands, so the Hub never keeps an older state than the store."""
        return self._locks.setdefault(pool, asyncio.Lock())
