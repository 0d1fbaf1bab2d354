"""The dashboard's Broadcast driven step by step: publications from real threads, the stream's
generator advanced one message at a time, so each interleaving is forced, not hoped for."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from mpp.model import Event, EventKind, PoolState
from mpp.publish.api.stream import _PENDING_EVENTS, Broadcast
from mpp.publish.hub import Hub
from tests.unit.test_api import HEALTHY, make_config


class Rig:
    """A Hub feeding a Broadcast, as create_app wires them; the document is the pool's cycle."""

    def __init__(self, tmp_path: Path) -> None:
        self.hub = Hub(make_config(tmp_path), {"main": HEALTHY})
        self.broadcast = Broadcast(lambda: {"cycle": self._state().cycle})
        self.hub.listeners.append(self.broadcast.listener)

    def _state(self) -> PoolState:
        state = self.hub.state("main")
        assert state is not None
        return state

    def publish_from_threads(self, *batches: list[str], cycle: int | None = None) -> None:
        """Each list of reasons published by its own thread (one event per publication), the
        threads run to the end before this returns; the loop sees nothing until it runs."""

        def publish(reasons: list[str]) -> None:
            for reason in reasons:
                state = HEALTHY if cycle is None else replace(HEALTHY, cycle=cycle)
                self.hub.publish(state, (_event(reason),))

        threads = [threading.Thread(target=publish, args=(b,)) for b in batches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def _event(reason: str) -> Event:
    return Event(1.0, "main", "db2", EventKind.STATUS, "OK", "OK INFO", reason)


async def _next(stream: AsyncIterator[str]) -> tuple[str, Any]:
    """The stream's next message; a lost wake-up would leave it waiting for the heartbeat."""
    message = await asyncio.wait_for(anext(stream), 2)
    kind, data = message.rstrip("\n").split("\n")
    return kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))


def _reasons(message: tuple[str, Any]) -> list[str]:
    kind, data = message
    assert kind == "history", message
    return [e["reason"] for e in data]


def test_a_slow_reader_gets_the_newest_events_and_the_latest_document(tmp_path: Path) -> None:
    """The interleaving that hung test_publications_from_other_threads_reach_a_stream_in_order
    under load: publisher `a` is done, then `b` publishes more than the bound before the reader
    drains. `a`'s last event is dropped (the oldest go, by design); the newest are all there and
    the document is the latest, so the dashboard is not stale. Waiting for every publisher's
    last event, as that test did, waits for ever."""
    rig = Rig(tmp_path)

    async def scenario() -> tuple[list[str], tuple[str, Any]]:
        sub = rig.broadcast.subscribe()
        stream = rig.broadcast.stream(sub, [])
        assert _reasons(await _next(stream)) == []
        assert await _next(stream) == ("pools", {"cycle": HEALTHY.cycle})
        rig.publish_from_threads([f"a{i}" for i in range(10)])
        rig.publish_from_threads([f"b{i}" for i in range(_PENDING_EVENTS + 100)], cycle=9)
        await asyncio.sleep(0)  # every delivery runs; the reader has not read yet
        batch = _reasons(await _next(stream))
        return batch, await _next(stream)

    batch, doc = asyncio.run(scenario())
    assert batch == [f"b{i}" for i in range(100, _PENDING_EVENTS + 100)]
    assert "a9" not in batch, "a's last publication was older than the bound"
    assert doc == ("pools", {"cycle": 9})


def test_a_publication_while_the_reader_holds_a_message_is_not_lost(tmp_path: Path) -> None:
    """The lost wake-up to rule out: the stream has taken the pending events (and cleared its
    wake-up) and is suspended at a yield when the next publication lands."""
    rig = Rig(tmp_path)

    async def scenario() -> None:
        sub = rig.broadcast.subscribe()
        stream = rig.broadcast.stream(sub, [])
        await _next(stream), await _next(stream)
        rig.publish_from_threads(["x1"], cycle=8)
        assert _reasons(await _next(stream)) == ["x1"]  # suspended after the history batch
        rig.publish_from_threads(["x2"], cycle=9)
        await asyncio.sleep(0)
        assert await _next(stream) == ("pools", {"cycle": 9})  # read now: already the newest
        assert _reasons(await _next(stream)) == ["x2"]  # and x2's wake-up was kept
        assert await _next(stream) == ("pools", {"cycle": 9})
        rig.publish_from_threads(["x3"], cycle=10)  # suspended after the document
        await asyncio.sleep(0)
        assert _reasons(await _next(stream)) == ["x3"]
        assert await _next(stream) == ("pools", {"cycle": 10})

    asyncio.run(scenario())


def test_a_publication_before_the_first_message_is_not_lost(tmp_path: Path) -> None:
    """Published between subscribe() (in the route) and the first document: the document has it
    already, and its events follow (the subscription was there to receive them)."""
    rig = Rig(tmp_path)

    async def scenario() -> None:
        sub = rig.broadcast.subscribe()
        rig.publish_from_threads(["early"], cycle=8)
        await asyncio.sleep(0)
        stream = rig.broadcast.stream(sub, [_event("from the store")])
        assert _reasons(await _next(stream)) == ["from the store"]
        assert await _next(stream) == ("pools", {"cycle": 8})
        assert _reasons(await _next(stream)) == ["early"]
        assert await _next(stream) == ("pools", {"cycle": 8})

    asyncio.run(scenario())


def test_publications_from_concurrent_threads_all_arrive_in_order(tmp_path: Path) -> None:
    """Within the bound nothing is dropped, nothing doubled, and each thread's order holds."""
    rig = Rig(tmp_path)
    each = _PENDING_EVENTS // 2

    async def scenario() -> list[str]:
        sub = rig.broadcast.subscribe()
        stream = rig.broadcast.stream(sub, [])
        await _next(stream), await _next(stream)
        rig.publish_from_threads([f"a{i}" for i in range(each)], [f"b{i}" for i in range(each)])
        return _reasons(await _next(stream))

    seen = asyncio.run(scenario())
    for tag in "ab":
        assert [r for r in seen if r.startswith(tag)] == [f"{tag}{i}" for i in range(each)]
    assert len(seen) == 2 * each
