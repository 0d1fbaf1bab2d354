"""The log is a publisher too: one line per history event, the same words wherever the
event was committed (the poll loop, the API, a follower mirroring the leader)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from mpp.model import Event

log = logging.getLogger("mpp")


def log_event(event: Event) -> None:
    log.info(
        "event pool=%s node=%s kind=%s %s -> %s reason=%r",
        event.pool,
        event.node,
        event.kind,
        event.old,
        event.new,
        event.reason,
    )


class Throttle(logging.Filter):
    """Each distinct line at most once per `period` seconds; the next one that passes says
    how many were held back. For lines an outsider can cause at will (garbage on the API
    port makes uvicorn log one per request): the log must not become the attack's amplifier.
    """

    def __init__(self, period: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.period = period
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        if len(self._last) > 1000:  # distinct lines are few; never a store of garbage
            self._last.clear()
            self._held.clear()
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.getMessage()} ({held} more like this not logged)"
            record.args = ()
        return True
