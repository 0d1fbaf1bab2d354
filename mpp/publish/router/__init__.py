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

Forwarding is a pair of asyncio Protocols per connection: the loop hands each received
chunk to `data_received`, which writes it to the other transport; no Python coroutine or
future per chunk. Measured on loopback (docs/router.md), this is 1.4-1.9x the rate of a
`sock_recv_into`/`sock_sendall` loop, and uvloop (used by `mpp run` when it is installed)
nearly doubles it again. Memory per connection is bounded: when one side's write buffer
passes HIGH_WATER, reading from the other side stops until it drains (backpressure), so a
client that stops reading a large result stalls the server, not the router's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

from mpp.config import Config, ConfigError, RouterSection
from mpp.model import Event, PoolSpec, PoolState, State
from mpp.publish.hub import Hub
from mpp.publish.listen import bind
from mpp.publish.roles import Role, check_node

log = logging.getLogger("mpp.router")

# Per direction and connection: a transport holding more than HIGH_WATER unsent bytes makes
# the other side stop reading until it is back under LOW_WATER. With the loop's own read
# chunk (asyncio: 256 KiB, uvloop: 64 KiB) this bounds what one connection can make the
# router hold, whatever the client or the server does.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
# A MySQL client waits for the server's greeting before it sends anything; a client that
# talks first anyway is held to this much until its server is connected.
EARLY_LIMIT = 64 * 1024
# A connection closed on one side gets this long to flush to the other, then is cut: a peer
# that never reads must not keep the link (and its buffer) forever.
CLOSE_GRACE = 5.0
WARN_EVERY = 10.0  # seconds between two log lines about refused connections of one port

# Error codes for the ERR packet sent in place of the greeting. Server codes only: MariaDB's
# client library treats an ERR packet with a client code (2000-2999) as malformed.
ER_CON_COUNT_ERROR = 1040  # "Too many connections": over max_connections
ER_SERVER_SHUTDOWN = 1053  # no node to route to: like a server that is going away
MAX_MESSAGE = 500


def err_packet(code: int, message: str) -> bytes:
    """A MySQL ERR packet to send as the server's first packet (sequence id 0).

    Without the `#` + SQLSTATE marker: before the handshake no capabilities are agreed and
    libmysqlclient reads the marker only once CLIENT_PROTOCOL_41 is (a server refusing a
    connection before its greeting, e.g. "Host is not allowed to connect", omits it too);
    with it, MySQL's client would print "#08S01" as part of the message. The `mariadb`
    client shows `ERROR 1053 (HY000): <message>`, PyMySQL raises OperationalError(1053, msg).
    """
    payload = b"\xff" + struct.pack("<H", code) + message.encode("utf-8")[:MAX_MESSAGE]
    return struct.pack("<I", len(payload))[:3] + b"\x00" + payload


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


class _Side(asyncio.Protocol):
    """One socket of a link. The hot path is `data_received`: one write to the peer."""

    __slots__ = ("is_client", "link", "peer", "pending", "stats", "transport")

    def __init__(self, link: _Link, is_client: bool) -> None:
        self.link = link
        self.stats = link.stats
        self.is_client = is_client
        self.transport: asyncio.Transport | None = None
        self.peer: asyncio.Transport | None = None  # set once both sides exist
        self.pending = bytearray()  # received before the peer existed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        if self.is_client:
            self.link.port.accept(self.link, transport)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None:
            # the server's greeting can arrive before `connect` resumes; a client should
            # not talk first, but may: hold a little, then stop reading
            self.pending += data
            if len(self.pending) > EARLY_LIMIT and self.transport is not None:
                self.transport.pause_reading()
            return
        if self.is_client:
            self.stats.bytes_from_clients += len(data)
        else:
            self.stats.bytes_to_clients += len(data)
        peer.write(data)

    def flush(self) -> None:
        """Hand what arrived before the link existed to the peer, and read on."""
        if self.pending and self.peer is not None:
            self.data_received(bytes(self.pending))
            self.pending = bytearray()
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()

    def eof_received(self) -> bool:
        """Half-close: pass the EOF on and keep reading what the other side still sends."""
        peer = self.peer
        if peer is None or peer.is_closing() or not peer.can_write_eof() or self.link.half_closed:
            self.link.close()
            return False
        peer.write_eof()
        self.link.half_closed = True
        return True

    def pause_writing(self) -> None:
        # this side's buffer is full: stop reading from the side that fills it
        if self.peer is not None and not self.peer.is_closing():
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and not self.peer.is_closing():
            with contextlib.suppress(RuntimeError):
                self.peer.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.lost(self.is_client)


