"""Operator commands: the same pure logic and compare-and-set as `mpp recover/activate/fail`
(through the `commands` callable mpp.run hands in), then published to the Hub so the checks
reflect them at once. Every command needs the bearer token.
"""

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from mpp.config import parse_duration
from mpp.model import PoolState
from mpp.model import command as order  # the commands, as order.Recover(...) etc.
from mpp.model.command import Command, CommandRefused
from mpp.publish.api.context import Context, Ctx, Endpoint
from mpp.publish.api.documents import (
    AUTH,
    NOT_FOUND,
    CommandDoc,
    ErrorDoc,
    Responses,
    error_response,
)
from mpp.publish.api.security import TOKEN
from mpp.publish.log import log_event
from mpp.publish.view import pool_document
from mpp.store import StoreError

log = logging.getLogger("mpp.api")


class FailBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: bool = False


class SwitchoverBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str | None = None  # default: the best healthy STANDBY
    timeout: str | None = None  # duration, e.g. "10s"; default: the pool's switchover_timeout


class MaintenanceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    on: bool
    # duration, e.g. "2h"; only with on; without it the node stays in maintenance until off
    duration: str | None = Field(None, alias="for")


class TakeoverBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str
    force: bool = False


async def mutate(
    ctx: Context,
    pool: str,
    node: str | None,
    command: Command,
    status: int = 200,
    unapplied: Callable[[PoolState], str | None] | None = None,
) -> Response:
    """Commit with compare-and-set, then publish, holding the pool's lock that the poll
    loop holds around its own commit and publish: no cycle can publish in between and
    leave the Hub with an older state than the store. The store work runs in a thread
    (a remote etcd must not stall the loop that serves the checks). `unapplied`: why the
    decided state is not what the command asked for (a 409), None when it is."""
    pool_config = ctx.pool_or_404(pool)
    if node is not None:
        ctx.node_or_404(pool, node)
    spec = ctx.specs[pool]
    if ctx.commands is None:
        raise HTTPException(503, "this API serves reads only: operator commands are off")
    run = ctx.commands

    async with ctx.hub.lock(pool):
        try:
            decision = await asyncio.to_thread(run, spec, command)
        except CommandRefused as err:
            raise HTTPException(409, str(err)) from None
        except StoreError as err:
            raise HTTPException(503, str(err)) from None
        ctx.hub.publish(decision.state, decision.events)
    why = unapplied(decision.state) if unapplied is not None else None
    if why is not None:
        raise HTTPException(409, why)
    log.info("api: %s %s/%s", type(command).__name__.lower(), pool, node or "-")
    for event in decision.events:
        log_event(event)
    body: dict[str, Any] = {
        "pool": pool_document(pool_config, decision.state, ctx.hub.reports.get(pool)),
        "events": [e.__dict__ for e in decision.events],
    }
    request = decision.state.request
    if request is not None:
        body["request"] = {"id": request.id, "kind": request.kind, "to": request.to}
    return JSONResponse(body, status)


async def recover(pool: str, node: str, ctx: Ctx) -> Response:
    """FAILED_* -> UNKNOWN; STANDBY once it polls healthy (as `mpp recover`)."""
    return await mutate(ctx, pool, node, order.Recover(node))


async def activate(pool: str, node: str, ctx: Ctx) -> Response:
    """Make a healthy node ACTIVE, pinned (as `mpp activate`)."""
    return await mutate(ctx, pool, node, order.Activate(node))


async def fail(pool: str, node: str, ctx: Ctx, body: FailBody | None = None) -> Response:
    """Mark FAILED; an ACTIVE node hands over at once (as `mpp fail [--force]`)."""
    return await mutate(ctx, pool, node, order.Fail(node, body.force if body else False))


