"""What monitoring asks of mpp itself rather than of the pools: Prometheus metrics, and
whether the daemon's poll loops are alive (a stale loop serves old answers to every check)."""

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from mpp import __version__
from mpp.publish.api.context import Ctx
from mpp.publish.api.documents import TEXT, HealthDoc
from mpp.publish.api.security import ReadGuard
from mpp.publish.metrics import CONTENT_TYPE


async def get_metrics(ctx: Ctx) -> Response:
    if ctx.metrics is None:
        return PlainTextResponse("")
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)


async def health(ctx: Ctx) -> Response:
    """200 while every pool's poll loop has completed a cycle recently; 503 otherwise."""
    now = time.monotonic()
    report: dict[str, dict[str, float | int | None]] = {}
    fresh = True
    for name in ctx.pools:
        seen = ctx.liveness.seen.get(name)
        if seen is None:
            fresh = False
            report[name] = {"cycle": None, "seconds_since_cycle": None}
            continue
        age = now - seen[1]
        fresh = fresh and age <= ctx.stale_after
        report[name] = {"cycle": seen[0], "seconds_since_cycle": round(age, 3)}
    hub = ctx.hub
    leader = hub.leader()
    body: dict[str, Any] = {
        "status": "ok" if fresh else "stale",
        "version": __version__,
        "role": None if hub.owner is None else "leader" if leader == hub.owner else "follower",
        "leader": leader,
        "pools": report,
    }
    if hub.leaders is not None:  # pools shared among instances: this one leads some
        body["role"] = "shard"
        body["owner"] = hub.owner
        body["leads"] = sorted(p for p in ctx.pools if hub.leads(p))
    return JSONResponse(body, 200 if fresh else 503)


def router(open_reads: bool) -> APIRouter:
    """Health stays open even when reads are not: a supervisor probes it without a token,
    and it tells whether mpp is alive, not what the pools are doing."""
    routes = APIRouter()
    routes.add_api_route(
        "/metrics",
        get_metrics,
        response_class=PlainTextResponse,
        responses={200: {"content": TEXT, "description": "Prometheus text format"}},
        dependencies=ReadGuard.of(open_reads).dependencies,
    )
    routes.add_api_route(
        "/v1/health",
        health,
        response_model=None,
        responses={200: {"model": HealthDoc}, 503: {"model": HealthDoc}},
    )
    return routes
