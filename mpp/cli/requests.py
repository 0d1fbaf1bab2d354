"""`mpp switchover`, `mpp takeover`, `mpp acknowledge`: the operator's topology buttons.

Switchover and takeover are recorded as a request in the store (compare-and-set); the
running daemon carries them out on its next cycle with fresh observations and reports in
the history, which this command follows until the outcome is known. One executor (the
daemon) means a crash of this command changes nothing and two operators cannot race.
"""

from __future__ import annotations

import sys
import time
import uuid
from contextlib import closing
from dataclasses import replace

import click

from mpp.cli.common import Ctx, console, errors, pass_ctx
from mpp.config import parse_duration
from mpp.model import Acknowledge, ActionKind, Command, Event, PoolState, Switchover, Takeover
from mpp.run.transact import command


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _submit(c: Ctx, pool_name: str, order: Command) -> int:
    """Record the command; returns how many history events existed, to follow from there."""
    spec = c.config.get_pool(pool_name).spec()
    with closing(c.store()) as store:
        command(store, spec, order)
        return len(store.history(pool_name, limit=1_000_000))


def _follow(
    c: Ctx, pool_name: str, request_id: str, seen: int, wait: float, target: str = ""
) -> bool:
    """Wait for the daemon to carry the request out; print what happened. True on success.
    `target`: a takeover's node (the fence of the primary it replaces may fail, see
    `_report`)."""
    interval = c.config.mpp.interval
    pickup = 3 * interval + 5.0
    started = time.monotonic()
    with closing(c.store()) as store:
        while True:
            snap = store.load(pool_name)
            state = snap.state if snap else None
            pending = state is not None and _pending(state, request_id)
            if state is not None and not pending:
                events = store.history(pool_name, limit=1_000_000)[seen:]
                return _report(events, target)
            waited = time.monotonic() - started
            picked_up = state is not None and state.request is None
            if (not picked_up and waited > pickup) or waited > pickup + wait:
                _withdraw(c, pool_name, request_id)
                raise click.ClickException(
                    f"no mpp daemon carried out the request within {waited:.0f}s; is "
                    f"`mpp run` running for pool {pool_name}? The request was withdrawn."
                )
            time.sleep(0.05)


def _pending(state: PoolState, request_id: str) -> bool:
    return any(r is not None and r.id == request_id for r in (state.request, state.switching))


def _withdraw(c: Ctx, pool_name: str, request_id: str) -> None:
    with closing(c.store()) as store:
        snap = store.load(pool_name)
        if snap and snap.state.request and snap.state.request.id == request_id:
            store.save(replace(snap.state, request=None), (), snap.version)


def _report(events: list[Event], takeover_to: str = "") -> bool:
    """False when anything was refused, rolled back, vetoed or FAILED; for a takeover whose
    target was promoted, the fence of another node may fail: the primary it replaces is
    usually the one that cannot be reached (a dead primary, a lost site), and that fence
    runs in the background without holding the promotion (a fence the promotion must
    wait for stops the plan before the Promote, which then never reports ok)."""
    ok = True
    promoted = any(
        e.action is ActionKind.PROMOTE and e.node == takeover_to and e.new == "ok" for e in events
    )
    for e in events:
        if e.kind == "status":
            continue
        expected = promoted and e.action is ActionKind.FENCE and e.node != takeover_to
        if e.new in ("refused", "rolled back", "vetoed", "FAILED") and not expected:
            ok = False
        when = time.strftime("%H:%M:%S", time.localtime(e.at))
        console.print(f"{when} {e.node}: {e.old} -> {e.new}  ({e.reason})", highlight=False)
    return ok


@click.command()
@click.argument("pool")
@click.option("--to", "target", default=None, help="Target node (default: the best STANDBY).")
@click.option(
    "--timeout",
    default=None,
    callback=_duration,
    help="How long writes may stay blocked while the target catches up, then roll back "
    "(default: the pool's switchover_timeout).",
)
@pass_ctx
def switchover(c: Ctx, pool: str, target: str | None, timeout: float | None) -> None:
    """Planned role swap: writes stop, the target catches up, roles swap, old primary
    becomes a replica. Rolled back (old primary writable again) if the target is too slow."""
    with errors():
        request_id = uuid.uuid4().hex
        timeout = timeout or c.config.get_pool(pool).switchover_timeout
        seen = _submit(c, pool, Switchover(target, timeout, request_id))
        console.print(f"switchover of {pool} requested; waiting for the daemon...")
        ok = _follow(c, pool, request_id, seen, timeout + 10.0)
    sys.exit(0 if ok else 1)


@click.command()
@click.argument("pool")
@click.option("--to", "target", required=True, help="The node to promote.")
@click.option(
    "--force", is_flag=True, help="Promote even if another node has transactions it lacks."
)
@pass_ctx
def takeover(c: Ctx, pool: str, target: str, force: bool) -> None:
    """Promote TARGET without the old primary (dead or cut off: the geographic case)."""
    with errors():
        request_id = uuid.uuid4().hex
        seen = _submit(c, pool, Takeover(target, force, request_id))
        console.print(f"takeover of {pool} by {target} requested; waiting for the daemon...")
        wait = c.config.get_pool(pool).catchup_timeout + 10.0
        ok = _follow(c, pool, request_id, seen, wait, target)
    sys.exit(0 if ok else 1)


@click.command()
@click.argument("pool")
@pass_ctx
def acknowledge(c: Ctx, pool: str) -> None:
    """Acknowledge the last failover: lifts the anti-flapping block and clears the alert."""
    with errors():
        _submit(c, pool, Acknowledge())
    console.print(f"{pool}: acknowledged")