class _Link:
    """One client connection and, once routed, its server connection."""

    __slots__ = (
        "client",
        "client_side",
        "closed",
        "gone",
        "half_closed",
        "node",
        "port",
        "server",
        "server_side",
        "stats",
        "task",
        "timer",
    )

    def __init__(self, port: _Port) -> None:
        self.port = port
        self.stats = port.stats
        self.client_side = _Side(self, is_client=True)
        self.server_side: _Side | None = None
        self.client: asyncio.Transport | None = None
        self.server: asyncio.Transport | None = None
        self.node: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False  # off the port's books
        self.gone = 0  # sides whose connection is lost
        self.half_closed = False

    def reserve(self, node: str) -> None:
        """Count the connection to `node` from the moment it is chosen, so a burst of new
        connections spreads instead of all picking the node that was least loaded."""
        backends = self.stats.backends
        backends[node] = backends.get(node, 0) + 1
        self.node = node

    def release(self) -> None:
        if self.node is not None:
            backends = self.stats.backends
            backends[self.node] = max(0, backends.get(self.node, 1) - 1)
            self.node = None

    def attach(self, server: asyncio.Transport, side: _Side) -> None:
        assert self.client is not None
        self.server = server
        self.server_side = side
        side.peer = self.client
        self.client_side.peer = server
        side.flush()
        self.client_side.flush()

    def refuse(self, code: int, message: str, reason: str) -> None:
        self.stats.refuse(reason)
        self.port.warn(message)
        if self.client is not None and not self.client.is_closing():
            self.client.write(err_packet(code, message))
        self.close()

    def abort(self) -> None:
        """Cut both sides now (the node lost its role, a flush took too long, mpp stops)."""
        for transport in (self.client, self.server):
            if transport is not None:
                transport.abort()
        self.lost(True)

    def close(self) -> None:
        """Flush and close both sides; cut them if they have not gone in CLOSE_GRACE."""
        self._grace()
        for transport in (self.client, self.server):
            if transport is not None and not transport.is_closing():
                transport.close()

    def _grace(self) -> None:
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(CLOSE_GRACE, self.abort)

    def lost(self, client: bool) -> None:
        """One side is gone: the other follows, and the link leaves the port's books."""
        if not self.closed:
            self.closed = True
            self.port.forget(self)
            if self.task is not None:
                self.task.cancel()  # still routing: the client left while it waited
        self.gone += 1
        other = self.server if client else self.client
        if other is not None and not other.is_closing():
            self._grace()
            other.close()
        sides = 1 if self.server is None else 2
        if self.gone >= sides and self.timer is not None:
            self.timer.cancel()


class _Port:
    """One listening address (rw or ro) and the connections it accepted."""

    def __init__(self, router: Router, role: Role, listen: str) -> None:
        self.router = router
        self.role = role
        self.listen = listen
        self.stats = PortStats(router.spec.name, role.value, listen)
        self.links: set[_Link] = set()
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
        return _Link(self).client_side

    def accept(self, link: _Link, client: asyncio.Transport) -> None:
        link.client = client
        self.stats.total += 1
        limit = self.router.settings.max_connections
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

    def forget(self, link: _Link) -> None:
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

    async def route(self, link: _Link) -> None:
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
        self.ports: dict[Role, _Port] = {}
        if self.settings.rw is not None:
            self.ports[Role.RW] = _Port(self, Role.RW, self.settings.rw)
        if self.settings.ro is not None:
            self.ports[Role.RO] = _Port(self, Role.RO, self.settings.ro)
        self.sockets: dict[Role, socket.socket] = {}
        self.targets: dict[Role, list[str]] = {Role.RW: [], Role.RO: []}
        self.state: PoolState | None = None
        self._changed: asyncio.Event | None = None
        self.servers: list[asyncio.Server] = []
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
        self._raise_file_limit()
        return list(self.sockets.values())

    def close_sockets(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()

    def _raise_file_limit(self) -> None:
        """Two descriptors per connection: make sure the caps can actually be reached."""
        needed = 2 * self.settings.max_connections * len(self.ports) + 256
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < needed:
            new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            if new < needed:
                log.warning(
                    "router: open files limited to %d; max_connections = %d per port needs %d",
                    new,
                    self.settings.max_connections,
                    needed,
                )

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
        for role in (Role.RW, Role.RO):
            self.targets[role] = [
                n.name for n in self.spec.nodes if check_node(self.spec, state, n.name, role)[0]
            ]

    def keeps(self, role: Role, state: PoolState, node: str) -> bool:
        """May an open connection to `node` stay? rw: while the node is ACTIVE (a draining
        primary's sessions finish; the switchover's fence ends them); ro: until mpp fails
        the node (lag and health only steer new connections)."""
        if not state.has(node):
            return False
        n = state.node(node)
        if role is Role.RW:
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
        if role is not Role.RW:
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
        if self.state is None:
            return f"mpp: pool {pool} has no state yet (mpp has not polled it){waited_for}"
        if role is Role.RW:
            if self.state.switching is not None:
                return f"mpp: pool {pool} is still switching over{waited_for}"
            return f"mpp: pool {pool} has no ACTIVE node{waited_for}"
        return f"mpp: pool {pool} has no node that can serve reads"

    async def connect(self, link: _Link, node: str) -> str | None:
        """Connect `link` to `node`: None when linked, "" when the node lost its role
        meanwhile (choose again), else why the connection failed."""
        host, _, port = self.addresses[node].rpartition(":")
        loop = asyncio.get_running_loop()
        side = _Side(link, is_client=False)
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

    def links(self) -> Iterator[_Link]:
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
