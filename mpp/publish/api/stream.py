"""Live updates for the web dashboard: Server-Sent Events fed by the Hub.

Each subscriber gets the status document when it connects and again whenever a pool's state
is published, plus the new history events, coalesced: a slow browser never queues one
document per cycle, it gets the latest one and the events it has not seen (bounded). SSE
rather than WebSockets: one direction is all a dashboard needs, it passes proxies as plain
HTTP, and uvicorn serves it without a WebSocket stack (`ws="none"`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

from mpp.model import Event, PoolState

MAX_SUBSCRIBERS = 64
_PENDING_EVENTS = 500  # per subscriber; beyond that the oldest are dropped (history has them)
_HEARTBEAT_SECONDS = 15.0  # an SSE comment line keeps idle proxies from closing the stream


class Subscriber:
    """One open stream. Its queue is touched only in its own loop's thread: publications from
    other threads arrive through call_soon_threadsafe."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.wake = asyncio.Event()
        self.events: deque[Event] = deque(maxlen=_PENDING_EVENTS)

    def deliver(self, events: tuple[Event, ...]) -> None:
        self.events.extend(events)
        self.wake.set()


class StreamsFull(Exception):
    pass


class Broadcast:
    """Fans the Hub's publications out to SSE subscribers, from any thread."""

    def __init__(self, document: Callable[[], dict[str, Any]]) -> None:
        self.document = document
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self.closed = False

    def _each(self) -> list[Subscriber]:
        with self._lock:
            return list(self._subscribers)

    def listener(self, state: PoolState, events: tuple[Event, ...]) -> None:
        """A Hub listener: runs in whichever thread published (the poll loop, a test)."""
        for sub in self._each():
            with contextlib.suppress(RuntimeError):  # its loop is closing: it is going away
                sub.loop.call_soon_threadsafe(sub.deliver, events)

    def subscribe(self) -> Subscriber:
        """Takes a slot now (before any await), so the cap holds under a burst of opens."""
        with self._lock:
            if len(self._subscribers) >= MAX_SUBSCRIBERS:
                raise StreamsFull(f"too many live streams (at most {MAX_SUBSCRIBERS})")
            sub = Subscriber(asyncio.get_running_loop())
            self._subscribers.add(sub)
            return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    def count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """Ends every stream (the server is stopping: no client should hold it open)."""
        self.closed = True
        for sub in self._each():
            with contextlib.suppress(RuntimeError):
                sub.loop.call_soon_threadsafe(sub.wake.set)

    async def stream(self, sub: Subscriber, history: list[Event]) -> AsyncIterator[str]:
        """The SSE body of one subscriber: `pools` documents and `history` event batches."""
        try:
            yield _message("history", [asdict(e) for e in history])
            yield _message("pools", self.document())
            while not self.closed:
                try:
                    await asyncio.wait_for(sub.wake.wait(), _HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                # Clear, then take the events, with no await in between (deliver runs in this
                # loop): a publication landing at any later point sets wake again, none is
                # lost (tests/unit/test_stream.py).
                sub.wake.clear()
                if self.closed:
                    break
                fresh = [asdict(e) for e in sub.events]
                sub.events.clear()
                if fresh:
                    yield _message("history", fresh)
                yield _message("pools", self.document())
        finally:
            self.unsubscribe(sub)


def _message(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
