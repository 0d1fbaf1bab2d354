"""Notifications: change detection, throttling, webhook retries, SMTP, never blocking the loop."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from email.message import Message
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from aiosmtpd.controller import Controller

from mpp.config import Config
from mpp.model import Event, EventKind, NodeState, PoolState, State
from mpp.publish import notify
from mpp.publish.changes import OUTSIDE, ChangeTracker, is_failover
from mpp.publish.notify import BURST, Notice, Notifier, Throttle, redact
from tests import builders
from tests.builders import config_doc, pool
from tests.ports import Ports

SECRET_PATH = "/hooks/T000/B000/very-secret-path"

HEALTHY = PoolState(
    "main",
    (
        NodeState("db1", State.ACTIVE, lag=0, message="replicating"),
        NodeState("db2", State.STANDBY, lag=0, message="replicating"),
    ),
    cycle=3,
    updated_at=100.0,
)
FAILED_OVER = PoolState(
    "main",
    (
        NodeState("db1", State.FAILED_ONLINE, req=0, message="Failed by operator."),
        NodeState("db2", State.ACTIVE, lag=0, notice=True, message="replicating"),
    ),
    cycle=4,
    updated_at=110.0,
)


def config(notify: dict[str, Any]) -> Config:
    doc = config_doc(pool(count=2), notify=notify)
    return builders.config(doc, Path("/tmp/mpp-notify-test.toml"))


# -- change detection -------------------------------------------------------------------------


def test_changes_made_by_another_writer_are_found_and_named() -> None:
    tracker = ChangeTracker({"main": 4}, [HEALTHY])
    changes = tracker.feed(FAILED_OVER, ())
    assert [(e.node, e.kind, e.old, e.new) for e in changes] == [
        ("db1", "state", "ACTIVE", "FAILED_ONLINE"),
        ("db2", "state", "STANDBY", "ACTIVE"),
    ]
    assert all(OUTSIDE in e.reason for e in changes)
    assert is_failover(changes[1]) and "from db1" in changes[1].reason
    assert tracker.feed(FAILED_OVER, ()) == [], "no change, nothing to tell"


def test_the_writers_events_are_kept_and_gaps_filled_in_order() -> None:
    tracker = ChangeTracker({"main": 4}, [HEALTHY])
    # the daemon's decision started from a state the CLI had changed (db1 FAILED_ONLINE)
    offline = PoolState(
        "main",
        (NodeState("db1", State.FAILED_OFFLINE, req=1), FAILED_OVER.nodes[1]),
        cycle=5,
        updated_at=120.0,
    )
    mine = (
        Event(
            120.0, "main", "db1", EventKind.STATE, "FAILED_ONLINE", "FAILED_OFFLINE", "unreachable"
        ),
        Event(120.0, "main", "db1", EventKind.STATUS, "OK", "OK INFO", "2003 refused"),
    )
    changes = tracker.feed(offline, mine)
    assert [(e.node, e.old, e.new) for e in changes] == [
        ("db1", "ACTIVE", "FAILED_ONLINE"),  # the gap, from the other writer
        ("db1", "FAILED_ONLINE", "FAILED_OFFLINE"),
        ("db1", "OK", "OK INFO"),
        ("db2", "STANDBY", "ACTIVE"),
    ]
    assert changes[1:3] == list(mine)


def test_first_sight_passes_the_events_through() -> None:
    tracker = ChangeTracker({"main": 4})
    events = (Event(1.0, "main", "db1", EventKind.STATE, "UNKNOWN", "ACTIVE", "Elected ACTIVE"),)
    assert tracker.feed(HEALTHY, events) == list(events)


# -- throttling --------------------------------------------------------------------------------


def notice(i: int, node: str = "db1") -> Notice:
    event = Event(float(i), "main", node, EventKind.STATUS, "OK", "OK INFO", f"change {i}")
    return Notice("main", node, float(i), "ACTIVE", "OK INFO", f"m{i}", (event,))


def test_throttle_bursts_then_holds_then_digests() -> None:
    t = Throttle(60.0)
    sent = [t.offer(notice(i), now=i) for i in range(BURST + 3)]
    assert all(s is not None for s in sent[:BURST]), "a failover's ladder goes out at once"
    assert sent[BURST:] == [None, None, None]
    assert t.offer(notice(0, "db2"), now=7) is not None, "per node"
    assert t.due(now=59.0) == []
    assert t.next_due() == 60.0
    (digest,) = t.due(now=60.0)
    assert digest.folded == 3 and [e.reason for e in digest.events] == [
        "change 5",
        "change 6",
        "change 7",
    ]
    assert digest.message == "m7" and "(3 changes)" in digest.subject
    # still flapping: held until the next window ends, one digest per window
    assert t.offer(notice(61), now=61.0) is None
    (digest,) = t.due(now=120.0)
    assert digest.folded == 1
    # calm for a whole window: immediate again
    assert t.due(now=180.0) == []
    assert t.offer(notice(200), now=200.0) is not None


def test_no_throttle_and_flush() -> None:
    t = Throttle(0)
    assert all(t.offer(notice(i), now=0) for i in range(20))
    t = Throttle(60)
    for i in range(BURST + 2):
        t.offer(notice(i), now=0)
    (digest,) = t.flush()
    assert digest.folded == 2 and t.flush() == []


# -- delivery ----------------------------------------------------------------------------------


class Recorder:
    """A webhook behind httpx.MockTransport: answers from a script, records the bodies."""

    def __init__(self, *statuses: int | str) -> None:
        self.statuses = list(statuses)
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        status = self.statuses.pop(0) if self.statuses else 200
        if status == "timeout":
            raise httpx.ConnectTimeout("timed out", request=request)
        self.bodies.append(json.loads(request.content))
        return httpx.Response(int(status))


def run_notifier(notifier: Notifier, publish: list[tuple[PoolState, tuple[Event, ...]]]) -> None:
    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(notifier.run(stop))
        for state, events in publish:
            notifier.listener(state, events)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if all(q.empty() for q in notifier.queues) and notifier.inbox.empty():
                break
        await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(scenario())


def webhook_notifier(recorder: Recorder, retries: int = 3) -> Notifier:
    url = f"https://hooks.example.com{SECRET_PATH}?token=abc123"
    cfg = config({"webhook": [{"url": url, "retries": retries, "timeout": "1s"}]})
    return Notifier(
        cfg, {"main": HEALTHY}, transport=httpx.MockTransport(recorder), retry_delay=0.001
    )


def test_webhook_retries_server_errors_and_timeouts(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(500, "timeout", 200)
    n = webhook_notifier(recorder)
    run_notifier(n, [(FAILED_OVER, ())])
    assert n.sent == 2 and n.failed == 0  # one notice per node
    body = recorder.bodies[-1]
    assert body["pool"] == "main" and body["source"] == "mpp"
    assert {b["node"] for b in recorder.bodies} == {"db1", "db2"}
    db2 = next(b for b in recorder.bodies if b["node"] == "db2")
    assert db2["state"] == "ACTIVE" and db2["events"][0]["new"] == "ACTIVE"
    assert db2["events"][0]["reason"].startswith("FAILOVER")


def test_webhook_gives_up_and_never_logs_the_url(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = Recorder(*([503] * 10))
    n = webhook_notifier(recorder, retries=2)
    run_notifier(n, [(FAILED_OVER, ())])
    assert n.failed == 2 and n.sent == 0
    assert len(recorder.bodies) == 6, "1 try + 2 retries, per notice"
    assert "webhook https://hooks.example.com/...: [mpp] main/db1" in caplog.text
    assert SECRET_PATH not in caplog.text and "abc123" not in caplog.text
    recorder = Recorder(*([404] * 10))
    n = webhook_notifier(recorder, retries=3)
    run_notifier(n, [(FAILED_OVER, ())])
    assert len(recorder.bodies) == 2, "a 4xx is not retried"
    assert redact("http://u:p@h:8080/x?y=z") == "http://h:8080/..."


def test_the_listener_never_waits_for_delivery(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "SHUTDOWN_GRACE", 0.2)

    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200)

    cfg = config({"webhook": [{"url": "http://127.0.0.1:9/hook"}], "throttle": "0s"})
    n = Notifier(cfg, {"main": HEALTHY}, transport=httpx.MockTransport(hang))
    flip = [HEALTHY, FAILED_OVER] * 600

    async def scenario() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(n.run(stop))
        await asyncio.sleep(0.01)
        slowest = 0.0
        for state in flip:
            t0 = time.perf_counter()
            n.listener(state, ())
            slowest = max(slowest, time.perf_counter() - t0)
        stop.set()
        await task  # the grace period ends the hung delivery
        return slowest

    t0 = time.perf_counter()
    slowest = asyncio.run(scenario())
    # a delivery takes 30 s here; 1 s leaves room for a loaded CI machine and still proves it
    assert slowest < 1.0, slowest
    assert time.perf_counter() - t0 < 5
    assert n.dropped > 0 and caplog.text.count("queue full") == 1, "one warning, not a flood"


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_real_webhook_on_loopback(ports: Ports) -> None:
    port = ports.port()
    server = HTTPServer(("127.0.0.1", port), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cfg = config({"webhook": [{"url": f"http://127.0.0.1:{port}/mpp"}]})
        n = Notifier(cfg, {"main": HEALTHY})
        run_notifier(n, [(FAILED_OVER, ())])
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(b["node"] for b in _Hook.received) == ["db1", "db2"]
    assert n.sent == 2


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from email import message_from_bytes

        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def test_email_through_a_real_smtp_server(ports: Ports) -> None:
    port = ports.port()
    box = _Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        cfg = config(
            {"email": [{"smtp": f"127.0.0.1:{port}", "to": ["dba@example.com"], "timeout": "2s"}]}
        )
        n = Notifier(cfg, {"main": HEALTHY})
        run_notifier(n, [(FAILED_OVER, ())])
    finally:
        controller.stop()
    subjects = sorted(m["Subject"] for m in box.messages)
    assert subjects == [
        "[mpp] main/db1: FAILED_ONLINE (OK)",
        "[mpp] main/db2: ACTIVE (OK INFO)",
    ]
    body = next(m for m in box.messages if "db2" in m["Subject"]).get_payload()
    assert "STANDBY -> ACTIVE" in str(body) and box.messages[0]["To"] == "dba@example.com"


def test_an_unreachable_smtp_server_is_logged(
    caplog: pytest.LogCaptureFixture, ports: Ports
) -> None:
    port = ports.port()  # nothing listens there
    cfg = config({"email": [{"smtp": f"127.0.0.1:{port}", "to": ["dba@example.com"]}]})
    n = Notifier(cfg, {"main": HEALTHY}, retry_delay=0.001)
    run_notifier(n, [(FAILED_OVER, ())])
    assert n.failed == 2 and f"e-mail via 127.0.0.1:{port}" in caplog.text


def test_held_digests_are_sent_at_shutdown() -> None:
    recorder = Recorder()
    n = webhook_notifier(recorder)
    flapping: list[tuple[PoolState, tuple[Event, ...]]] = [(FAILED_OVER, ()), (HEALTHY, ())] * 6
    run_notifier(n, flapping)
    db1 = [b for b in recorder.bodies if b["node"] == "db1"]
    assert len(db1) == BURST + 1 and db1[-1]["digest"] is True
    assert sum(b["changes"] for b in db1) == 12, "nothing lost"


def test_a_failing_listener_costs_a_log_line_not_a_cycle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from mpp.publish.hub import Hub, guarded

    def broken(state: PoolState, events: tuple[Event, ...]) -> None:
        raise RuntimeError("bug")

    cfg = config({})
    hub = Hub(cfg)
    hub.listeners.append(guarded(broken, "metrics"))
    hub.publish(HEALTHY, ())
    assert hub.state("main") == HEALTHY
    assert "metrics listener failed for pool main (polling goes on)" in caplog.text
