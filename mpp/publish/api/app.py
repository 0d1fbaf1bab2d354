"""The REST API: status documents, load-balancer checks, metrics and operator commands.

Every read is answered from the Hub, the daemon's in-memory state, never from MySQL and
never from the store (history excepted: it is the store's job). That is what makes a check
cheap enough for every HAProxy, F5 and smart DNS to poll each second, and what keeps it
consistent with the status table: the same document (mpp.publish.view) and the same role rules
(mpp.publish.roles) serve every surface.

Mutations go through the same pure logic and compare-and-set as `mpp recover/activate/fail`
and are then published to the Hub, so the checks reflect them at once. They need a bearer
token read from `[api] token_file`; the token is kept as a SecretStr and never written to a
log, a response or an exception.
"""

import asyncio
import hmac
import logging
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict
from starlette.types import ASGIApp, Receive, Scope, Send

from mpp import __version__
from mpp.config import Config, PoolConfig, parse_duration
from mpp.model import (
    Acknowledge,
    Activate,
    Command,
    CommandRefused,
    Event,
    Fail,
    PoolSpec,
    Recover,
    Switchover,
    Takeover,
)
from mpp.publish.api import errors
from mpp.publish.api.context import Commands, Liveness
from mpp.publish.api.documents import AUTH as _AUTH
from mpp.publish.api.documents import CHECK as _CHECK
from mpp.publish.api.documents import NOT_FOUND as _ERR
from mpp.publish.api.documents import TEXT as _TEXT
from mpp.publish.api.documents import (
    CommandDoc,
    ErrorDoc,
    EventDoc,
    HealthDoc,
    NodeDoc,
    PoolDoc,
    PoolsDoc,
)
from mpp.publish.api.documents import error_response as _error
from mpp.publish.api.security import bearer, load_token
from mpp.publish.api.security import open_reads as reads_open
from mpp.publish.api.server import serve
from mpp.publish.api.stream import Broadcast, StreamsFull
from mpp.publish.hub import Hub, guarded
from mpp.publish.log import log_event
from mpp.publish.metrics import CONTENT_TYPE, Metrics
from mpp.publish.roles import Role, check_node, check_pool
from mpp.publish.view import document, pool_document
from mpp.store import StoreError, open_store

log = logging.getLogger("mpp.api")

DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"
_DURATION = re.compile(DURATION_PATTERN)
HISTORY_MAX = 10000
DASHBOARD_HTML = (Path(__file__).parent / "dashboard.html").read_text(encoding="utf-8")


class FailBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: bool = False


class SwitchoverBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str | None = None  # default: the best healthy STANDBY
    timeout: str | None = None  # duration, e.g. "10s"; default: the pool's switchover_timeout


class TakeoverBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str
    force: bool = False


MaxLag = Annotated[
    str | None,
    Query(
        pattern=DURATION_PATTERN,
        description='lag limit for `ro` instead of the pool\'s max_lag, e.g. "5s" or "500ms"',
    ),
]


# -- the app ---------------------------------------------------------------------------------


