"""The live web dashboard: the SSE stream over a real uvicorn server, and the page itself in a
real headless Chromium (Debian's, driven by Playwright; no browser is downloaded)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from mpp.model import (
    AgentReport,
    CheckpointKind,
    CheckpointState,
    Cut,
    Event,
    EventKind,
    NodeState,
    PoolState,
    Process,
    Reach,
    ReachReport,
    State,
)
from mpp.publish.api import create_app, serve
from mpp.publish.api.stream import MAX_SUBSCRIBERS
from mpp.publish.hub import Hub
from mpp.publish.listen import bind
from mpp.store import SqliteStore
from tests.ports import session_ports
from tests.unit.test_api import HEALTHY, TOKEN, make_config

EVIL = "<img src=x onerror=\"document.title='pwned'\">"


class Server:
    """create_app + serve() on a real socket, in a thread with its own event loop, as the
    daemon runs it; the test publishes to the Hub from its own thread."""

    def __init__(self, tmp_path: Path, port: int, **api: Any) -> None:
        self.config = make_config(tmp_path, True, listen=f"127.0.0.1:{port}", **api)
        store = SqliteStore(self.config.state_path)
        store.save(
            HEALTHY,
            (Event(1.0, "main", "db1", EventKind.STATE, "UNKNOWN", "ACTIVE", "seed"),),
            None,
        )
        store.close()
        self.hub = Hub(self.config, {"main": HEALTHY})
        self.app = create_app(self.config, self.hub)
        self.url = f"http://127.0.0.1:{port}"
        self.sock: socket.socket = bind(f"127.0.0.1:{port}", "[api]")
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)

            async def main() -> None:
                self.stop_event = asyncio.Event()
                started.set()
                await serve(self.app, self.sock, self.stop_event)

            self.loop.run_until_complete(main())

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        started.wait(5)

    def stop(self) -> float:
        """Stop the server; seconds it took."""
        began = time.monotonic()
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)
        self.sock.close()
        return time.monotonic() - began


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    made = Server(tmp_path, session_ports().port())
    yield made
    made.stop()


def _failover_state() -> tuple[PoolState, tuple[Event, ...]]:
    nodes = (
        replace(HEALTHY.nodes[0], state=State.FAILED_OFFLINE, reachable=False, req=4, message=EVIL),
        replace(HEALTHY.nodes[1], state=State.ACTIVE),
        HEALTHY.nodes[2],
    )
    state = replace(HEALTHY, nodes=nodes, cycle=HEALTHY.cycle + 1)
    events = (
        Event(
            time.time(),
            "main",
            "db1",
            EventKind.STATE,
            "ACTIVE",
            "FAILED_OFFLINE",
            "confirmed dead",
        ),
        Event(time.time(), "main", "db2", EventKind.STATE, "STANDBY", "ACTIVE", "FAILOVER: test"),
    )
    return state, events


def _sse(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    kind, data = "", ""
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and data:
            yield kind, json.loads(data)
            kind, data = "", ""


def test_stream_sends_history_and_document_then_each_change(server: Server) -> None:
    with httpx.stream("GET", server.url + "/v1/stream", timeout=5) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        messages = _sse(response.iter_lines())
        kind, history = next(messages)
        assert kind == "history" and [e["reason"] for e in history] == ["seed"]
        kind, doc = next(messages)
        assert kind == "pools" and doc["pools"][0]["nodes"][0]["state"] == "ACTIVE"
        state, events = _failover_state()
        server.hub.publish(state, events)  # from this thread, as a worker thread would
        kind, batch = next(messages)
        assert kind == "history" and [e["new"] for e in batch] == ["FAILED_OFFLINE", "ACTIVE"]
        kind, doc = next(messages)
        active = [n["name"] for n in doc["pools"][0]["nodes"] if n["state"] == "ACTIVE"]
        assert kind == "pools" and active == ["db2"] and doc["pools"][0]["cycle"] == state.cycle


def test_publications_from_other_threads_reach_a_stream_in_order(server: Server) -> None:
    batches = 2000

    def publish_many(tag: str) -> None:
        for i in range(batches):
            event = Event(float(i), "main", "db2", EventKind.STATUS, "OK", "OK INFO", f"{tag}{i}")
            server.hub.publish(HEALTHY, (event,))

    with httpx.stream("GET", server.url + "/v1/stream", timeout=10) as response:
        messages = _sse(response.iter_lines())
        next(messages), next(messages)  # the initial history and document: subscribed by now
        threads = [threading.Thread(target=publish_many, args=(tag,)) for tag in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Wait for a publication known to be the last one, not for each thread's last: a slow
        # reader keeps only the newest events (bounded), so when one thread ends more than the
        # bound ahead of the other, its last event is rightly dropped and waiting for it hung
        # this test under load (tests/unit/test_stream.py forces that interleaving). What the
        # stream promises is the newest events and the latest document.
        final = replace(HEALTHY, cycle=HEALTHY.cycle + 1)
        server.hub.publish(
            final, (Event(time.time(), "main", "db2", EventKind.STATUS, "", "", "end"),)
        )
        seen: list[str] = []
        while "end" not in seen:
            kind, data = next(messages)
            if kind == "history":
                seen += [e["reason"] for e in data]
        kind, doc = next(messages)
    assert kind == "pools" and doc["pools"][0]["cycle"] == final.cycle, "the latest document"
    assert seen[-1] == "end" and len(seen) <= 2 * batches + 1
    for tag in "ab":  # per publisher the order holds, even when the oldest were dropped
        numbers = [int(r[1:]) for r in seen if r.startswith(tag)]
        assert numbers == sorted(set(numbers)), f"publisher {tag}: out of order or doubled"


def test_the_stream_cap_holds_under_a_burst(server: Server) -> None:
    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=10) as client:

            async def one() -> int:
                async with client.stream("GET", server.url + "/v1/stream") as response:
                    await asyncio.sleep(0.5)  # hold it while the others open
                    return response.status_code

            return list(await asyncio.gather(*(one() for _ in range(MAX_SUBSCRIBERS + 6))))

    codes = asyncio.run(burst())
    assert codes.count(200) == MAX_SUBSCRIBERS and codes.count(503) == 6, codes


def test_stream_is_closed_when_reads_need_a_token(tmp_path: Path) -> None:
    closed = Server(tmp_path, session_ports().port(), open_reads=False)
    try:
        assert httpx.get(closed.url + "/v1/stream", timeout=5).status_code == 401
        with httpx.stream(
            "GET",
            closed.url + "/v1/stream",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        ) as response:
            assert response.status_code == 200
        page = httpx.get(closed.url + "/", timeout=5)
        assert page.status_code == 200 and "v1/stream" in page.text, "the page itself is open"
    finally:
        closed.stop()


def test_stopping_the_server_ends_open_streams_at_once(tmp_path: Path) -> None:
    srv = Server(tmp_path, session_ports().port())
    ended = threading.Event()

    def read() -> None:
        with httpx.stream("GET", srv.url + "/v1/stream", timeout=30) as response:
            for _ in response.iter_lines():
                pass
        ended.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)
    took = srv.stop()
    assert ended.wait(2), "the stream did not end"
    assert took < 1.5, f"shutdown waited {took:.1f} s for an open dashboard"


# -- the page in a real browser ---------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
_FLAGS = [  # no background traffic: this machine's network is closed (see ../shared)
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run `make test`, which installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=_FLAGS)
        yield chromium
        chromium.close()


def _state_of(page: Any, node: str) -> str:
    return str(page.locator(f'tr[data-node="main/{node}"] td.state').inner_text())


def test_page_shows_the_pools_and_follows_a_failover_live(server: Server, browser: Any) -> None:
    page = browser.new_page()
    page.goto(server.url + "/")
    page.wait_for_selector('tr[data-node="main/db1"]')
    assert _state_of(page, "db1") == "ACTIVE" and _state_of(page, "db2") == "STANDBY"
    assert page.locator("#conn").inner_text() == "live"
    assert "seed" in page.locator("#history").inner_text()
    state, events = _failover_state()
    server.hub.publish(state, events)
    page.wait_for_function(
        "document.querySelector('tr[data-node=\"main/db2\"] td.state').innerText === 'ACTIVE'",
        timeout=5000,
    )
    assert _state_of(page, "db1") == "FAILED_OFFLINE"
    message = page.locator('tr[data-node="main/db1"] td.msg').inner_text()
    assert message == EVIL, "server text is shown as text"
    assert page.locator("img").count() == 0 and page.title() == "mpp", "and never run as HTML"
    assert "FAILOVER: test" in page.locator("#history").inner_text()
    page.close()


def test_page_shows_maintenance_and_the_agents(server: Server, browser: Any) -> None:
    page = browser.new_page()
    page.goto(server.url + "/")
    page.wait_for_selector('tr[data-node="main/db2"]')
    assert page.locator(".maint").count() == 0, "nobody is in maintenance yet"
    now = time.time()
    until = now + 3600
    nodes = (
        replace(HEALTHY.nodes[0], agent=EVIL),
        replace(HEALTHY.nodes[1], maintenance_since=now, maintenance_until=until),
        replace(HEALTHY.nodes[2], maintenance_since=now),
    )
    report = AgentReport(
        "db3",
        "main",
        seq=4,
        fence_ttl=6.0,
        process=Process.RESTARTING,
        restarts_used=1,
        retry_limit=2,
        last_exit="killed by signal 9",
        sent_at=now - 0.4,
    )
    server.hub.set_reports("main", {"db3": report})
    server.hub.publish(replace(HEALTHY, nodes=nodes, cycle=HEALTHY.cycle + 1), ())
    badge = page.locator('tr[data-node="main/db2"] td.state .maint')
    badge.wait_for(timeout=5000)
    # the date too when the window ends on another day (a run near midnight)
    same_day = time.localtime(until)[:3] == time.localtime()[:3]
    shown = time.strftime("%H:%M" if same_day else "%m-%d %H:%M", time.localtime(until))
    assert badge.inner_text() == f"maint until {shown}"
    db3 = page.locator('tr[data-node="main/db3"]')
    assert db3.locator(".maint").inner_text() == "maint (until off)"
    agent = db3.locator("td.agent").inner_text()
    assert agent.startswith("mysqld killed by signal 9, restart 1/2 · report "), agent
    assert agent.endswith(" s ago"), agent
    assert page.locator('tr[data-node="main/db1"] td.agent').inner_text() == EVIL
    assert page.locator("img").count() == 0 and page.title() == "mpp", "text, never HTML"
    assert page.locator('tr[data-node="main/db1"] .maint').count() == 0
    server.hub.publish(replace(HEALTHY, cycle=HEALTHY.cycle + 2), ())
    page.wait_for_function(
        "document.querySelector('tr[data-node=\"main/db2\"] .maint') === null", timeout=5000
    )
    assert _state_of(page, "db2") == "STANDBY"
    page.close()


def test_page_asks_for_the_token_when_reads_are_closed(tmp_path: Path, browser: Any) -> None:
    closed = Server(tmp_path, session_ports().port(), open_reads=False)
    try:
        page = browser.new_page()
        page.goto(closed.url + "/")
        page.wait_for_selector("#login:not([hidden])")
        page.fill("#token", "wrong-token")
        page.click("#login button")
        page.wait_for_function("document.getElementById('why').innerText.includes('refused')")
        page.fill("#token", TOKEN)
        page.click("#login button")
        page.wait_for_selector('tr[data-node="main/db1"]')
        assert _state_of(page, "db1") == "ACTIVE"
        page.close()
    finally:
        closed.stop()


def test_page_reconnects_after_the_server_comes_back(tmp_path: Path, browser: Any) -> None:
    port = session_ports().port()
    first = Server(tmp_path, port)
    page = browser.new_page()
    try:
        page.goto(first.url + "/")
        page.wait_for_selector('tr[data-node="main/db1"]')
        first.stop()
        page.wait_for_function("document.getElementById('conn').innerText !== 'live'")
        second = Server(tmp_path, port)
        try:
            down = NodeState("db1", State.FAILED_OFFLINE, reachable=False, req=4)
            second.hub.publish(HEALTHY.with_node(down), ())
            page.wait_for_function(
                "document.getElementById('conn').innerText === 'live'", timeout=10000
            )
            page.wait_for_function(
                "document.querySelector('tr[data-node=\"main/db1\"] td.state').innerText"
                " === 'FAILED_OFFLINE'",
                timeout=5000,
            )
        finally:
            second.stop()
    finally:
        page.close()


def test_page_shows_the_checkpoints_and_the_place_of_the_cut(server: Server, browser: Any) -> None:
    """MPP's C rows on the page: a card per instance with its verdict and each checkpoint."""
    now = time.time()
    name = server.config.mpp.name  # this instance: its pools are FAIL while it is cut off
    report = ReachReport(
        name,
        now,
        Reach(Cut.LAN, True, "every internal checkpoint fails (gw: no answer within 1s)", ""),
        (
            CheckpointState(
                "gw", CheckpointKind.INTERNAL, "tcp:10.0.0.1:22", 2, False, 3, EVIL, now
            ),
            CheckpointState("web", CheckpointKind.EXTERNAL, "https://x/", 2, True, 0, "", now, 3.0),
        ),
    )
    server.hub.reach = lambda: report
    try:
        page = browser.new_page()
        page.goto(server.url + "/")
        card = page.locator(f'section.checkpoints[data-instance="{name}"]')
        card.wait_for(timeout=5000)
        assert "cut off (LAN)" in card.locator("h2").inner_text()
        assert "every internal checkpoint fails" in card.locator(".alert").inner_text()
        gw = card.locator('tr[data-checkpoint="gw"]').inner_text()
        assert "FAIL" in gw and "internal" in gw and "tcp:10.0.0.1:22" in gw
        assert card.locator('tr[data-checkpoint="gw"] td.msg').inner_text() == EVIL
        assert "OK" in card.locator('tr[data-checkpoint="web"]').inner_text()
        assert page.locator("img").count() == 0, "text, never HTML"
        assert page.locator('section.pool[data-pool="main"] .p-FAIL').count() == 1, "pool FAIL"
    finally:
        server.hub.reach = lambda: None
    page.close()
