"""The status documents, their history and their live stream, and the dashboard on them.

Every document is answered from the Hub (the same mpp.publish.view document as
`mpp status --json`), never from MySQL; only the history comes from the store, whose job
it is.
"""

import asyncio
import logging
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from mpp.config import Config
from mpp.model import AgentReport, Event
from mpp.publish.api.context import Ctx, Endpoint
from mpp.publish.api.documents import (
    NOT_FOUND,
    AgentReportDoc,
    EventDoc,
    NodeDoc,
    PoolDoc,
    PoolsDoc,
    ReachDoc,
    error_response,
)
from mpp.publish.api.security import ReadGuard
from mpp.publish.api.stream import StreamsFull
from mpp.publish.view import pool_document, reach_document, report_document
from mpp.store import StoreError, open_store

log = logging.getLogger("mpp.api")

HISTORY_MAX = 10000
DASHBOARD_HTML = (Path(__file__).parent / "dashboard.html").read_text(encoding="utf-8")


def history(config: Config, pool: str | None, node: str | None, limit: int) -> list[Event]:
    """A read connection of its own per request: SQLite connections belong to one thread."""
    store = open_store(config)
    try:
        return store.history(pool, node, limit)
    finally:
        store.close()


def _pool(ctx: Ctx, pool: str) -> dict[str, Any]:
    return pool_document(ctx.pool_or_404(pool), ctx.hub.state(pool), ctx.hub.reports.get(pool))


def reports(config: Config, pool: str) -> dict[str, AgentReport]:
    """As `history`: a store connection of its own, in a worker thread."""
    store = open_store(config)
    try:
        return store.reports(pool)
    finally:
        store.close()


async def get_agents(pool: str, ctx: Ctx) -> Response:
    """Each node agent's latest report, read from the store now (the documents show what
    the daemon last read). `age_by_agent_clock` compares the agent host's clock with this
    one's: for people to read; mpp itself dates a report by when it first saw it."""
    ctx.pool_or_404(pool)
    try:
        found = await asyncio.to_thread(reports, ctx.config, pool)
    except StoreError as err:
        raise HTTPException(503, str(err)) from None
    now = time.time()
    body = {n.name: report_document(found.get(n.name), now) for n in ctx.pools[pool].node}
    return JSONResponse(body)


async def get_pools(ctx: Ctx) -> Response:
    """Every pool, exactly as `mpp status --json`."""
    return JSONResponse(ctx.document())


async def get_checkpoints(ctx: Ctx) -> Response:
    """This instance's checkpoints as it probes them now, and the place of the cut they
    show (`mpp status` shows every instance's, from the store)."""
    mine = ctx.hub.reach()
    if mine is None:
        body: dict[str, Any] = {
            "instance": ctx.config.mpp.name,
            "at": None,
            "age": 0.0,
            "cut": "none",
            "cut_off": False,
            "reason": "",
            "warning": "no [[checkpoint]] in this instance's configuration",
            "checkpoints": [],
        }
        return JSONResponse(body)
    return JSONResponse(reach_document(mine, time.time()))


async def get_pool(pool: str, ctx: Ctx) -> Response:
    return JSONResponse(_pool(ctx, pool))


async def get_node(pool: str, node: str, ctx: Ctx) -> Response:
    doc = _pool(ctx, pool)
    ctx.node_or_404(pool, node)
    return JSONResponse(next(n for n in doc["nodes"] if n["name"] == node))


async def get_stream(ctx: Ctx) -> Response:
    """Live updates (Server-Sent Events): `history` (the last 50 events, then each new
    batch) and `pools` (the document of GET /v1/pools, again after every change)."""
    broadcast = ctx.broadcast
    try:
        sub = broadcast.subscribe()
    except StreamsFull as err:
        raise HTTPException(503, str(err)) from None
    try:
        recent = await asyncio.to_thread(history, ctx.config, None, None, 50)
    except StoreError as err:  # the live part works without the store: start empty
        log.warning("dashboard stream: history unavailable: %s", err)
        recent = []
    except BaseException:
        broadcast.unsubscribe(sub)
        raise
    return StreamingResponse(
        broadcast.stream(sub, recent),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def get_dashboard() -> Response:
    """The live web dashboard: a static page that reads /v1/stream."""
    return HTMLResponse(DASHBOARD_HTML)


async def get_history(
    ctx: Ctx,
    pool: Annotated[str | None, Query(description="only this pool")] = None,
    node: Annotated[str | None, Query(description="only this node")] = None,
    limit: Annotated[int, Query(ge=1, le=HISTORY_MAX)] = 50,
) -> Response:
    """State changes and status steps with their reasons, oldest first (from the store)."""
    if pool is not None:
        ctx.pool_or_404(pool)
    if node is not None:
        where = [pool] if pool is not None else list(ctx.pools)
        if not any(node in ctx.nodes[p] for p in where):
            raise HTTPException(
                404, f"no node named {node!r}" + (f" in pool {pool!r}" if pool else "")
            )
    events = await asyncio.to_thread(history, ctx.config, pool, node, limit)
    return JSONResponse([e.__dict__ for e in events])


def router(open_reads: bool) -> APIRouter:
    """The dashboard page is open even when reads are not: it holds no data, and asks for
    the token itself before it reads the stream."""
    guard = ReadGuard.of(open_reads)
    errors = {**NOT_FOUND, **guard.errors}
    routes = APIRouter()
    documents: list[tuple[str, Endpoint, type[BaseModel]]] = [
        ("/v1/pools", get_pools, PoolsDoc),
        ("/v1/pools/{pool}", get_pool, PoolDoc),
        ("/v1/pools/{pool}/nodes/{node}", get_node, NodeDoc),
        ("/v1/checkpoints", get_checkpoints, ReachDoc),
    ]
    for path, endpoint, ok in documents:
        routes.add_api_route(
            path,
            endpoint,
            response_model=None,
            responses={200: {"model": ok}, **errors},
            dependencies=guard.dependencies,
        )
    routes.add_api_route(
        "/v1/pools/{pool}/agents",
        get_agents,
        response_model=None,
        responses={
            200: {"model": dict[str, AgentReportDoc | None]},
            **errors,
            503: error_response("the store cannot be read"),
        },
        dependencies=guard.dependencies,
    )
    routes.add_api_route(
        "/v1/stream",
        get_stream,
        response_model=None,
        responses={
            200: {"content": {"text/event-stream": {}}},
            **errors,
            503: error_response("too many live streams"),
        },
        dependencies=guard.dependencies,
    )
    routes.add_api_route("/", get_dashboard, include_in_schema=False)
    routes.add_api_route(
        "/v1/history",
        get_history,
        response_model=None,
        responses={200: {"model": list[EventDoc]}, **errors},
        dependencies=guard.dependencies,
    )
    return routes
