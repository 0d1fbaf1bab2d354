"""A listening port per role: its connection cap, the choice of a node for each new
connection, the wait for a primary during a switchover, and its counters (PortStats).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mpp.publish.roles import Role
from mpp.publish.router.forwarding import Link
from mpp.publish.router.packets import ER_CON_COUNT_ERROR, ER_SERVER_SHUTDOWN

if TYPE_CHECKING:  # the router owns its ports and they ask it where to go: types only
    from mpp.publish.router import Router

log = logging.getLogger("mpp.router")

WARN_EVERY = 10.0  # seconds between two log lines about refused connections of one port


@dataclass
class PortStats:
    """Counters of one listening port, read by the metrics at scrape time."""

    pool: str
    port: str  # "rw" or "ro"
    listen: str
    active: int = 0
    total: int = 0  # accepted client connections, refused ones included
    bytes_from_clients: int = 0
    bytes_to_clients: int = 0
    waited: int = 0  # connections that waited for a primary (switchover, failover)
    closed_on_role_change: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # reason -> count
    backends: dict[str, int] = field(default_factory=dict)  # node -> open connections

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1


class Port:
    """One listening address (rw or ro) and the connections it accepted."""

    def __init__(self, router: Router, role: Role, listen: str) -> None:
        self.router = router
        self.role = role
        self.listen = listen
        self.stats = PortStats(router.spec.name, role.value, listen)
        self.links: set[Link] = set()
        self.last_warning = 0.0
        self.suppressed = 0

    def warn(self, message: str) -> None:
        """Refusals can come by the thousand: one line per WARN_EVERY, with a count."""
        now = time.monotonic()
        if now - self.last_warning < WARN_EVERY:
            self.suppressed += 1
            return
        more = (
            f" ({self.suppressed} more refused since the last message)" if self.suppressed else ""
        )
        log.warning(
            "router %s %s: refused a connection: %s%s", self.role, self.listen, message, more
        )
        self.last_warning = now
        self.suppressed = 0

    def protocol(self) -> asyncio.Protocol:
        return Link(self).client_side

    def accept(self, link: Link, client: asyncio.Transport) -> None:
        link.client = client
        self.stats.total += 1
        limit = self.router.max_connections
        if len(self.links) >= limit:
            link.refuse(
                ER_CON_COUNT_ERROR,
                f"mpp: router {self.role} port {self.listen} has {limit} connections "
                "(max_connections)",
                "max_connections",
            )
            return
        self.links.add(link)
        self.stats.active += 1
        link.task = asyncio.get_running_loop().create_task(self.route(link))

    def forget(self, link: Link) -> None:
        if link in self.links:
            self.links.discard(link)
            self.stats.active -= 1
            link.release()

    def pick(self, candidates: list[str], skip: set[str]) -> str | None:
        """Least connections, ties to the earlier (higher-priority) node."""
        counts = self.stats.backends
        best: str | None = None
        for name in candidates:
            if name not in skip and (best is None or counts.get(name, 0) < counts.get(best, 0)):
                best = name
        return best

    async def route(self, link: Link) -> None:
        router = self.router
        deadline = time.monotonic() + router.wait
        failed: dict[str, str] = {}  # node -> why its connect failed
        waited = False
        try:
            while True:
                node = self.pick(router.targets[self.role], set(failed))
                if node is not None:
                    link.reserve(node)
                    error = await router.connect(link, node)
                    if error is None:
                        return
                    link.release()
                    if error == "":  # lost its role while connecting: choose again
                        continue
                    failed[node] = error
                    if self.role is Role.RO:
                        continue  # the next reader, else the answer below
                remaining = deadline - time.monotonic()
                if remaining > 0 and router.worth_waiting(self.role, bool(failed)):
                    if not waited:
                        waited = True
                        self.stats.waited += 1
                    changed = router.changed
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), remaining)
                    if self.role is Role.RW:
                        failed.clear()  # a new state: the primary may answer now
                    continue
                link.refuse(
                    ER_SERVER_SHUTDOWN, router.no_route(self.role, failed, waited), "no_node"
                )
                return
        except asyncio.CancelledError:
            link.close()
            raise
        except Exception:  # a bug must cost one connection and a log line, not the port
            log.exception("router %s: cannot route a connection", self.role)
            link.refuse(ER_SERVER_SHUTDOWN, "mpp: router internal error, see mpp's log", "error")
        finally:
            link.task = None
