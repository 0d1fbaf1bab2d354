"""What `mpp run` starts beside the poll loop: API, agent-check port, metrics, notifications,
the router.

Everything that can fail for a configuration reason (a port in use, an unreadable token
file) fails here, before the loop starts, as a ConfigError naming the key; once running,
all of it shares the daemon's event loop and its one stop event.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Sequence
from typing import Any

from mpp.config import Config, ConfigError
from mpp.model import Command, Decision, Event, PoolSpec, PoolState
from mpp.publish.api import create_app, serve
from mpp.publish.api.bounded import Bounds
from mpp.publish.budget import Demand, allot
from mpp.publish.haproxy_agent import Agent
from mpp.publish.hub import Hub, guarded
from mpp.publish.listen import bind
from mpp.publish.metrics import Metrics
from mpp.publish.notify import Notifier
from mpp.publish.router import Router
from mpp.run.transact import command_in_own_store

log = logging.getLogger("mpp")

API_CAP = "[api] max_connections"
AGENT_CAP = "[agent] max_connections"
ROUTER_CAP = "[router] max_connections"


class Integrations:
    def __init__(self, config: Config, hub: Hub, workers: Sequence[Any] = ()) -> None:
        self.config = config
        self.hub = hub
        self.workers = {w.pool.name: w for w in workers}
        self.sockets: list[socket.socket] = []
        self.metrics: Metrics | None = None
        self.app: Any = None
        self.agent: Agent | None = None
        self.notifier = Notifier(config, hub.states)
        if self.notifier.enabled:
            hub.listeners.append(guarded(self._notify, "notifications"))
        if config.api is not None:
            self.metrics = Metrics(
                config, hub.states, cycle_seconds=self._cycle_seconds, reports=hub.reports
            )
            hub.listeners.append(guarded(self.metrics.listener, "metrics"))
            self.metrics.add_reach(lambda: hub.reach())  # [[checkpoint]] (mpp.run.reach)
            # reads the token: may raise
            self.app = create_app(config, hub, self.metrics, self._command)
        if config.agent is not None:
            self.agent = Agent(config, hub)
        self.router: Router | None = None
        if config.router is not None:
            self.router = Router(config, hub)
            hub.listeners.append(guarded(self.router.listener, "router"))
            if self.metrics is not None:
                self.metrics.add_router(self.router.stats)
        hub.listeners.append(guarded(self._cycle_listener, "cycle timing"))
        self._check_https()
        try:
            if config.api is not None:
                self.api_socket = self._bind(config.api.listen, "[api]")
            if config.agent is not None:
                self.agent_socket = self._bind(config.agent.listen, "[agent]")
            if self.router is not None:
                self.sockets += self.router.bind()
        except ConfigError:
            self.close()
            raise
        self.caps = self._budget()

    def _check_https(self) -> None:
        """The API's certificate and key load now, or `mpp run` stops with one line (not
        later, inside the loop, with uvicorn's traceback)."""
        api = self.config.api
        if api is None or api.cert_file is None or api.key_file is None:
            return
        cert, key = self.config.resolve(api.cert_file), self.config.resolve(api.key_file)
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as err:
            why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            raise ConfigError(
                f"{self.config.path}: [api] cert_file/key_file: cannot load {cert} with "
                f"{key} ({why}); give a PEM certificate (chain) and its private key"
            ) from None

    def _budget(self) -> dict[str, int]:
        """Every listener's connection cap under the descriptor limit (mpp.publish.budget),
        handed to each before it serves."""
        demands: list[Demand] = []
        if self.config.api is not None:
            demands.append(Demand(API_CAP, self.config.api.max_connections))
        if self.config.agent is not None:
            demands.append(Demand(AGENT_CAP, self.config.agent.max_connections))
        if self.router is not None:
            per_port = self.router.settings.max_connections
            demands.append(Demand(ROUTER_CAP, per_port * len(self.router.ports), 2))
        caps = allot(demands)
        if self.agent is not None:
            self.agent.max_connections = caps[AGENT_CAP]
        if self.router is not None:
            self.router.max_connections = max(1, caps[ROUTER_CAP] // len(self.router.ports))
        return caps

    def _command(self, spec: PoolSpec, order: Command) -> Decision:
        """The API's operator commands: the same transaction as the CLI's."""
        return command_in_own_store(self.config, spec, order)

    def _notify(self, state: PoolState, events: tuple[Event, ...]) -> None:
        """Only the leader notifies: every follower mirrors the same changes, and a change
        must reach the operator once, not once per site. A follower keeps its baseline so
        that, once it leads, it reports only what changes from then on."""
        if self.hub.leads(state.name):
            self.notifier.listener(state, events)
        else:
            self.notifier.tracker.feed(state, events)

    def _bind(self, listen: str, section: str) -> socket.socket:
        try:
            sock = bind(listen, section)
        except OSError as err:
            raise ConfigError(f"{self.config.path}: {err.strerror}") from None
        self.sockets.append(sock)
        return sock

    def _cycle_seconds(self) -> dict[str, float]:
        """Each pool's last completed cycle (0 before the first one)."""
        seconds = {name: w.last_cycle_seconds for name, w in self.workers.items()}
        self.hub.cycle_seconds.update({k: v for k, v in seconds.items() if v > 0})
        return seconds

    def _cycle_listener(self, state: PoolState, events: tuple[Event, ...]) -> None:
        # at publish time the worker has not finished this cycle: this is the last one's.
        # Only the published pool's: every pool's on every publish was 333 x 333 reads a
        # second at a thousand nodes, ~10 % of mpp's CPU (py-spy --gil)
        worker = self.workers.get(state.name)
        if worker is not None and worker.last_cycle_seconds > 0:
            self.hub.cycle_seconds[state.name] = worker.last_cycle_seconds

    async def run(self, stop: asyncio.Event) -> None:
        tasks: list[Awaitable[None]] = [self.notifier.run(stop)]
        if self.app is not None:
            api = self.config.api
            assert api is not None
            token = self.app.state.context.token  # read once, by create_app
            bounds = Bounds(self.caps[API_CAP], api.header_timeout, token)
            https = None
            if api.cert_file is not None and api.key_file is not None:
                https = (
                    str(self.config.resolve(api.cert_file)),
                    str(self.config.resolve(api.key_file)),
                )
            tasks.append(serve(self.app, self.api_socket, stop, bounds, https))
        if self.agent is not None:
            tasks.append(self.agent.serve(self.agent_socket, stop))
        if self.router is not None:
            tasks.append(self.router.serve(stop))
        await asyncio.gather(*tasks)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
