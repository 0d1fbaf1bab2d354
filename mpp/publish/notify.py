"""Notifications: every state or status change to webhooks (JSON POST) and e-mail (SMTP).

The Hub calls `Notifier.listener` inside the poll loop, so the listener only puts work on
a bounded queue; sending happens in background tasks, one per target, so a dead webhook
(timeouts and retries) delays neither the poll loop nor the other targets. A full queue
drops the notification with a log line rather than grow without bound.

Throttling is per node: up to BURST notifications per node per `throttle` window go out at
once (a failover's whole ladder, OK INFO -> FAIL, fits); past that, changes are held and
sent as one digest when the window ends, and while the node keeps changing it gets one
digest per window. Nothing is lost, and a node that has calmed down for a whole window is
back to immediate notices.

Secrets: a webhook URL often carries a token in its path or query (Slack, Teams), so logs
name a target by scheme and host only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx

from mpp import __version__
from mpp.config import Config, EmailTarget, WebhookTarget
from mpp.logic.ladder import status_of
from mpp.model import Event, PoolState
from mpp.publish.changes import ChangeTracker

log = logging.getLogger("mpp.notify")

BURST = 5  # notifications per node per window before changes are held for a digest
QUEUE_SIZE = 1000
DIGEST_EVENTS = 50  # events listed in one digest; older ones are only counted
SHUTDOWN_GRACE = 3.0
DROP_LOG_EVERY = 10.0  # seconds between "queue full" warnings


@dataclass(frozen=True)
class Notice:
    """One node's changes in one cycle, or a digest of several held by the throttle."""

    pool: str
    node: str
    at: float
    state: str
    status: str
    message: str
    events: tuple[Event, ...]
    folded: int = 1  # how many notices this one stands for (more than 1: a digest)
    omitted: int = 0  # events left out of a long digest

    @property
    def subject(self) -> str:
        digest = f" ({self.folded} changes)" if self.folded > 1 else ""
        return f"[mpp] {self.pool}/{self.node}: {self.state} ({self.status}){digest}"

    def payload(self) -> dict[str, Any]:
        return {
            "source": "mpp",
            "version": __version__,
            "pool": self.pool,
            "node": self.node,
            "at": self.at,
            "state": self.state,
            "status": self.status,
            "message": self.message,
            "digest": self.folded > 1,
            "changes": self.folded,
            "omitted_events": self.omitted,
            "events": [e.__dict__ for e in self.events],
        }

    def text(self) -> str:
        lines = [f"{self.pool}/{self.node} is {self.state}, status {self.status}.", ""]
        if self.message:
            lines += [self.message, ""]
        for e in self.events:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.at))
            lines.append(f"{when}  {e.kind}: {e.old} -> {e.new}  ({e.reason})")
        if self.omitted:
            lines.append(f"... and {self.omitted} earlier events (see `mpp history`)")
        return "\n".join(lines) + "\n"


def notices(state: PoolState, changes: list[Event], fail_point: int) -> list[Notice]:
    """Group one cycle's changes by node, with the node's state as it is now."""
    out: list[Notice] = []
    for node in state.nodes:
        mine = tuple(e for e in changes if e.node == node.name)
        if not mine:
            continue
        out.append(
            Notice(
                pool=state.name,
                node=node.name,
                at=max(e.at for e in mine),
                state=node.state.value,
                status=status_of(node.req, fail_point, node.notice).label,
                message=node.message,
                events=mine,
            )
        )
    return out


def fold(held: list[Notice]) -> Notice:
    """Several held notices of one node as one digest, ending in the latest state."""
    last = held[-1]
    events = tuple(e for n in held for e in n.events)
    omitted = sum(n.omitted for n in held) + max(0, len(events) - DIGEST_EVENTS)
    return Notice(
        pool=last.pool,
        node=last.node,
        at=last.at,
        state=last.state,
        status=last.status,
        message=last.message,
        events=events[-DIGEST_EVENTS:],
        folded=sum(n.folded for n in held),
        omitted=omitted,
    )


