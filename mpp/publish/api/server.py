"""Serving the API inside `mpp run`: uvicorn in mpp's own event loop, on a socket mpp has
already bound (so a busy port fails at start-up, before any pool is polled)."""

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from mpp.publish.api.bounded import Bounds, protocol

log = logging.getLogger("mpp.api")


class _Server(uvicorn.Server):
    """uvicorn inside mpp's own loop: mpp owns SIGINT/SIGTERM and one stop event for all."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(
    app: Any,
    sock: socket.socket,
    stop: asyncio.Event,
    bounds: Bounds | None = None,
    https: tuple[str, str] | None = None,
) -> None:
    """Serve `app` on an already bound socket until `stop` is set; `bounds` limits its
    connections (mpp.publish.api.bounded), always given by `mpp run`; `https`: the
    certificate and key files ([api] cert_file, key_file)."""
    http: Any = "httptools" if bounds is None else protocol(bounds)
    server = _Server(
        uvicorn.Config(
            app,
            http=http,
            ssl_certfile=https[0] if https else None,
            ssl_keyfile=https[1] if https else None,
            log_config=None,
            access_log=False,  # load balancers poll every second: that is not news
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=2,
            server_header=False,
        )
    )
    host, port = sock.getsockname()[:2]
    log.info("API listening on %s://%s:%s", "https" if https else "http", host, port)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    broadcast = getattr(app.state, "broadcast", None) if hasattr(app, "state") else None
    if broadcast is not None:
        broadcast.close()  # else open dashboards would hold the graceful shutdown
    waiter.cancel()
    await task
