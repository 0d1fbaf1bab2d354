"""The REST API: status documents, load-balancer checks, metrics and operator commands.

Every read is answered from the Hub, the daemon's in-memory state, never from MySQL and
never from the store (history excepted: it is the store's job). That is what makes a check
cheap enough for every HAProxy, F5 and smart DNS to poll each second, and what keeps it
consistent with the status table: the same document (mpp.publish.view) and the same role rules
(mpp.publish.roles) serve every surface.

This module only assembles: each concern is a module of its own (reads, checks, monitoring,
commands, security, errors), its routes plain functions that take a Context.
"""

from functools import partial

from fastapi import FastAPI
from fastapi.routing import APIRoute

from mpp import __version__
from mpp.config import Config
from mpp.publish.api import checks, errors, monitoring, reads
from mpp.publish.api import commands as operator_commands  # `commands` is create_app's argument
from mpp.publish.api.checks import FastChecks, check_text
from mpp.publish.api.context import Commands, Context
from mpp.publish.api.head import HeadAsGet
from mpp.publish.api.security import TokenFirst, load_token, open_reads
from mpp.publish.hub import Hub, guarded
from mpp.publish.metrics import Metrics


def create_app(
    config: Config,
    hub: Hub,
    metrics: Metrics | None = None,
    commands: Commands | None = None,
) -> FastAPI:
    """`commands`: runs an operator command through the pool's logic and the store; without
    it (a read-only API) every command answers 503."""
    ctx = Context(config, hub, load_token(config), metrics, commands)
    hub.listeners.append(ctx.liveness.listener)
    hub.listeners.append(guarded(ctx.broadcast.listener, "dashboard stream"))

    app = FastAPI(
        title="mpp",
        version=__version__,
        description="MySQL/MariaDB pool state: status, load-balancer checks, operator commands.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.context = ctx
    app.state.broadcast = ctx.broadcast  # serve() ends the live streams when mpp stops
    reads_open = open_reads(config)
    if reads_open:  # closed reads need the token, which only the routes check
        app.add_middleware(FastChecks, pools=ctx.nodes, answer=partial(check_text, ctx))
    app.add_middleware(HeadAsGet)  # added last: outermost, so the fast checks serve HEAD too
    errors.install(app)
    mutations = operator_commands.router()
    paths = [r.path_regex for r in mutations.routes if isinstance(r, APIRoute)]
    app.add_middleware(TokenFirst, token=ctx.token, paths=paths)  # outermost: before the body
    # In this order: it is the order of the paths in /openapi.json.
    app.include_router(reads.router(reads_open))
    app.include_router(checks.router(reads_open))
    app.include_router(monitoring.router(reads_open))
    app.include_router(mutations)
    return app


__all__ = ["create_app"]
