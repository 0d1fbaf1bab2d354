"""`mpp run` and `mpp poll`: the poll loop in the foreground, and one cycle of it for cron.

Both take the store's leadership first, so a `poll` from cron can never compete with a
running daemon, and both log through `_setup_logging`: plain lines on stderr for journald
and cron mail, or rich lines above the live status table when a person is watching.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import click
from rich.live import Live
from rich.logging import RichHandler

from mpp import __version__
from mpp.cli.common import Ctx, console, errors, fail, pass_ctx
from mpp.cli.status import states, status_doc
from mpp.model import Event, PoolState, Reach
from mpp.probe.connection import probe_driver_note
from mpp.publish.api.security import load_token
from mpp.publish.hub import Hub
from mpp.publish.log import Throttle
from mpp.publish.systemd import Systemd
from mpp.publish.view import document, table
from mpp.run import eventloop
from mpp.run.daemon import PoolWorker, Threads, make_workers, poll_once, run_forever
from mpp.run.leadership import Leadership
from mpp.run.reach import ReachMonitor, writes_barred
from mpp.run.shards import Shards


@click.command()
@click.argument("pool", required=False)
@pass_ctx
def poll(c: Ctx, pool: str | None) -> None:
    """Run one poll cycle (cron-compatible, as MPP was used) and print the result."""
    with errors():
        _setup_logging(live=False)
        store = c.store()
        # a running `mpp run` (or another poll) leads: one cycle here would compete with it
        mpp = c.config.mpp
        if mpp.shard:
            store.close()
            fail(
                "[mpp] shard = true: the pools are shared among the running `mpp run`; "
                "`mpp poll` would decide beside them. Use `mpp status`."
            )
        if c.config.checkpoint:  # a cut-off instance decides nothing (mpp.run.reach)
            monitor = ReachMonitor(c.config, store)
            try:
                asyncio.run(monitor.settle())
            finally:
                monitor.close()
            if why := monitor.barred():
                store.close()
                fail(f"mpp {mpp.name} is {why}; `mpp poll` decides nothing from here")
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
            _close_workers(workers, executor)
            leadership.resign()
            store.close()
        console.print(table(status_doc(c, pool)))


@click.command()
@click.option(
    "--live/--no-live",
    default=None,
    help="Show the live status table (default: when stdout is a terminal).",
)
@pass_ctx
def run(c: Ctx, live: bool | None) -> None:
    """The daemon: poll every pool each interval until SIGINT/SIGTERM."""
    with errors():
        config = c.config
        show = console.is_terminal if live is None else live
        _setup_logging(live=show)
        # the files the config points at, read before the store or any port is created
        config.check_secrets()
        load_token(config)
        store = c.store()
        mpp = config.mpp
        leadership: Leadership | Shards
        if mpp.shard:  # each pool its own lease, the pools spread over the live instances
            shards = Shards(store, mpp.name, mpp.leader_ttl, [p.name for p in config.pool])
            leadership = shards
            hub = Hub(
                config,
                states(config, store),
                owner=shards.owner,
                leading=lambda: any(lease.held for lease in shards.leases.values()),
                leaders=shards.leaders,
            )
        else:
            leadership = Leadership(store, mpp.name, mpp.leader_ttl)
            hub = Hub(
                config,
                states(config, store),
                leader=leadership.leader,
                owner=leadership.owner,
                leading=lambda: leadership.held,
            )
        workers, executor = make_workers(
            config,
            store,
            publishers=(hub.publish,),
            leadership=leadership if isinstance(leadership, Leadership) else None,
            locks=hub.lock,
            reports_to=hub.set_reports,
            leases=shards.leases if mpp.shard else None,
        )
        # [[checkpoint]]: a cut-off instance neither leads nor sends writes (mpp.run.reach)
        monitor = ReachMonitor(config, store, executor.store) if config.checkpoint else None
        if monitor is not None:
            if isinstance(leadership, Shards):
                leadership.bar(monitor.barred)
            else:
                leadership.barred = monitor.barred
            hub.barred = writes_barred(monitor, hub.states.values)
            hub.reach = monitor.report
            monitor.listeners.extend(w.note_reach for w in workers)

            async def resign_now(before: Reach, now: Reach) -> None:
                """Give the lease up at once, not at the next renewal (a third of the
                TTL later): the other instances may take it from now on."""
                if now.cut_off:
                    await asyncio.to_thread(leadership.renew)

            monitor.listeners.append(resign_now)
        from mpp.run.services import Integrations  # the web stack: only `run` needs it

        integrations: Integrations | None = None
        systemd = Systemd()
        if systemd.enabled:
            # every publish is a cycle done: the first one makes mpp ready, each one feeds
            # the watchdog (a hung loop stops feeding it, and systemd restarts mpp)
            def notify(state: PoolState, events: tuple[Event, ...]) -> None:
                systemd.ready(f"polling {len(workers)} pool(s) as {leadership.owner}")
                systemd.alive()

            hub.listeners.append(notify)
        try:
            # API, agent-check port, metrics and notifications: bound and checked before
            # the loop starts, served in it, stopped by the same signal. "started" comes
            # after them, right before the loop installs its signal handlers.
            integrations = Integrations(config, hub, workers)
            logging.getLogger("mpp").info(
                "mpp %s started as %s: %d pool(s), interval %gs, state %s, %s loop, %s",
                __version__,
                leadership.owner,
                len(workers),
                config.mpp.interval,
                config.state_location,
                eventloop.chosen(),
                probe_driver_note(),
            )
            eventloop.run(
                _serve(
                    workers,
                    leadership,
                    show,
                    lambda: document(
                        config,
                        hub.states,
                        hub.leader(),
                        hub.reports,
                        leaders=hub.leaders() if hub.leaders is not None else None,
                        reach={r.instance: r} if (r := hub.reach()) is not None else None,
                    ),
                    integrations.run,
                    monitor,
                )
            )
        finally:
            systemd.stopping()
            leadership.resign()
            if integrations is not None:
                integrations.close()
            _close_workers(workers, executor)
            if monitor is not None:
                monitor.close()
            store.close()
            logging.getLogger("mpp").info("mpp stopped")


async def _serve(
    workers: list[PoolWorker],
    leadership: Leadership | Shards,
    show: bool,
    doc: Callable[[], dict[str, Any]],
    services: Callable[[asyncio.Event], Awaitable[None]] | None = None,
    monitor: ReachMonitor | None = None,
) -> None:
    """The loop, the services and the live table share one stop event, set by the
    signals, so SIGTERM ends all of them together and `run`'s cleanup follows. The
    checkpoints' first round comes before the first lease renewal: an instance that starts
    cut off never takes the lease."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    extra = [services(stop)] if services is not None else []
    if monitor is not None:
        await monitor.settle()
        extra.append(monitor.run(stop))
    if not show:
        await asyncio.gather(run_forever(workers, stop, leadership), *extra)
        return
    with Live(table(doc()), console=console, auto_refresh=False) as live:

        async def refresh() -> None:
            while not stop.is_set():
                live.update(table(doc()), refresh=True)
                await asyncio.sleep(0.25)

        await asyncio.gather(run_forever(workers, stop, leadership), refresh(), *extra)


def _close_workers(workers: list[PoolWorker], executor: Threads) -> None:
    """Without waiting: a probe stuck on a dead node must not hold up the exit."""
    for w in workers:
        w.close()
    executor.shutdown(wait=False, cancel_futures=True)


def _setup_logging(live: bool) -> None:
    """Rich lines would garble a log file and plain ones the live table: one or the other."""
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
    # uvicorn's lines ("Invalid HTTP request received." for every garbage request on the
    # API port) went to Python's last-resort handler: bare text, no time or level, one per
    # request. Same format as mpp's, and each distinct line at most once a minute.
    server = logging.getLogger("uvicorn")
    server.handlers[:] = [handler]
    server.setLevel(logging.INFO)
    server.propagate = False
    error_log = logging.getLogger("uvicorn.error")
    error_log.filters[:] = [f for f in error_log.filters if not isinstance(f, Throttle)]
    error_log.addFilter(Throttle(60.0))
