"""`mpp status`, `mpp history`, `mpp is-active`: what the store says, nothing more.

They read the store only: they never touch MySQL and need no password, so they answer the
same whether the daemon runs or not, and monitoring can call them as often as it likes.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import closing
from typing import Any

import click
from rich.live import Live

from mpp.cli.common import Ctx, console, errors, fail, pass_ctx
from mpp.config import Config
from mpp.model import PoolState, State
from mpp.publish.view import document, table
from mpp.store import Store


def states(config: Config, store: Store) -> dict[str, PoolState | None]:
    """Every configured pool's stored state; None for a pool mpp has not polled yet."""
    out: dict[str, PoolState | None] = {}
    for pool in config.pool:
        snap = store.load(pool.name)
        out[pool.name] = snap.state if snap else None
    return out


def status_doc(c: Ctx, pool: str | None) -> dict[str, Any]:
    """The status document (`mpp poll` prints it too), cut down to POOL when one is named."""
    config = c.config
    if pool is not None:
        config.get_pool(pool)
    with closing(c.store()) as store:
        found = store.leader()
        reports = {p.name: store.reports(p.name) for p in config.pool}
        leaders: dict[str, str | None] | None = None
        if config.mpp.shard:
            held = store.leaders()
            leaders = {p.name: held.get(p.name) for p in config.pool}
        doc = document(
            config,
            states(config, store),
            found.owner if found else None,
            reports,
            leaders=leaders,
            reach=store.reach(),
        )
    if pool is not None:
        doc["pools"] = [p for p in doc["pools"] if p["name"] == pool]
    return doc


@click.command()
@click.argument("pool", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--watch", is_flag=True, help="Refresh every poll interval until Ctrl-C.")
@pass_ctx
def status(c: Ctx, pool: str | None, as_json: bool, watch: bool) -> None:
    """Show every node's STATE and STATUS (from the store; no MySQL round-trip)."""
    with errors():
        if as_json and not watch:
            click.echo(json.dumps(status_doc(c, pool), indent=2))
            return
        if not watch:
            console.print(table(status_doc(c, pool)))
            return
        with Live(table(status_doc(c, pool)), console=console, auto_refresh=False) as live:
            try:
                while True:
                    time.sleep(c.config.mpp.interval)
                    live.update(table(status_doc(c, pool)), refresh=True)
            except KeyboardInterrupt:
                pass


@click.command(name="is-active")
@click.argument("node")
@pass_ctx
def is_active(c: Ctx, node: str) -> None:
    """Print OK and exit 0 if NODE (name or HOST:PORT) is ACTIVE, else NO and exit 1."""
    with errors():
        pool, n = c.config.find_node(node)
        with closing(c.store()) as store:
            snap = store.load(pool.name)
        active = (
            snap is not None
            and snap.state.has(n.name)
            and (snap.state.node(n.name).state is State.ACTIVE)
        )
    click.echo("OK" if active else "NO")
    sys.exit(0 if active else 1)


def _known_or_fail(config: Config, store: Store, pool: str | None, node: str | None) -> None:
    """An empty history of a pool or node nobody knows is a typo, not a quiet pool: say so
    (as the API's 404 does). A pool or node removed from the config keeps its history."""
    pools = sorted({p.name for p in config.pool} | set(store.pools()))
    if pool is not None and pool not in pools:
        fail(f"{config.path}: no pool named {pool!r} (pools: {', '.join(pools)})", 2)
    nodes = sorted({n.name for p in config.pool if pool in (None, p.name) for n in p.node})
    if node is not None and node not in nodes:
        fail(f"{config.path}: no node named {node!r} (nodes: {', '.join(nodes)})", 2)


@click.command()
@click.option("--pool", default=None, help="Only this pool.")
@click.option("--node", default=None, help="Only this node.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def history(c: Ctx, pool: str | None, node: str | None, limit: int, as_json: bool) -> None:
    """Every state change (and status step) with its reason, oldest first."""
    with errors(), closing(c.store()) as store:
        events = store.history(pool, node, limit)
        if not events:
            _known_or_fail(c.config, store, pool, node)
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
