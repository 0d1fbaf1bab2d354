"""Latency without netem: a userspace TCP proxy in front of a node, with a settable delay.

The kernel here has no `tc ... netem`, so the only way to slow a path is to put something
in it. Every chunk read from one side is written to the other `delay` seconds after it was
read, in the order it was read: that is what a slow link does (it adds time, it never
reorders a TCP stream), and a delay changed mid-stream holds back no chunk behind a later
one. The delay is per direction, so one can slow requests and answers apart.

One asyncio loop in a daemon thread carries every connection of every proxy of a scenario:
a proxy costs no thread per connection, and a failed scenario never leaves one waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

HOST = "127.0.0.1"
_CHUNK = 65536


class Loop:
    """An asyncio loop in a daemon thread, for the proxies of one scenario."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="proxy")
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


class Proxy:
    """Listens on HOST:`port` (0: a free one, read back from `port`), forwards to
    `upstream`; `to_upstream` and `from_upstream` are the delays in seconds."""

    def __init__(self, loop: Loop, upstream: tuple[str, int], port: int = 0) -> None:
        self._loop = loop
        self.upstream = upstream
        self.to_upstream = 0.0
        self.from_upstream = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server = loop.call(
            asyncio.start_server(self._accept, HOST, port, reuse_address=True)
        )
        self.port: int = self._server.sockets[0].getsockname()[1]
        self.connections = 0  # accepted so far (a test sees traffic went through it)
        self.requests = 0  # chunks read from clients: on an idle session, round trips asked

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def set_delay(self, seconds: float) -> None:
        """The same delay both ways (what "latency between A and B" means per direction);
        chunks already in flight keep the delay they were read with."""
        self.to_upstream = self.from_upstream = seconds

    def close(self) -> None:
        """Stop listening and cut every forwarded connection."""

        async def stop() -> None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self._loop.call(stop())

    def _count(self) -> None:
        self.requests += 1

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(
                _pipe(reader, up_writer, lambda: self.to_upstream, self._count),
                _pipe(up_reader, writer, lambda: self.from_upstream),
            )
        except asyncio.CancelledError:
            pass  # close(): the connection is cut, which is all a cancelled handler means
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()
            self._tasks.discard(task)


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: Callable[[], float],
    count: Callable[[], None] = lambda: None,
) -> None:
    """Copy one direction, each chunk due `delay()` after it was read; the end of the
    stream (or an error) is passed on after the chunks before it, as a link would."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        try:
            while chunk := await reader.read(_CHUNK):
                count()
                queue.put_nowait((time.monotonic() + delay(), chunk))
        except OSError:
            pass
        finally:
            queue.put_nowait((time.monotonic() + delay(), b""))

    reading = asyncio.ensure_future(read())
    try:
        while True:
            due, chunk = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                with contextlib.suppress(OSError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()
    except OSError:
        return
    finally:
        reading.cancel()


class Proxies:
    """One proxy per node of a sandbox (node name -> real port), and the config rewrite
    that sends mpp through them while replication keeps the real ports."""

    def __init__(self, node_ports: dict[str, int]) -> None:
        self.loop = Loop()
        self.by_node = {name: Proxy(self.loop, (HOST, port)) for name, port in node_ports.items()}
        self.real = dict(node_ports)

    def set_delay(self, seconds: float) -> None:
        for proxy in self.by_node.values():
            proxy.set_delay(seconds)

    def route_config(self, text: str) -> str:
        """An mpp config whose nodes are reached through the proxies (`address`) and
        replicate from each other directly (`replication_address`, the real port): only
        mpp's sessions cross the proxy, as only they would cross a slow management link."""
        for name, proxy in self.by_node.items():
            real = f'"{HOST}:{self.real[name]}"'
            line = re.compile(rf"^address = {re.escape(real)}$", re.M)
            text, found = line.subn(
                f'address = "{proxy.address}"\nreplication_address = {real}', text, count=1
            )
            if not found:
                raise ValueError(f"node {name}: no address = {real} in the config")
        return text

    def close(self) -> None:
        for proxy in self.by_node.values():
            proxy.close()
        self.loop.close()
