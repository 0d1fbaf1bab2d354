"""`mpp recover`, `mpp activate`, `mpp fail`: the operator's say over one node's STATE.

They go through the same pure logic and compare-and-set as the daemon (mpp.run.transact),
so an operator's change and a poll cycle can never overwrite each other. Unlike a
switchover they need no daemon: the change is made in the store and printed at once.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing

import click

from mpp.cli.common import Ctx, console, errors, pass_ctx
from mpp.model import Activate, Command, Fail, Recover
from mpp.run.transact import command


def _change(c: Ctx, name: str, order: Callable[[str], Command]) -> None:
    """NODE may be given as HOST:PORT, but the command must name the node."""
    with errors():
        pool, node = c.config.find_node(name)
        with closing(c.store()) as store:
            decision = command(store, pool.spec(), order(node.name))
        if not decision.events:
            console.print(f"{pool.name}/{node.name}: no change")
        for e in decision.events:
            console.print(f"{e.pool}/{e.node}: {e.old} -> {e.new}  ({e.reason})", highlight=False)


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
