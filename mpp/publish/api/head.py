"""HEAD on every GET route: the GET's status and headers, no body.

Load balancers and monitors often check with HEAD (HAProxy `option httpchk HEAD /...`,
keepalived's HTTP_GET, uptime probes); FastAPI routes declare GET only, so HEAD answered
405 and a balancer configured that way saw every server down. Starlette adds HEAD to its
own routes but not to FastAPI's, and declaring it on each route would double the OpenAPI
document; hence this wrapper, outermost, so the fast check path serves HEAD too.

The request goes on as a GET; once its response has started, the body is dropped and the
app is stopped (the live stream never ends by itself).
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        started = asyncio.Event()

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.start" and not started.is_set():
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                started.set()

        async def as_get() -> None:
            await self.app({**scope, "method": "GET"}, receive, headers_only)

        task = asyncio.create_task(as_get())
        waiter = asyncio.create_task(started.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