@dataclass
class _Window:
    start: float
    sent: int = 0
    held: list[Notice] = field(default_factory=list)


class Throttle:
    """Per-node windows; pure apart from the clock values it is given."""

    def __init__(self, seconds: float, burst: int = BURST) -> None:
        self.seconds = seconds
        self.burst = burst
        self.windows: dict[tuple[str, str], _Window] = {}

    def offer(self, notice: Notice, now: float) -> Notice | None:
        """The notice to send now, or None when it is held for the window's digest."""
        if self.seconds <= 0:
            return notice
        key = (notice.pool, notice.node)
        window = self.windows.get(key)
        if window is None or now - window.start >= self.seconds:
            if window is not None and window.held:  # its digest is due: send both, in order
                window.held.append(notice)
                self.windows[key] = _Window(now, self.burst)
                return fold(window.held)
            self.windows[key] = _Window(now, 1)
            return notice
        if window.sent < self.burst and not window.held:
            window.sent += 1
            return notice
        window.held.append(notice)
        return None

    def due(self, now: float) -> list[Notice]:
        """Digests of windows that ended; windows with nothing held are forgotten."""
        out: list[Notice] = []
        for key, window in list(self.windows.items()):
            if now - window.start < self.seconds:
                continue
            if window.held:  # still flapping: the next window holds from its start
                out.append(fold(window.held))
                self.windows[key] = _Window(now, self.burst)
            else:
                del self.windows[key]
        return out

    def flush(self) -> list[Notice]:
        """Everything held, at shutdown: better early than never."""
        out = [fold(w.held) for w in self.windows.values() if w.held]
        self.windows.clear()
        return out

    def next_due(self) -> float | None:
        starts = [w.start for w in self.windows.values() if w.held]
        return min(starts) + self.seconds if starts else None