async def maintenance(pool: str, node: str, body: MaintenanceBody, ctx: Ctx) -> Response:
    """Maintenance on or off (as `mpp maintenance NODE on|off [--for D]`): no failover to or
    from the node, no fencing, no local restarts by its agent, until off or `for` runs out."""
    ctx.pool_or_404(pool)
    ctx.node_or_404(pool, node)
    duration: float | None = None
    if body.duration is not None:
        if not body.on:
            raise HTTPException(422, 'invalid request: body.for: only with "on": true')
        try:
            duration = parse_duration(body.duration)
        except ValueError:  # its message quotes the value: the API never echoes input
            duration = None
        if duration is None or duration <= 0:
            raise HTTPException(
                422,
                "invalid request: body.for: not a positive duration of at most 365 days; "
                'write it like "2h" or "30m"',
            )

    def unapplied(state: PoolState) -> str | None:
        """A logic that does not know the command leaves the node as it was: say so."""
        held = state.has(node) and state.node(node).maintenance_since is not None
        if held is body.on:
            return None
        logic = ctx.pools[pool].logic
        return f"the pool's logic ({logic}) did not turn maintenance {'on' if body.on else 'off'}"

    command = order.Maintenance(node, body.on, duration)
    return await mutate(ctx, pool, node, command, unapplied=unapplied)


async def switchover(pool: str, ctx: Ctx, body: SwitchoverBody | None = None) -> Response:
    """Planned switchover (as `mpp switchover`); primary-replica pools only."""
    body = body or SwitchoverBody()
    pool_config = ctx.pool_or_404(pool)
    if body.to is not None:
        ctx.node_or_404(pool, body.to)
    try:
        timeout = parse_duration(body.timeout) if body.timeout else None
    except ValueError:  # its message quotes the value: the API never echoes input
        raise HTTPException(
            422,
            "invalid request: body.timeout: not a duration of at most 365 days; write it like "
            '"10s" or "500ms"',
        ) from None
    command = order.Switchover(body.to, timeout or pool_config.switchover_timeout, uuid.uuid4().hex)
    return await mutate(ctx, pool, None, command, 202)


async def takeover(pool: str, body: TakeoverBody, ctx: Ctx) -> Response:
    """Promote a node without the old primary (as `mpp takeover`)."""
    ctx.pool_or_404(pool)
    ctx.node_or_404(pool, body.to)
    return await mutate(ctx, pool, None, order.Takeover(body.to, body.force, uuid.uuid4().hex), 202)


async def acknowledge(pool: str, ctx: Ctx) -> Response:
    """Lift the anti-flapping block and clear the pool's alert (as `mpp acknowledge`)."""
    return await mutate(ctx, pool, None, order.Acknowledge())


APPLIED: Responses = {
    200: {"model": CommandDoc},
    **NOT_FOUND,
    **AUTH,
    409: {"model": ErrorDoc, "description": "refused: the message says why and what to do"},
}
BAD_JSON: Responses = {400: error_response("the body is not valid JSON")}
# Topology commands only record a request: the daemon's next cycle carries it out with
# fresh observations (202); follow it in /v1/pools/{pool} (switching) and /v1/history.
RECORDED: Responses = {
    202: {"model": CommandDoc, "description": "recorded; the daemon carries it out next"},
    **{k: v for k, v in APPLIED.items() if k != 200},
    **BAD_JSON,
}


def router() -> APIRouter:
    routes = APIRouter(dependencies=[TOKEN])
    commands: list[tuple[str, Endpoint, int | None, Responses]] = [
        ("/v1/pools/{pool}/nodes/{node}/recover", recover, None, APPLIED),
        ("/v1/pools/{pool}/nodes/{node}/activate", activate, None, APPLIED),
        ("/v1/pools/{pool}/nodes/{node}/fail", fail, None, {**APPLIED, **BAD_JSON}),
        ("/v1/pools/{pool}/nodes/{node}/maintenance", maintenance, None, {**APPLIED, **BAD_JSON}),
        ("/v1/pools/{pool}/switchover", switchover, 202, RECORDED),
        ("/v1/pools/{pool}/takeover", takeover, 202, RECORDED),
        ("/v1/pools/{pool}/acknowledge", acknowledge, None, APPLIED),
    ]
    for path, endpoint, status, responses in commands:
        routes.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            response_model=None,
            status_code=status,
            responses=responses,
        )
    return routes
