"""Load-balancer checks: `UP <reason>` (200) or `DOWN <reason>` (503) in plain text.

A check is what every HAProxy, F5 and smart DNS sends each second per server, so it is
answered from the Hub alone, and well-formed checks skip FastAPI altogether (FastChecks).
The documented routes and the fast path answer from the one `check_text`, so they cannot
disagree; the routes remain for everything the fast path declines (errors above all).
"""

import re
from collections.abc import Callable
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mpp.config import parse_duration
from mpp.publish.api.context import Context, Ctx, Endpoint
from mpp.publish.api.documents import CHECK
from mpp.publish.api.security import ReadGuard
from mpp.publish.roles import Role, check_node, check_pool

DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"
_DURATION = re.compile(DURATION_PATTERN)

MaxLag = Annotated[
    str | None,
    Query(
        pattern=DURATION_PATTERN,
        description='lag limit for `ro` instead of the pool\'s max_lag, e.g. "5s" or "500ms"',
    ),
]

Answer = Callable[[str, str | None, Role, float | None], tuple[int, str]]


def check_text(
    ctx: Context, pool: str, node: str | None, role: Role, max_lag: float | None
) -> tuple[int, str]:
    """(HTTP status, body) of a check; the one place both the routes and the fast path
    answer from. `pool` and `node` must be known (the callers have checked)."""
    state = ctx.hub.state(pool)
    if node is None:
        up, reason = check_pool(ctx.specs[pool], state, role, max_lag, ctx.hub.barred())
    else:
        up, reason = check_node(ctx.specs[pool], state, node, role, max_lag, ctx.hub.barred())
    return (200, f"UP {reason}\n") if up else (503, f"DOWN {reason}\n")


def lag_or_422(max_lag: str | None) -> float | None:
    """The query's pattern lets through what parse_duration may still refuse: say so as a
    validation error, like the pattern's own."""
    if max_lag is None:
        return None
    try:
        return parse_duration(max_lag)
    except ValueError as err:
        raise RequestValidationError(
            [{"loc": ("query", "max_lag"), "msg": str(err), "type": "value_error"}]
        ) from None


async def check_node_route(
    pool: str, node: str, role: Role, ctx: Ctx, max_lag: MaxLag = None
) -> Response:
    """UP (200) or DOWN (503) for a load balancer: HAProxy httpchk, F5 ECV, keepalived."""
    ctx.pool_or_404(pool)
    ctx.node_or_404(pool, node)
    status, text = check_text(ctx, pool, node, role, lag_or_422(max_lag))
    return PlainTextResponse(text, status)


async def check_pool_route(pool: str, role: Role, ctx: Ctx, max_lag: MaxLag = None) -> Response:
    """Pool level: `rw` is UP when this site has an ACTIVE node (smart DNS, F5 wide IPs)."""
    ctx.pool_or_404(pool)
    status, text = check_text(ctx, pool, None, role, lag_or_422(max_lag))
    return PlainTextResponse(text, status)


def router(open_reads: bool) -> APIRouter:
    """Node checks before pool checks: `/v1/check/{pool}/{node}/{role}` is the longer match."""
    guard = ReadGuard.of(open_reads)
    routes = APIRouter(dependencies=guard.dependencies)
    responses = {**CHECK, **guard.errors}
    checks: list[tuple[str, Endpoint]] = [
        ("/v1/check/{pool}/{node}/{role}", check_node_route),
        ("/v1/check/{pool}/{role}", check_pool_route),
    ]
    for path, endpoint in checks:
        routes.add_api_route(path, endpoint, response_class=PlainTextResponse, responses=responses)
    return routes


class FastChecks:
    """Answers well-formed check requests before FastAPI's routing and validation.

    A check is what load balancers send every second per server; the framework's per-request
    work (routing, dependency solving, validation) was most of its cost. The fast path
    answers only requests that are certainly valid (known pool, node and role; max_lag
    absent or a duration) with the same `check_text` as the routes; everything else, errors
    included, goes on to the documented routes unchanged.
    """

    def __init__(self, app: ASGIApp, pools: dict[str, frozenset[str]], answer: Answer) -> None:
        self.app = app
        self.pools = pools
        self.answer = answer
        self.roles = {r.value: r for r in Role}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            found = self._answer(scope["path"], scope["query_string"])
            if found is not None:
                status, text = found
                body = text.encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _answer(self, path: str, query: bytes) -> tuple[int, str] | None:
        if not path.startswith("/v1/check/"):
            return None
        parts = path[10:].split("/")
        if len(parts) not in (2, 3) or parts[0] not in self.pools:
            return None
        role = self.roles.get(parts[-1])
        if role is None or (len(parts) == 3 and parts[1] not in self.pools[parts[0]]):
            return None
        max_lag: float | None = None
        if query:
            for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if key != "max_lag":
                    continue
                if max_lag is not None or not _DURATION.fullmatch(value):
                    return None
                try:
                    max_lag = parse_duration(value)
                except ValueError:
                    return None
        return self.answer(parts[0], parts[1] if len(parts) == 3 else None, role, max_lag)
