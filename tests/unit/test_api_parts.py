"""The API's parts alone: one router (or the fast path, or the token dependency) on an app of
its own with a Context built here, so a failure names the part rather than the whole app
(tests/unit/test_api.py covers the assembled app, its OpenAPI and the fuzzing)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import SecretStr
from starlette.types import Receive, Scope, Send

from mpp.model import Command, Decision, PoolSpec
from mpp.publish.api import checks, commands, errors, monitoring, reads
from mpp.publish.api.context import Context
from mpp.publish.api.security import TOKEN as NEEDS_TOKEN
from mpp.publish.hub import Hub
from mpp.publish.roles import Role
from tests.unit.test_api import HEALTHY, TOKEN, make_config


def context(tmp_path: Path, **fields: Any) -> Context:
    config = make_config(tmp_path, token=False)
    return Context(config, Hub(config, {"main": HEALTHY}), **fields)


def app_with(ctx: Context, router: APIRouter) -> FastAPI:
    """The least an app needs for one router: the context its routes depend on, and the
    error shape (else a 404 would read `{"detail": ...}`)."""
    app = FastAPI()
    app.state.context = ctx
    errors.install(app)
    app.include_router(router)
    return app


def call(app: Any, method: str, url: str, token: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mpp") as client:
            return await client.request(method, url, headers=headers, **kw)

    return asyncio.run(go())


def test_the_check_router_alone_answers_up_and_down(tmp_path: Path) -> None:
    app = app_with(context(tmp_path), checks.router(open_reads=True))
    r = call(app, "GET", "/v1/check/main/db1/rw")
    assert (r.status_code, r.text) == (200, "UP db1 is ACTIVE\n")
    r = call(app, "GET", "/v1/check/main/db2/rw")
    assert (r.status_code, r.text) == (503, "DOWN db2 is STANDBY; ACTIVE: db1\n")
    assert call(app, "GET", "/v1/check/main/rw").text == "UP pool main: ACTIVE db1\n"
    assert call(app, "GET", "/v1/check/main/db9/rw").status_code == 404
    assert call(app, "GET", "/v1/check/main/db3/ro?max_lag=soon").status_code == 422


def test_the_fast_path_answers_what_the_route_answers_without_reaching_it(
    tmp_path: Path,
) -> None:
    ctx = context(tmp_path)
    routes = app_with(ctx, checks.router(open_reads=True))
    reached: list[str] = []

    async def behind(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await routes(scope, receive, send)

    fast = checks.FastChecks(behind, ctx.nodes, partial(checks.check_text, ctx))
    for url in ["/v1/check/main/db1/rw", "/v1/check/main/db3/ro?max_lag=30s", "/v1/check/main/ro"]:
        quick, routed = call(fast, "GET", url), call(routes, "GET", url)
        assert (quick.status_code, quick.text) == (routed.status_code, routed.text), url
    assert reached == []
    assert call(fast, "GET", "/v1/check/main/db9/rw").status_code == 404
    assert reached == ["/v1/check/main/db9/rw"]  # what it cannot answer goes on to the routes


def test_check_text_takes_the_lag_limit_it_is_given(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    status, text = checks.check_text(ctx, "main", "db3", Role.RO, None)  # lag 25s > max_lag
    assert status == 503 and text.startswith("DOWN ")
    status, text = checks.check_text(ctx, "main", "db3", Role.RO, 30.0)
    assert (status, text) == (200, "UP db3 is STANDBY, status OK, lag 25s <= 30s\n")


def test_the_commands_router_without_commands_answers_503(tmp_path: Path) -> None:
    app = app_with(context(tmp_path, token=SecretStr(TOKEN)), commands.router())
    r = call(app, "POST", "/v1/pools/main/acknowledge", TOKEN)
    assert r.status_code == 503
    assert r.json() == {"error": "this API serves reads only: operator commands are off"}
    assert call(app, "POST", "/v1/pools/nosuch/acknowledge", TOKEN).status_code == 404


def test_the_commands_router_runs_the_injected_commands_and_publishes(tmp_path: Path) -> None:
    ran: list[tuple[str, Command]] = []

    def run(spec: PoolSpec, command: Command) -> Decision:
        ran.append((spec.name, command))
        return Decision(replace(HEALTHY, cycle=HEALTHY.cycle + 1), ())

    ctx = context(tmp_path, token=SecretStr(TOKEN), commands=run)
    r = call(app_with(ctx, commands.router()), "POST", "/v1/pools/main/nodes/db2/fail", TOKEN)
    assert r.status_code == 200, r.text
    assert [(pool, type(c).__name__) for pool, c in ran] == [("main", "Fail")]
    assert r.json()["pool"]["cycle"] == HEALTHY.cycle + 1
    snapshot = ctx.hub.state("main")
    assert snapshot is not None and snapshot.cycle == HEALTHY.cycle + 1


@pytest.mark.parametrize(
    ("configured", "sent", "status", "error"),
    [
        (None, TOKEN, 401, "mutations disabled: set [api] token_file"),
        (TOKEN, None, 401, "missing Authorization: Bearer <token>"),
        (TOKEN, "wrong", 403, "wrong token"),
        (TOKEN, TOKEN[:-1], 403, "wrong token"),
    ],
)
def test_the_token_dependency_refuses(
    tmp_path: Path, configured: str | None, sent: str | None, status: int, error: str
) -> None:
    token = SecretStr(configured) if configured is not None else None
    guarded = APIRouter(dependencies=[NEEDS_TOKEN])

    @guarded.get("/guarded")
    async def reached() -> dict[str, bool]:
        return {"reached": True}

    app = app_with(context(tmp_path, token=token), guarded)
    r = call(app, "GET", "/guarded", sent)
    assert (r.status_code, r.json()) == (status, {"error": error})
    assert ("www-authenticate" in r.headers) == (status == 401)
    assert call(app, "GET", "/guarded", configured).status_code == (200 if configured else 401)


def test_closed_reads_need_the_token_but_the_page_does_not(tmp_path: Path) -> None:
    app = app_with(context(tmp_path, token=SecretStr(TOKEN)), reads.router(open_reads=False))
    assert call(app, "GET", "/v1/pools/main").status_code == 401
    assert call(app, "GET", "/v1/pools/main", TOKEN).json()["name"] == "main"
    page = call(app, "GET", "/")
    assert page.status_code == 200 and page.text == reads.DASHBOARD_HTML


def test_health_is_stale_until_each_pool_has_completed_a_cycle(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    app = app_with(ctx, monitoring.router(open_reads=True))
    r = call(app, "GET", "/v1/health")
    assert (r.status_code, r.json()["status"]) == (503, "stale")
    ctx.liveness.listener(HEALTHY, ())
    ctx.liveness.listener(replace(HEALTHY, name="other", nodes=()), ())
    r = call(app, "GET", "/v1/health")
    assert (r.status_code, r.json()["pools"]["main"]["cycle"]) == (200, HEALTHY.cycle)
    assert call(app, "GET", "/metrics").text == ""  # no Metrics given: an empty page
