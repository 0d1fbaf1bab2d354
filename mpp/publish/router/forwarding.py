"""Copying the bytes of one routed connection both ways, with a cap on what it may buffer.

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
from typing import TYPE_CHECKING, cast

from mpp.publish.router.packets import err_packet

if TYPE_CHECKING:  # the port creates links and links report to it: a cycle only for types
    from mpp.publish.router.ports import Port

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


class Side(asyncio.Protocol):
    """One socket of a link. The hot path is `data_received`: one write to the peer."""

    __slots__ = ("is_client", "link", "peer", "pending", "stats", "transport")

    def __init__(self, link: Link, is_client: bool) -> None:
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


class Link:
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

    def __init__(self, port: Port) -> None:
        self.port = port
        self.stats = port.stats
        self.client_side = Side(self, is_client=True)
        self.server_side: Side | None = None
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

    def attach(self, server: asyncio.Transport, side: Side) -> None:
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
