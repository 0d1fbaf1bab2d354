"""The operator's commands (`mpp ...`): thin wrappers over config, store, logic and daemon.

Read commands (status, history, is-active) read the store only: they never touch MySQL and
need no password. Write commands go through the same pure logic and compare-and-set as the
daemon, so an operator's change and a poll cycle can never overwrite each other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click
from rich.live import Live
from rich.logging import RichHandler

from mpp import __version__
from mpp.cli.common import Ctx as _Ctx
from mpp.cli.common import console, fail, pass_ctx
from mpp.cli.common import errors as _errors
from mpp.config import Config
from mpp.logic import logic_for
from mpp.model import Activate, Command, Fail, PoolState, Recover, State
from mpp.publish.hub import Hub
from mpp.publish.view import document, table
from mpp.run import eventloop
from mpp.run.daemon import PoolWorker, make_workers, poll_once, run_forever
from mpp.run.leadership import Leadership
from mpp.run.transact import transact
from mpp.store import Store


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Config file (default ./mpp.toml or $MPP_CONFIG).",
)
@click.version_option(__version__, prog_name="mpp")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """mpp: keeps pools of MySQL/MariaDB servers available."""
    ctx.obj = _Ctx(config_path)


def _states(config: Config, store: Store) -> dict[str, PoolState | None]:
    out: dict[str, PoolState | None] = {}
    for pool in config.pool:
        snap = store.load(pool.name)
        out[pool.name] = snap.state if snap else None
    return out


def _status_doc(c: _Ctx, pool: str | None) -> dict[str, Any]:
    config = c.config
    if pool is not None:
        config.get_pool(pool)
    store = c.store()
    try:
        found = store.leader()
        doc = document(config, _states(config, store), found.owner if found else None)
    finally:
        store.close()
    if pool is not None:
        doc["pools"] = [p for p in doc["pools"] if p["name"] == pool]
    return doc


@main.command()
@click.argument("pool", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--watch", is_flag=True, help="Refresh every poll interval until Ctrl-C.")
@pass_ctx
def status(c: _Ctx, pool: str | None, as_json: bool, watch: bool) -> None:
    """Show every node's STATE and STATUS (from the store; no MySQL round-trip)."""
    with _errors():
        if as_json and not watch:
            click.echo(json.dumps(_status_doc(c, pool), indent=2))
            return
        if not watch:
            console.print(table(_status_doc(c, pool)))
            return
        with Live(table(_status_doc(c, pool)), console=console, auto_refresh=False) as live:
            try:
                while True:
                    time.sleep(c.config.mpp.interval)
                    live.update(table(_status_doc(c, pool)), refresh=True)
            except KeyboardInterrupt:
                pass


@main.command()
@click.argument("pool", required=False)
@pass_ctx
def poll(c: _Ctx, pool: str | None) -> None:
    """Run one poll cycle (cron-compatible, as MPP was used) and print the result."""
    with _errors():
        _setup_logging(live=False)
        store = c.store()
        # a running `mpp run` (or another poll) leads: one cycle here would compete with it
        mpp = c.config.mpp
        leadership = Leadership(store, mpp.name, mpp.leader_ttl, record_terms=False)
        if not leadership.renew():
            store.close()
            fail(
                f"{leadership.current or 'another mpp'} holds the leadership of this store; "
                "`mpp poll` would compete with it. Use `mpp status`, or stop that mpp first."
            )
        workers, executor = make_workers(
            c.config, store, [pool] if pool else None, leadership=leadership
        )
        try:
            asyncio.run(poll_once(workers))
        finally:
            for w in workers:
                w.close()
            executor.shutdown(wait=False, cancel_futures=True)
            leadership.resign()
            store.close()
        console.print(table(_status_doc(c, pool)))


@main.command()
@click.option(
    "--live/--no-live",
    default=None,
    help="Show the live status table (default: when stdout is a terminal).",
)
@pass_ctx
def run(c: _Ctx, live: bool | None) -> None:
    """The daemon: poll every pool each interval until SIGINT/SIGTERM."""
    with _errors():
        config = c.config
        show = console.is_terminal if live is None else live
        _setup_logging(live=show)
        store = c.store()
        leadership = Leadership(store, config.mpp.name, config.mpp.leader_ttl)
        hub = Hub(
            config,
            _states(config, store),
            leader=leadership.leader,
            owner=leadership.owner,
            leading=lambda: leadership.held,
        )
        workers, executor = make_workers(
            config, store, publishers=(hub.publish,), leadership=leadership, locks=hub.lock
        )
        from mpp.run.services import Integrations  # the web stack: only `run` needs it

        integrations: Integrations | None = None
        try:
            # API, agent-check port, metrics and notifications: bound and checked before
            # the loop starts, served in it, stopped by the same signal. "started" comes
            # after them, right before the loop installs its signal handlers.
            integrations = Integrations(config, hub, workers)
            logging.getLogger("mpp").info(
                "mpp %s started as %s: %d pool(s), interval %gs, state %s, %s loop",
                __version__,
                leadership.owner,
                len(workers),
                config.mpp.interval,
                config.state_location,
                eventloop.chosen(),
            )
            eventloop.run(
                _serve(
                    workers,
                    leadership,
                    show,
                    lambda: document(config, hub.states, hub.leader()),
                    integrations.run,
                )
            )
        finally:
            leadership.resign()
            if integrations is not None:
                integrations.close()
            for w in workers:
                w.close()
            executor.shutdown(wait=False, cancel_futures=True)
            store.close()
            logging.getLogger("mpp").info("mpp stopped")


