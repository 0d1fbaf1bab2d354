"""What every route reads, in one object: the routes are plain functions that receive it
through a dependency, so each router can be built and tested alone with a context of its
own instead of being a closure inside create_app."""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, cast

from fastapi import Depends, HTTPException, Request, Response
from pydantic import SecretStr

from mpp.config import Config, PoolConfig
from mpp.model import Command, Decision, Event, PoolSpec, PoolState
from mpp.publish.api.stream import Broadcast
from mpp.publish.hub import Hub
from mpp.publish.metrics import Metrics
from mpp.publish.view import document

# How the API's operator commands reach the store: handed in by mpp.run (a publisher never
# imports the loop); blocking, so it runs in a worker thread.
Commands = Callable[[PoolSpec, Command], Decision]

# A route: a coroutine whose parameters FastAPI fills from the request (and the context).
Endpoint = Callable[..., Awaitable[Response]]


class Liveness:
    """When each pool's poll loop last completed a cycle (operator commands do not count)."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[int, float]] = {}

    def listener(self, state: PoolState, events: tuple[Event, ...]) -> None:
        last = self.seen.get(state.name)
        if last is None or last[0] != state.cycle:
            self.seen[state.name] = (state.cycle, time.monotonic())


@dataclass
class Context:
    """`commands` None: a read-only API, every command answers 503. `token` None: mutations
    (and guarded reads) answer 401. The liveness and the broadcast only learn of cycles once
    they listen to the Hub, which create_app arranges."""

    config: Config
    hub: Hub
    token: SecretStr | None = None
    metrics: Metrics | None = None
    commands: Commands | None = None
    liveness: Liveness = field(default_factory=Liveness)
    broadcast: Broadcast = field(init=False)
    pools: dict[str, PoolConfig] = field(init=False)
    specs: dict[str, PoolSpec] = field(init=False)
    nodes: dict[str, frozenset[str]] = field(init=False)

    def __post_init__(self) -> None:
        # Derived once: a check must not rebuild a spec or a name set per request.
        self.pools = {p.name: p for p in self.config.pool}
        self.specs = {p.name: p.spec() for p in self.config.pool}
        self.nodes = {p.name: frozenset(n.name for n in p.node) for p in self.config.pool}
        self.broadcast = Broadcast(self.document)

    def document(self) -> dict[str, Any]:
        """Every pool, as GET /v1/pools and the dashboard stream show it."""
        leaders = self.hub.leaders() if self.hub.leaders is not None else None
        mine = self.hub.reach()  # this instance's checkpoints, as it probes them now
        return document(
            self.config,
            self.hub.states,
            self.hub.leader(),
            self.hub.reports,
            leaders=leaders,
            reach={mine.instance: mine} if mine is not None else None,
        )

    @property
    def stale_after(self) -> float:
        """Seconds without a cycle before /v1/health calls a pool stale: three intervals
        plus the slowest a cycle may legitimately take."""
        mpp = self.config.mpp
        return 3 * mpp.interval + mpp.connect_timeout + 2 * self.config.query_timeout + 1.0

    def pool_or_404(self, pool: str) -> PoolConfig:
        found = self.pools.get(pool)
        if found is None:
            raise HTTPException(404, f"no pool named {pool!r} (pools: {', '.join(self.pools)})")
        return found

    def node_or_404(self, pool: str, node: str) -> None:
        if node not in self.nodes[pool]:
            known = ", ".join(n.name for n in self.pools[pool].node)
            raise HTTPException(404, f"pool {pool!r} has no node named {node!r} (nodes: {known})")


def context(request: Request) -> Context:
    """The dependency every route takes its context from: create_app stores it on
    app.state, so a test can put any context there (or override this dependency)."""
    return cast(Context, request.app.state.context)


Ctx = Annotated[Context, Depends(context)]