def create_app(
    config: Config,
    hub: Hub,
    metrics: Metrics | None = None,
    commands: Commands | None = None,
) -> FastAPI:
    """`commands`: runs an operator command through the pool's logic and the store; without
    it (a read-only API) every command answers 503."""
    token = load_token(config)
    open_reads = reads_open(config)
    pools: dict[str, PoolConfig] = {p.name: p for p in config.pool}
    specs: dict[str, PoolSpec] = {p.name: p.spec() for p in config.pool}
    nodes: dict[str, frozenset[str]] = {
        p.name: frozenset(n.name for n in p.node) for p in pools.values()
    }
    liveness = Liveness()
    hub.listeners.append(liveness.listener)
    broadcast = Broadcast(lambda: document(config, hub.states, hub.leader()))
    hub.listeners.append(guarded(broadcast.listener, "dashboard stream"))
    stale_after = (
        3 * config.mpp.interval + config.mpp.connect_timeout + 2 * config.query_timeout + 1.0
    )

    app = FastAPI(
        title="mpp",
        version=__version__,
        description="MySQL/MariaDB pool state: status, load-balancer checks, operator commands.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.broadcast = broadcast  # serve() ends the live streams when mpp stops

    def check_text(
        pool: str, node: str | None, role: Role, max_lag: float | None
    ) -> tuple[int, str]:
        """(HTTP status, body) of a check; the one place both the routes and the fast path
        answer from."""
        state = hub.state(pool)
        if node is None:
            up, reason = check_pool(specs[pool], state, role, max_lag)
        else:
            up, reason = check_node(specs[pool], state, node, role, max_lag)
        return (200, f"UP {reason}\n") if up else (503, f"DOWN {reason}\n")

    if open_reads:
        app.add_middleware(_FastChecks, pools=nodes, answer=check_text)
    errors.install(app)

    def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if token is None:
            raise HTTPException(
                401,
                "mutations disabled: set [api] token_file",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if credentials is None:
            raise HTTPException(
                401, "missing Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"}
            )
        given = credentials.credentials.encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, token.get_secret_value().encode()):
            raise HTTPException(403, "wrong token")

    reads = [] if open_reads else [Depends(require_token)]
    read_errors = {**_ERR, **({} if open_reads else _AUTH)}

    def pool_or_404(pool: str) -> PoolConfig:
        found = pools.get(pool)
        if found is None:
            raise HTTPException(404, f"no pool named {pool!r} (pools: {', '.join(pools)})")
        return found

    def node_or_404(pool: str, node: str) -> None:
        if node not in nodes[pool]:
            known = ", ".join(n.name for n in pools[pool].node)
            raise HTTPException(404, f"pool {pool!r} has no node named {node!r} (nodes: {known})")

    def lag_or_422(max_lag: str | None) -> float | None:
        if max_lag is None:
            return None
        try:
            return parse_duration(max_lag)
        except ValueError as err:
            raise RequestValidationError(
                [{"loc": ("query", "max_lag"), "msg": str(err), "type": "value_error"}]
            ) from None

    # -- reads ------------------------------------------------------------------------------

    @app.get(
        "/v1/pools",
        response_model=None,
        responses={200: {"model": PoolsDoc}, **read_errors},
        dependencies=reads,
    )
    async def get_pools() -> Response:
        """Every pool, exactly as `mpp status --json`."""
        return JSONResponse(document(config, hub.states, hub.leader()))

    @app.get(
        "/v1/pools/{pool}",
        response_model=None,
        responses={200: {"model": PoolDoc}, **read_errors},
        dependencies=reads,
    )
    async def get_pool(pool: str) -> Response:
        return JSONResponse(pool_document(pool_or_404(pool), hub.state(pool)))

    @app.get(
        "/v1/pools/{pool}/nodes/{node}",
        response_model=None,
        responses={200: {"model": NodeDoc}, **read_errors},
        dependencies=reads,
    )
    async def get_node(pool: str, node: str) -> Response:
        doc = pool_document(pool_or_404(pool), hub.state(pool))
        node_or_404(pool, node)
        return JSONResponse(next(n for n in doc["nodes"] if n["name"] == node))

    @app.get(
        "/v1/stream",
        response_model=None,
        responses={
            200: {"content": {"text/event-stream": {}}},
            **read_errors,
            503: _error("too many live streams"),
        },
        dependencies=reads,
    )
    async def get_stream() -> Response:
        """Live updates (Server-Sent Events): `history` (the last 50 events, then each new
        batch) and `pools` (the document of GET /v1/pools, again after every change)."""
        try:
            sub = broadcast.subscribe()
        except StreamsFull as err:
            raise HTTPException(503, str(err)) from None
        try:
            recent = await asyncio.to_thread(_history, config, None, None, 50)
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

    @app.get("/", include_in_schema=False)
    async def get_dashboard() -> Response:
        """The live web dashboard: a static page that reads /v1/stream."""
        return HTMLResponse(DASHBOARD_HTML)

    @app.get(
        "/v1/history",
        response_model=None,
        responses={200: {"model": list[EventDoc]}, **read_errors},
        dependencies=reads,
    )
    async def get_history(
        pool: Annotated[str | None, Query(description="only this pool")] = None,
        node: Annotated[str | None, Query(description="only this node")] = None,
        limit: Annotated[int, Query(ge=1, le=HISTORY_MAX)] = 50,
    ) -> Response:
        """State changes and status steps with their reasons, oldest first (from the store)."""
        if pool is not None:
            pool_or_404(pool)
        if node is not None:
            where = [pool] if pool is not None else list(pools)
            if not any(node in nodes[p] for p in where):
                raise HTTPException(
                    404, f"no node named {node!r}" + (f" in pool {pool!r}" if pool else "")
                )
        events = await asyncio.to_thread(_history, config, pool, node, limit)
        return JSONResponse([e.__dict__ for e in events])

    @app.get(
        "/v1/check/{pool}/{node}/{role}",
        response_class=PlainTextResponse,
        responses={**_CHECK, **({} if open_reads else _AUTH)},
        dependencies=reads,
    )
    async def check_node_route(
        pool: str, node: str, role: Role, max_lag: MaxLag = None
    ) -> Response:
        """UP (200) or DOWN (503) for a load balancer: HAProxy httpchk, F5 ECV, keepalived."""
        pool_or_404(pool)
        node_or_404(pool, node)
        status, text = check_text(pool, node, role, lag_or_422(max_lag))
        return PlainTextResponse(text, status)

    @app.get(
        "/v1/check/{pool}/{role}",
        response_class=PlainTextResponse,
        responses={**_CHECK, **({} if open_reads else _AUTH)},
        dependencies=reads,
    )
    async def check_pool_route(pool: str, role: Role, max_lag: MaxLag = None) -> Response:
        """Pool level: `rw` is UP when this site has an ACTIVE node (smart DNS, F5 wide IPs)."""
        pool_or_404(pool)
        status, text = check_text(pool, None, role, lag_or_422(max_lag))
        return PlainTextResponse(text, status)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": _TEXT, "description": "Prometheus text format"}},
        dependencies=reads,
    )
    async def get_metrics() -> Response:
        if metrics is None:
            return PlainTextResponse("")
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get(
        "/v1/health",
        response_model=None,
        responses={200: {"model": HealthDoc}, 503: {"model": HealthDoc}},
    )
    async def health() -> Response:
        """200 while every pool's poll loop has completed a cycle recently; 503 otherwise."""
        now = time.monotonic()
        report: dict[str, dict[str, float | int | None]] = {}
        fresh = True
        for name in pools:
            seen = liveness.seen.get(name)
            if seen is None:
                fresh = False
                report[name] = {"cycle": None, "seconds_since_cycle": None}
                continue
            age = now - seen[1]
            fresh = fresh and age <= stale_after
            report[name] = {"cycle": seen[0], "seconds_since_cycle": round(age, 3)}
        leader = hub.leader()
        body = {
            "status": "ok" if fresh else "stale",
            "version": __version__,
            "role": None if hub.owner is None else "leader" if leader == hub.owner else "follower",
            "leader": leader,
            "pools": report,
        }
        return JSONResponse(body, 200 if fresh else 503)

    # -- operator commands ------------------------------------------------------------------

    async def mutate(pool: str, node: str | None, command: Command, status: int = 200) -> Response:
        """Commit with compare-and-set, then publish, holding the pool's lock that the poll
        loop holds around its own commit and publish: no cycle can publish in between and
        leave the Hub with an older state than the store. The store work runs in a thread
        (a remote etcd must not stall the loop that serves the checks)."""
        pool_config = pool_or_404(pool)
        if node is not None:
            node_or_404(pool, node)
        spec = specs[pool]
        if commands is None:
            raise HTTPException(503, "this API serves reads only: operator commands are off")
        run = commands

        async with hub.lock(pool):
            try:
                decision = await asyncio.to_thread(run, spec, command)
            except CommandRefused as err:
                raise HTTPException(409, str(err)) from None
            except StoreError as err:
                raise HTTPException(503, str(err)) from None
            hub.publish(decision.state, decision.events)
        log.info("api: %s %s/%s", type(command).__name__.lower(), pool, node or "-")
        for event in decision.events:
            log_event(event)
        body: dict[str, Any] = {
            "pool": pool_document(pool_config, decision.state),
            "events": [e.__dict__ for e in decision.events],
        }
        request = decision.state.request
        if request is not None:
            body["request"] = {"id": request.id, "kind": request.kind, "to": request.to}
        return JSONResponse(body, status)

    mutation_responses: dict[int | str, dict[str, Any]] = {
        200: {"model": CommandDoc},
        **_ERR,
        **_AUTH,
        409: {"model": ErrorDoc, "description": "refused: the message says why and what to do"},
    }

    @app.post(
        "/v1/pools/{pool}/nodes/{node}/recover",
        response_model=None,
        responses=mutation_responses,
        dependencies=[Depends(require_token)],
    )
    async def recover(pool: str, node: str) -> Response:
        """FAILED_* -> UNKNOWN; STANDBY once it polls healthy (as `mpp recover`)."""
        return await mutate(pool, node, Recover(node))

    @app.post(
        "/v1/pools/{pool}/nodes/{node}/activate",
        response_model=None,
        responses=mutation_responses,
        dependencies=[Depends(require_token)],
    )
    async def activate(pool: str, node: str) -> Response:
        """Make a healthy node ACTIVE, pinned (as `mpp activate`)."""
        return await mutate(pool, node, Activate(node))

    @app.post(
        "/v1/pools/{pool}/nodes/{node}/fail",
        response_model=None,
        responses={**mutation_responses, 400: _error("the body is not valid JSON")},
        dependencies=[Depends(require_token)],
    )
    async def fail(pool: str, node: str, body: FailBody | None = None) -> Response:
        """Mark FAILED; an ACTIVE node hands over at once (as `mpp fail [--force]`)."""
        return await mutate(pool, node, Fail(node, body.force if body else False))

    # Topology commands only record a request: the daemon's next cycle carries it out with
    # fresh observations (202); follow it in /v1/pools/{pool} (switching) and /v1/history.
    request_responses: dict[int | str, dict[str, Any]] = {
        202: {"model": CommandDoc, "description": "recorded; the daemon carries it out next"},
        **{k: v for k, v in mutation_responses.items() if k != 200},
        400: _error("the body is not valid JSON"),
    }

    @app.post(
        "/v1/pools/{pool}/switchover",
        response_model=None,
        status_code=202,
        responses=request_responses,
        dependencies=[Depends(require_token)],
    )
    async def switchover(pool: str, body: SwitchoverBody | None = None) -> Response:
        """Planned switchover (as `mpp switchover`); primary-replica pools only."""
        body = body or SwitchoverBody()
        pool_config = pool_or_404(pool)
        if body.to is not None:
            node_or_404(pool, body.to)
        try:
            timeout = parse_duration(body.timeout) if body.timeout else None
        except ValueError as err:
            raise HTTPException(422, f"timeout: {err}") from None
        command = Switchover(body.to, timeout or pool_config.switchover_timeout, uuid.uuid4().hex)
        return await mutate(pool, None, command, 202)

    @app.post(
        "/v1/pools/{pool}/takeover",
        response_model=None,
        status_code=202,
        responses=request_responses,
        dependencies=[Depends(require_token)],
    )
    async def takeover(pool: str, body: TakeoverBody) -> Response:
        """Promote a node without the old primary (as `mpp takeover`)."""
        pool_or_404(pool)
        node_or_404(pool, body.to)
        return await mutate(pool, None, Takeover(body.to, body.force, uuid.uuid4().hex), 202)

    @app.post(
        "/v1/pools/{pool}/acknowledge",
        response_model=None,
        responses=mutation_responses,
        dependencies=[Depends(require_token)],
    )
    async def acknowledge(pool: str) -> Response:
        """Lift the anti-flapping block and clear the pool's alert (as `mpp acknowledge`)."""
        return await mutate(pool, None, Acknowledge())

    return app


def _history(config: Config, pool: str | None, node: str | None, limit: int) -> list[Event]:
    """A read connection of its own per request: SQLite connections belong to one thread."""
    store = open_store(config)
    try:
        return store.history(pool, node, limit)
    finally:
        store.close()


class _FastChecks:
    """Answers well-formed check requests before FastAPI's routing and validation.

    A check is what load balancers send every second per server; the framework's per-request
    work (routing, dependency solving, validation) was most of its cost. The fast path
    answers only requests that are certainly valid (known pool, node and role; max_lag
    absent or a duration) with the same `check_text` as the routes; everything else, errors
    included, goes on to the documented routes unchanged.
    """

    def __init__(
        self,
        app: ASGIApp,
        pools: dict[str, frozenset[str]],
        answer: Callable[[str, str | None, Role, float | None], tuple[int, str]],
    ) -> None:
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


__all__ = ["create_app", "load_token", "serve"]
