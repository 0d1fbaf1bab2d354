"""The built-in read-write / read-only router: MySQL client connections in, the right node out.

Many users have no load balancer, so `mpp run` can listen on two TCP ports itself, as MySQL
Router's classic ports do. It is layer 4 on purpose: a connection is routed once, when it is
accepted, and from then on bytes are copied both ways untouched. No query is parsed, so TLS
(negotiated inside the MySQL protocol, after the server's greeting) passes through and the
router costs no per-statement work beyond moving the bytes.

Where a connection goes is the answer of the role rules in mpp/publish/roles.py, read from the
Hub's in-memory state, so the router, the HTTP checks and the agent port can never disagree:

- rw: the pool's ACTIVE node (not while a switchover drains it);
- ro: least connections over the STANDBYs that are healthy and within the lag limit, else
  the ACTIVE node (the `ro` fallback).

When the Hub publishes a new state, rw connections to a node that is no longer ACTIVE are
closed (their clients reconnect and reach the new primary), and ro connections to a node
mpp has failed; every other connection is kept. A new rw connection that finds no primary
while a switchover or failover is under way waits for the new one (bounded by
`switchover_wait`) instead of failing; with nothing under way it gets a MySQL ERR packet
at once, so a client shows "mpp: pool main has no ACTIVE node" instead of hanging.

One module per job, so that the hot path can be read (and measured) on its own:
packets.py, the ERR packet, all of the MySQL protocol the router speaks; forwarding.py, the
Protocols that copy the bytes under backpressure caps; ports.py, a listening port per role
with its cap, its choice of node, its wait for a primary and its PortStats; and here the
Router, which owns the ports and follows the Hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterator

from mpp.config import Config, ConfigError, RouterSection
from mpp.model import Event, PoolSpec, PoolState, State
from mpp.publish.hub import Hub
from mpp.publish.listen import bind
from mpp.publish.roles import Role, check_node
from mpp.publish.router.forwarding import (
    CLOSE_GRACE,
    EARLY_LIMIT,
    HIGH_WATER,
    LOW_WATER,
    Link,
    Side,
)
from mpp.publish.router.packets import (
    ER_CON_COUNT_ERROR,
    ER_SERVER_SHUTDOWN,
    MAX_MESSAGE,
    err_packet,
)
from mpp.publish.router.ports import WARN_EVERY, Port, PortStats

__all__ = [
    "CLOSE_GRACE",
    "EARLY_LIMIT",
    "ER_CON_COUNT_ERROR",
    "ER_SERVER_SHUTDOWN",
    "HIGH_WATER",
    "LOW_WATER",
    "MAX_MESSAGE",
    "WARN_EVERY",
    "PortStats",
    "Router",
    "err_packet",
]

log = logging.getLogger("mpp.router")


class Router:
    """Both ports of one pool, steered by the Hub."""

    def __init__(self, config: Config, hub: Hub) -> None:
        assert config.router is not None
        self.settings: RouterSection = config.router
        assert self.settings.pool is not None and self.settings.switchover_wait is not None
        self.wait: float = self.settings.switchover_wait
        self.config = config
        self.hub = hub
        self.spec: PoolSpec = config.get_pool(self.settings.pool).spec()
        self.addresses = {n.name: n.address for n in self.spec.nodes}
        self.ports: dict[Role, Port] = {}
        if self.settings.rw is not None:
            self.ports[Role.RW] = Port(self, Role.RW, self.settings.rw)
        if self.settings.ro is not None:
            self.ports[Role.RO] = Port(self, Role.RO, self.settings.ro)
        self.sockets: dict[Role, socket.socket] = {}
        self.targets: dict[Role, list[str]] = {Role.RW: [], Role.RO: []}
        self.state: PoolState | None = None
        self._changed: asyncio.Event | None = None
        self.servers: list[asyncio.Server] = []
        # per port; `mpp run` lowers it to what the descriptor budget allows (two per
        # connection: client and server side)
        self.max_connections = self.settings.max_connections
        self.update(hub.state(self.spec.name))

    # -- configuration time ---------------------------------------------------------------

    def bind(self) -> list[socket.socket]:
        """Bind both ports now, so `mpp run` fails at start, naming the key, if it cannot."""
        for role, port in self.ports.items():
            try:
                self.sockets[role] = bind(port.listen, "[router]")
            except OSError as err:
                self.close_sockets()
                why = os.strerror(err.errno) if err.errno else str(err)
                raise ConfigError(
                    f"{self.config.path}: [router] {role.value} = {port.listen!r}: {why}"
                ) from None
        return list(self.sockets.values())

    def close_sockets(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()

    # -- the Hub's side -------------------------------------------------------------------

    @property
    def changed(self) -> asyncio.Event:
        """Set (and replaced) at every publish of this pool: what waiting connections await."""
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def listener(self, state: PoolState, events: tuple[Event, ...]) -> None:
        """Hub listener (runs in the event loop, inside the poll cycle): new targets, cut
        the connections whose node lost its role, wake the waiting connections."""
        if state.name != self.spec.name:
            return
        self.update(state)
        self.enforce(state)
        if self._changed is not None:
            changed, self._changed = self._changed, None
            changed.set()

    def update(self, state: PoolState | None) -> None:
        self.state = state
        barred = self.hub.barred()  # cut off (mpp.run.reach): no rw target at all
        for role in (Role.RW, Role.RO):
            self.targets[role] = [
                n.name
                for n in self.spec.nodes
                if check_node(self.spec, state, n.name, role, barred=barred)[0]
            ]

    def keeps(self, role: Role, state: PoolState, node: str) -> bool:
        """May an open connection to `node` stay? rw: while the node is ACTIVE (a draining
        primary's sessions finish; the switchover's fence ends them); ro: until mpp fails
        the node (lag and health only steer new connections)."""
        if not state.has(node):
            return False
        n = state.node(node)
        if role is Role.RW:
            if self.hub.barred():  # this site is cut off: its writes go nowhere
                return False
            return n.state is State.ACTIVE or node in self.targets[Role.RW]
        return not n.state.failed

    def enforce(self, state: PoolState) -> None:
        for role, port in self.ports.items():
            cut = [
                link
                for link in port.links
                if link.node is not None and not self.keeps(role, state, link.node)
            ]
            for link in cut:
                port.stats.closed_on_role_change += 1
                link.abort()
            if cut:
                nodes = sorted({link.node or "" for link in cut})
                log.info(
                    "router %s: closed %d connection(s) to %s (no longer %s)",
                    role,
                    len(cut),
                    ", ".join(nodes),
                    "ACTIVE" if role is Role.RW else "in the pool",
                )

    def worth_waiting(self, role: Role, connect_failed: bool) -> bool:
        """Wait for the Hub rather than refuse: only for rw, and only when a new primary
        is on its way (a switchover, an operator's request, a primary that stopped
        answering and is being failed over) or mpp has not polled the pool yet."""
        if role is not Role.RW or self.hub.barred():  # cut off: no primary will come here
            return False
        state = self.state
        if (
            state is None
            or state.switching is not None
            or state.request is not None
            or state.promoting is not None
        ):
            return True
        if connect_failed:
            # the ACTIVE node refuses connections: the poll loop is about to notice, and
            # only a pool with another node can get a new primary
            return any(not n.state.failed and n.state is not State.ACTIVE for n in state.nodes)
        return False

    def no_route(self, role: Role, failed: dict[str, str], waited: bool) -> str:
        pool = self.spec.name
        waited_for = f" (waited {self.wait:g}s)" if waited else ""
        if failed:
            why = "; ".join(f"{n} ({self.addresses[n]}): {e}" for n, e in failed.items())
            return f"mpp: pool {pool}: cannot connect to {why}{waited_for}"
        if role is Role.RW and (barred := self.hub.barred()):
            return f"mpp: pool {pool}: no writes from this site: mpp is {barred}"
        if self.state is None:
            return f"mpp: pool {pool} has no state yet (mpp has not polled it){waited_for}"
        if role is Role.RW:
            if self.state.switching is not None:
                return f"mpp: pool {pool} is still switching over{waited_for}"
            return f"mpp: pool {pool} has no ACTIVE node{waited_for}"
        return f"mpp: pool {pool} has no node that can serve reads"

    async def connect(self, link: Link, node: str) -> str | None:
        """Connect `link` to `node`: None when linked, "" when the node lost its role
        meanwhile (choose again), else why the connection failed."""
        host, _, port = self.addresses[node].rpartition(":")
        loop = asyncio.get_running_loop()
        side = Side(link, is_client=False)
        try:
            server, _ = await asyncio.wait_for(
                loop.create_connection(lambda: side, host.strip("[]"), int(port)),
                self.settings.connect_timeout,
            )
        except TimeoutError:
            return f"no TCP connection within {self.settings.connect_timeout:g}s"
        except OSError as err:
            return err.strerror or str(err)
        if link.closed:
            server.abort()
            return None
        if node not in self.targets[link.port.role]:
            server.abort()
            return ""
        link.attach(server, side)
        return None

    # -- running ----------------------------------------------------------------------------

    def links(self) -> Iterator[Link]:
        for port in self.ports.values():
            yield from port.links

    def buffered(self) -> int:
        """Bytes the router holds for all connections now (write buffers + early bytes)."""
        total = 0
        for link in self.links():
            total += len(link.client_side.pending)
            if link.server_side is not None:
                total += len(link.server_side.pending)
            for transport in (link.client, link.server):
                if transport is not None and not transport.is_closing():
                    total += transport.get_write_buffer_size()
        return total

    def stats(self) -> list[PortStats]:
        return [port.stats for port in self.ports.values()]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for role, sock in self.sockets.items():
            port = self.ports[role]
            server = await loop.create_server(port.protocol, sock=sock, backlog=1024)
            self.servers.append(server)
            log.info(
                "router %s listening on %s for pool %s (%s loop)",
                role,
                port.listen,
                self.spec.name,
                type(loop).__module__.split(".")[0],
            )

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for link in list(self.links()):
            link.abort()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        self.servers.clear()

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve on the bound sockets until `stop` is set."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