def redact(url: str) -> str:
    """scheme://host[:port]/...: enough to know which target, nothing of its secrets."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/..."


class Notifier:
    def __init__(
        self,
        config: Config,
        states: dict[str, PoolState | None] | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_delay: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.section = config.notify
        # httpx logs every request's full URL at INFO, and a webhook URL is a secret
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.fail_points = {p.name: p.fail_point for p in config.pool}
        self.tracker = ChangeTracker(self.fail_points, (states or {}).values())
        self.throttle = Throttle(self.section.throttle)
        self.transport = transport
        self.retry_delay = retry_delay
        self.clock = clock
        self.inbox: asyncio.Queue[Notice] = asyncio.Queue(QUEUE_SIZE)
        self.targets: list[WebhookTarget | EmailTarget] = [
            *self.section.webhook,
            *self.section.email,
        ]
        self.queues: list[asyncio.Queue[Notice]] = [asyncio.Queue(QUEUE_SIZE) for _ in self.targets]
        self.dropped = 0
        self._dropped_logged = -DROP_LOG_EVERY
        self.sent = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        return bool(self.targets)

    def listener(self, state: PoolState, events: tuple[Event, ...]) -> None:
        """Hub listener, in the poll loop: find the changes, queue them, return."""
        changes = self.tracker.feed(state, events)
        if not changes or not self.enabled:
            return
        for notice in notices(state, changes, self.fail_points.get(state.name, 4)):
            self._put(self.inbox, notice, "notifications")

    def _put(self, queue: asyncio.Queue[Notice], notice: Notice, what: str) -> None:
        try:
            queue.put_nowait(notice)
        except asyncio.QueueFull:
            self.dropped += 1
            now = self.clock()
            if now - self._dropped_logged >= DROP_LOG_EVERY:  # a flood must not flood the log
                self._dropped_logged = now
                log.warning(
                    "%s queue full (%d): dropped %s (%d dropped so far)",
                    what,
                    QUEUE_SIZE,
                    notice.subject,
                    self.dropped,
                )

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until `stop`, then flush held digests and give deliveries a short grace."""
        if not self.enabled:
            await stop.wait()
            return
        async with httpx.AsyncClient(transport=self.transport) as client:
            workers = [
                asyncio.create_task(self._deliver_all(client, target, queue))
                for target, queue in zip(self.targets, self.queues, strict=True)
            ]
            try:
                await self._dispatch(stop)
            finally:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SHUTDOWN_GRACE):
                        await asyncio.gather(*(q.join() for q in self.queues))
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)

    async def _dispatch(self, stop: asyncio.Event) -> None:
        stopping = asyncio.create_task(stop.wait())
        try:
            while True:
                due = self.throttle.next_due()
                timeout = None if due is None else max(0.0, due - self.clock())
                getting = asyncio.create_task(self.inbox.get())
                done, _ = await asyncio.wait(
                    {getting, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if getting in done:
                    notice = getting.result()
                    out = self.throttle.offer(notice, self.clock())
                    if out is not None:
                        self._fan_out(out)
                else:
                    getting.cancel()
                for digest in self.throttle.due(self.clock()):
                    self._fan_out(digest)
                if stopping in done:
                    while not self.inbox.empty():
                        out = self.throttle.offer(self.inbox.get_nowait(), self.clock())
                        if out is not None:
                            self._fan_out(out)
                    for digest in self.throttle.flush():
                        self._fan_out(digest)
                    return
        finally:
            stopping.cancel()

    def _fan_out(self, notice: Notice) -> None:
        for queue in self.queues:
            self._put(queue, notice, "delivery")

    async def _deliver_all(
        self,
        client: httpx.AsyncClient,
        target: WebhookTarget | EmailTarget,
        queue: asyncio.Queue[Notice],
    ) -> None:
        while True:
            notice = await queue.get()
            try:
                if isinstance(target, WebhookTarget):
                    ok = await self._post(client, target, notice)
                else:
                    ok = await self._mail(target, notice)
                if ok:
                    self.sent += 1
                else:
                    self.failed += 1
            except Exception:  # a bug in one delivery must not stop the others
                self.failed += 1
                log.exception("notification to %s failed", _name(target))
            finally:
                queue.task_done()

    async def _post(self, client: httpx.AsyncClient, target: WebhookTarget, notice: Notice) -> bool:
        name = _name(target)
        problem = ""
        for attempt in range(target.retries + 1):
            if attempt:
                await asyncio.sleep(min(self.retry_delay * 2 ** (attempt - 1), 10.0))
            try:
                response = await client.post(
                    target.url, json=notice.payload(), timeout=target.timeout
                )
            except httpx.HTTPError as err:
                problem = f"{type(err).__name__}: {_scrub(str(err), target.url)}"
                continue
            if response.is_success:
                return True
            problem = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code not in (408, 429):
                break  # the target refuses this request; repeating it will not help
        log.warning("webhook %s: %s not delivered (%s)", name, notice.subject, problem)
        return False

    async def _mail(self, target: EmailTarget, notice: Notice) -> bool:
        message = EmailMessage()
        message["Subject"] = notice.subject
        message["From"] = target.sender
        message["To"] = ", ".join(target.to)
        message.set_content(notice.text())
        host, _, port = target.smtp.rpartition(":")
        problem = ""
        for attempt in range(2):
            if attempt:
                await asyncio.sleep(self.retry_delay)
            try:
                await asyncio.to_thread(
                    _send_mail, host.strip("[]"), int(port), target.timeout, message
                )
                return True
            except (OSError, smtplib.SMTPException) as err:
                problem = f"{type(err).__name__}: {err}"
        log.warning("e-mail via %s: %s not delivered (%s)", target.smtp, notice.subject, problem)
        return False


def _send_mail(host: str, port: int, timeout: float, message: EmailMessage) -> None:
    with smtplib.SMTP(host, port, timeout=timeout) as smtp:
        smtp.send_message(message)


def _name(target: WebhookTarget | EmailTarget) -> str:
    return redact(target.url) if isinstance(target, WebhookTarget) else f"smtp {target.smtp}"


def _scrub(text: str, url: str) -> str:
    parts = urlsplit(url)
    for secret in (url, parts.path, parts.query):
        if len(secret) > 1:
            text = text.replace(secret, "...")
    return text
