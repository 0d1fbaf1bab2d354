"""`mpp recover`, `mpp activate`, `mpp fail`, `mpp maintenance`: the operator's say over one
node's STATE.

They go through the same pure logic and compare-and-set as the daemon (mpp.run.transact),
so an operator's change and a poll cycle can never overwrite each other. Unlike a
switchover they need no daemon: the change is made in the store and printed at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import closing

import click

from mpp.cli.common import Ctx, console, errors, fail, pass_ctx
from mpp.config import parse_duration
from mpp.model import Activate, Command, Decision, Fail, Maintenance, Recover
from mpp.run.transact import command


def _change(
    c: Ctx, name: str, order: Callable[[str], Command], pool_name: str | None = None
) -> tuple[Decision, str]:
    """NODE may be given as HOST:PORT (or POOL/NODE), but the command must name the node.
    Returns the decision and the node's name."""
    with errors():
        if pool_name is not None:
            c.config.get_pool(pool_name)  # a typo in --pool is named as such
        pool, node = c.config.find_node(f"{pool_name}/{name}" if pool_name else name)
        with closing(c.store()) as store:
            decision = command(store, pool.spec(), order(node.name))
        if not decision.events:
            console.print(f"{pool.name}/{node.name}: no change")
        for e in decision.events:
            console.print(f"{e.pool}/{e.node}: {e.old} -> {e.new}  ({e.reason})", highlight=False)
    return decision, node.name


@click.command()
@click.argument("node")
@pass_ctx
def recover(c: Ctx, node: str) -> None:
    """Return a FAILED node to service: UNKNOWN now, STANDBY once it polls healthy."""
    _change(c, node, Recover)


@click.command()
@click.argument("node")
@pass_ctx
def activate(c: Ctx, node: str) -> None:
    """Make a healthy node ACTIVE (the old ACTIVE becomes STANDBY in the same step)."""
    _change(c, node, Activate)


@click.command(name="fail")
@click.argument("node")
@click.option("--force", is_flag=True, help="Allow failing the ACTIVE node with no standby.")
@pass_ctx
def fail_node(c: Ctx, node: str, force: bool) -> None:
    """Mark a node FAILED; an ACTIVE node hands over to the best healthy STANDBY."""
    _change(c, node, lambda name: Fail(name, force))


def _positive_duration(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    if seconds <= 0:
        raise click.BadParameter("must be longer than 0s; write it like 2h or 30m")
    return seconds


@click.command()
@click.argument("node")
@click.argument("switch", metavar="on|off", type=click.Choice(["on", "off"]))
@click.option(
    "--for",
    "duration",
    default=None,
    callback=_positive_duration,
    metavar="DURATION",
    help="End the maintenance by itself after this long (e.g. 2h); default: until off.",
)
@click.option("--pool", "pool_name", default=None, help="The node's pool, when names repeat.")
@pass_ctx
def maintenance(
    c: Ctx, node: str, switch: str, duration: float | None, pool_name: str | None
) -> None:
    """Leave NODE alone for planned work: no failover to or from it, no fencing, no local
    restarts by its agent, until `off` (or --for runs out)."""
    on = switch == "on"
    if duration is not None and not on:
        fail("--for goes with `on` only: `off` ends the maintenance now", 2)
    decision, name = _change(c, node, lambda n: Maintenance(n, on, duration), pool_name)
    if not decision.state.has(name):
        return
    ns, where = decision.state.node(name), f"{decision.state.name}/{name}"
    if (ns.maintenance_since is not None) is not on:
        # a logic that does not know the command leaves the state as it was: say so rather
        # than let a script believe the node is left alone
        logic = c.config.get_pool(decision.state.name).logic
        fail(f"{where}: the pool's logic ({logic}) did not turn maintenance {switch}", 1)
    if ns.maintenance_since is None:
        console.print(f"{where}: not in maintenance", highlight=False)
    elif ns.maintenance_until is None:
        console.print(f"{where}: in maintenance until turned off", highlight=False)
    else:
        until = dt.datetime.fromtimestamp(ns.maintenance_until).astimezone()
        shown = until.isoformat(sep=" ", timespec="seconds")
        console.print(f"{where}: in maintenance until {shown}", highlight=False)
