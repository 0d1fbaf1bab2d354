"""`mpp agent --config FILE`: the node agent beside one mysqld (docs/agent.md)."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from types import FrameType

import click

from mpp.agent.depth import DepthProbe
from mpp.agent.guard import Guard
from mpp.agent.local import LocalServer
from mpp.agent.mysqld import Child, Mysqld, Watched
from mpp.agent.renewal import Renewer
from mpp.agent.supervise import Supervisor
from mpp.cli.common import errors
from mpp.config.agent import AgentConfig, load_agent
from mpp.store import Store, open_store


@click.command()
@click.option(
    "--config",
    "agent_config",
    type=click.Path(path_type=Path),
    required=True,
    help="The agent's own config file (one per database host; docs/agent.md).",
)
def agent(agent_config: Path) -> None:
    """Supervise this host's mysqld: restart it under the retry limit, report what it saw."""
    with errors():
        cfg = load_agent(agent_config)
        password = cfg.password() if cfg.probe is not None else None  # a bad one stops here
        store = open_store(cfg, cfg.source_address) if cfg.store is not None else None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("mpp")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    m = cfg.mysqld
    mysqld: Mysqld
    if m.command is not None:
        mysqld = Child(m.command)
    else:
        assert m.pid_file is not None and m.start is not None  # the config's rule
        mysqld = Watched(cfg.resolve(m.pid_file), m.start)
    report = cfg.resolve(cfg.report_file) if cfg.report_file else None
    supervisor = Supervisor(
        mysqld, cfg.node, cfg.pool, m.retry_limit, m.retry_interval, report, m.stop_timeout
    )
    if cfg.probe is not None and password is not None:
        probe = DepthProbe(cfg.probe, password, cfg.node)
        supervisor.depth = (probe, cfg.probe.ping_interval, cfg.probe.write_interval)
    if store is not None and cfg.probe is not None and password is not None:  # the config's rule
        _with_store(supervisor, cfg, store, LocalServer(cfg.probe, password, cfg.node))

    def stop(signum: int, frame: FrameType | None) -> None:
        supervisor.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        supervisor.run()
    finally:
        if store is not None:
            store.close()


def _with_store(
    supervisor: Supervisor, cfg: AgentConfig, store: Store, server: LocalServer
) -> None:
    """Reports through the store (the fence lease) and the fence check beside them."""
    if not cfg.peers:
        logging.getLogger("mpp.agent").warning(
            "agent node=%s no peers: a pool of one always reaches its majority, so the agent "
            "fences only when mpp asks (set peers = [...] to the pool's other nodes)",
            cfg.node,
        )
    supervisor.fence_ttl = cfg.fence_ttl
    supervisor.renewer = Renewer(
        store,
        cfg.pool,
        cfg.node,
        cfg.fence_ttl,
        supervisor.agent_report,
        supervisor.lease,
        supervisor.stop,
    )
    supervisor.guard = Guard(
        cfg.node,
        server,
        supervisor.lease,
        cfg.fence_ttl,
        list(cfg.peers),
        cfg.source_address,
        supervisor.set_fenced,
        supervisor.stop,
        kill=supervisor.kill_hung,
    )
