"""A listener's connection cap that idle connections cannot hold against a real client.

Refusing new connections at the cap would let anyone who opens `cap` idle sockets shut
every load balancer out of the check ports, which must stay reachable without a token. So
at the cap the oldest connection that has no request in progress (idle, or still dribbling
its request in) is closed to make room; only when every held connection is busy is the new
one refused. A check is answered in a millisecond, so a prober always gets its turn, while
a flood only ever holds `cap` descriptors. The event is logged, throttled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Held(Protocol):
    def busy(self) -> bool:
        """A request is being answered: not to be closed for room."""

    def drop(self) -> None:
        """Close now (the connection is over the cap)."""


C = TypeVar("C", bound=Held)

WARN_EVERY = 60.0


class ConnectionCap(Generic[C]):
    def __init__(
        self,
        what: str,
        key: str,
        cap: int,
        log: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what  # "API", "agent-check"
        self.key = key  # "[api] max_connections"
        self.cap = cap
        self.log = log
        self.clock = clock
        self.open: dict[C, None] = {}  # insertion order: oldest first
        self.evicted = 0
        self.refused = 0
        self._warned_at: float | None = None
        self._since_warning = 0

    def admit(self, conn: C) -> bool:
        """Register a new connection; False when it must be closed (every slot busy)."""
        if len(self.open) >= self.cap:
            victim = next((c for c in self.open if not c.busy()), None)
            if victim is None:
                self.refused += 1
                self._warn("refusing new ones (every one is answering a request)")
                return False
            self.forget(victim)
            self.evicted += 1
            self._warn("closing the oldest idle one to make room")
            victim.drop()
        self.open[conn] = None
        return True

    def forget(self, conn: C) -> None:
        self.open.pop(conn, None)

    def _warn(self, doing: str) -> None:
        now = self.clock()
        self._since_warning += 1
        if self._warned_at is not None and now - self._warned_at < WARN_EVERY:
            return
        self.log.warning(
            "%s: %d connections open (%s = %d): %s; %d such event(s) since the last warning",
            self.what,
            len(self.open),
            self.key,
            self.cap,
            doing,
            self._since_warning,
        )
        self._warned_at = now
        self._since_warning = 0
