"""HAProxy agent-check listener: one short TCP exchange per check, answered from the Hub.

HAProxy connects, sends the server's `agent-send` string ("main/db1/rw\\n"), reads one line
and closes. The line is a list of words (HAProxy 2.6, doc "agent-check" and
src/tcpcheck.c): a health word (`up`, `down`) moves the operational state; an admin word
(`ready`, `drain`, `maint`) the administrative one; text after `#` is shown on the stats
page. mpp answers:

- `up ready #<reason>`: UP for the role. `ready` because an admin state set by an agent is
  only undone by an agent: a node drained during a switchover must not stay drained when
  it is ACTIVE again (that would take the writes away). The price, documented: a manual
  `set server ... state drain/maint` on HAProxy's socket is undone by the next check; use
  `disable agent` first, or take the node out with mpp.
- `down #<reason>`: DOWN for the role.
- `drain #<reason>`: the node is being switched away from; its sessions finish, it takes
  no new ones (the health word is left out so its UP state is kept).

A request that names no known pool, node or role answers `down` with the reason, so a
misconfigured backend shows why on the stats page instead of flapping silently.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import cast

from mpp.config import Config, parse_duration
from mpp.model import PoolSpec
from mpp.publish.caps import ConnectionCap
from mpp.publish.hub import Hub
from mpp.publish.roles import Role, check_node, check_pool, draining

log = logging.getLogger("mpp.agent_check")

READ_TIMEOUT = 1.0  # HAProxy sends agent-send right after connecting
MAX_REQUEST = 512
USAGE = 'set agent-send "POOL/NODE/ROLE\\n" (ROLE: rw, ro or ok)'


def _clean(reason: str) -> str:
    """The reply is one line: no CR/LF, and no '#', which would start another comment."""
    return " ".join(reason.replace("#", "").split())[:200]


class Agent:
    def __init__(self, config: Config, hub: Hub) -> None:
        self.hub = hub
        self.specs: dict[str, PoolSpec] = {p.name: p.spec() for p in config.pool}
        self.server: asyncio.Server | None = None
        # lowered by `mpp run` to what the descriptor budget allows
        self.max_connections = config.agent.max_connections if config.agent else 256

    def answer(self, request: str) -> str:
        """The reply line for one agent-send string, e.g. 'main/db1/ro max_lag=5s'."""
        words = request.split()
        if not words:
            return f"down #no agent-send string: {USAGE}\n"
        max_lag: float | None = None
        for extra in words[1:]:
            key, _, value = extra.partition("=")
            if key != "max_lag":
                return f"down #{_clean(f'unknown option {extra!r}; only max_lag=DURATION')}\n"
            try:
                max_lag = parse_duration(value)
            except ValueError as err:
                return f"down #{_clean(f'max_lag: {err}')}\n"
        parts = words[0].split("/")
        if len(parts) not in (2, 3):
            return f"down #{_clean(f'cannot read {words[0]!r}: {USAGE}')}\n"
        spec = self.specs.get(parts[0])
        if spec is None:
            return f"down #{_clean(f'unknown pool {parts[0]!r}')}\n"
        try:
            role = Role(parts[-1])
        except ValueError:
            return f"down #{_clean(f'unknown role {parts[-1]!r}; use rw, ro or ok')}\n"
        state = self.hub.state(spec.name)
        if len(parts) == 2:
            up, reason = check_pool(spec, state, role, max_lag, self.hub.barred())
        else:
            node = parts[1]
            if node not in {n.name for n in spec.nodes}:
                return f"down #{_clean(f'unknown node {node!r} in pool {spec.name!r}')}\n"
            if draining(state, node):
                return f"drain #{_clean(f'{node} is draining (switchover in progress)')}\n"
            up, reason = check_node(spec, state, node, role, max_lag, self.hub.barred())
        return f"up ready #{_clean(reason)}\n" if up else f"down #{_clean(reason)}\n"

    async def serve(self, sock: socket.socket, stop: asyncio.Event) -> None:
        """Serve on an already bound socket until `stop` is set."""
        loop = asyncio.get_running_loop()
        cap: ConnectionCap[_AgentProtocol] = ConnectionCap(
            "agent-check", "[agent] max_connections", self.max_connections, log
        )
        self.server = await loop.create_server(lambda: _AgentProtocol(self.answer, cap), sock=sock)
        host, port = sock.getsockname()[:2]
        log.info("agent-check listening on %s:%s", host, port)
        try:
            await stop.wait()
        finally:
            self.server.close()
            await self.server.wait_closed()


class _AgentProtocol(asyncio.Protocol):
    """One check per connection. A bare Protocol rather than streams: this runs for every
    server of every backend every few seconds, and the stream machinery was most of its
    cost."""

    def __init__(self, answer: Callable[[str], str], cap: ConnectionCap[_AgentProtocol]) -> None:
        self.answer = answer
        self.cap = cap
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    # what the cap asks: a check is answered the moment its line is in, so every held
    # connection is one still waiting for its line (an idle socket, or a slow HAProxy)
    def busy(self) -> bool:
        return False

    def drop(self) -> None:
        transport, self.transport = self.transport, None
        if self.timer is not None:
            self.timer.cancel()
        if transport is not None:
            transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport; not an asyncio.Transport subclass under uvloop (which `mpp run`
        # uses with the router), so no isinstance check here
        self.transport = cast(asyncio.Transport, transport)
        self.cap.admit(self)  # never refused: busy() is never true
        # no agent-send configured: HAProxy sends nothing and waits for the line
        self.timer = asyncio.get_running_loop().call_later(READ_TIMEOUT, self.reply)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\n" in self.buffer or b"\r" in self.buffer or len(self.buffer) > MAX_REQUEST:
            self.reply()

    def eof_received(self) -> bool | None:
        self.reply()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.cap.forget(self)
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def reply(self) -> None:
        transport, self.transport = self.transport, None
        if transport is None or transport.is_closing():
            return
        if self.timer is not None:
            self.timer.cancel()
        line = self.buffer[:MAX_REQUEST].split(b"\n", 1)[0].split(b"\r", 1)[0]
        try:
            text = self.answer(line.decode("ascii", "replace"))
        except Exception:  # a bug must not leave HAProxy waiting: say down, log why
            log.exception("agent-check: cannot answer %r", line[:80])
            text = "down #mpp internal error, see its log\n"
        transport.write(text.encode("ascii", "replace"))
        transport.close()