async def _serve(
    workers: list[PoolWorker],
    leadership: Leadership,
    show: bool,
    doc: Callable[[], dict[str, Any]],
    services: Callable[[asyncio.Event], Awaitable[None]] | None = None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    extra = [services(stop)] if services is not None else []
    if not show:
        await asyncio.gather(run_forever(workers, stop, leadership), *extra)
        return
    with Live(table(doc()), console=console, auto_refresh=False) as live:

        async def refresh() -> None:
            while not stop.is_set():
                live.update(table(doc()), refresh=True)
                await asyncio.sleep(0.25)

        await asyncio.gather(run_forever(workers, stop, leadership), refresh(), *extra)


def _setup_logging(live: bool) -> None:
    handler: logging.Handler
    if live:
        handler = RichHandler(console=console, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("mpp")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


def _command(c: _Ctx, command: Command, name: str) -> None:
    config = c.config
    pool, node = config.find_node(name)
    spec = pool.spec()
    logic = logic_for(pool.logic)
    store = c.store()
    try:
        decision = transact(
            store, spec, lambda prev: logic.apply_command(spec, prev, command, time.time())
        )
    finally:
        store.close()
    if not decision.events:
        console.print(f"{pool.name}/{node.name}: no change")
    for e in decision.events:
        console.print(f"{e.pool}/{e.node}: {e.old} -> {e.new}  ({e.reason})", highlight=False)


@main.command()
@click.argument("node")
@pass_ctx
def recover(c: _Ctx, node: str) -> None:
    """Return a FAILED node to service: UNKNOWN now, STANDBY once it polls healthy."""
    with _errors():
        _command(c, Recover(c.config.find_node(node)[1].name), node)


@main.command()
@click.argument("node")
@pass_ctx
def activate(c: _Ctx, node: str) -> None:
    """Make a healthy node ACTIVE (the old ACTIVE becomes STANDBY in the same step)."""
    with _errors():
        _command(c, Activate(c.config.find_node(node)[1].name), node)


@main.command(name="fail")
@click.argument("node")
@click.option("--force", is_flag=True, help="Allow failing the ACTIVE node with no standby.")
@pass_ctx
def fail_node(c: _Ctx, node: str, force: bool) -> None:
    """Mark a node FAILED; an ACTIVE node hands over to the best healthy STANDBY."""
    with _errors():
        _command(c, Fail(c.config.find_node(node)[1].name, force), node)


@main.command(name="is-active")
@click.argument("node")
@pass_ctx
def is_active(c: _Ctx, node: str) -> None:
    """Print OK and exit 0 if NODE (name or HOST:PORT) is ACTIVE, else NO and exit 1."""
    with _errors():
        pool, n = c.config.find_node(node)
        store = c.store()
        try:
            snap = store.load(pool.name)
        finally:
            store.close()
        active = (
            snap is not None
            and snap.state.has(n.name)
            and (snap.state.node(n.name).state is State.ACTIVE)
        )
    click.echo("OK" if active else "NO")
    sys.exit(0 if active else 1)


@main.command()
@click.option("--pool", default=None, help="Only this pool.")
@click.option("--node", default=None, help="Only this node.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def history(c: _Ctx, pool: str | None, node: str | None, limit: int, as_json: bool) -> None:
    """Every state change (and status step) with its reason, oldest first."""
    with _errors():
        store = c.store()
        try:
            events = store.history(pool, node, limit)
        finally:
            store.close()
    if as_json:
        click.echo(json.dumps([e.__dict__ for e in events], indent=2))
        return
    from rich.table import Table

    t = Table(box=None, header_style="bold")
    for col in ("Time", "Pool", "Node", "Kind", "Change", "Reason"):
        t.add_column(col, overflow="fold")
    for e in events:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.at))
        t.add_row(when, e.pool, e.node, e.kind, f"{e.old} -> {e.new}", e.reason)
    console.print(t)


# The sandbox commands are registered from mpp.cli.sandbox to keep this module about pools.
from mpp.cli.checks import check, nagios  # noqa: E402
from mpp.cli.requests import acknowledge, switchover, takeover  # noqa: E402
from mpp.cli.sandbox import sandbox  # noqa: E402

main.add_command(sandbox)
main.add_command(check)
main.add_command(nagios)
for _command_ in (switchover, takeover, acknowledge):
    main.add_command(_command_)
