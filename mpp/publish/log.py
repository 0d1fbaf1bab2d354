"""The log is a publisher too: one line per history event, the same words wherever the
event was committed (the poll loop, the API, a follower mirroring the leader)."""

from __future__ import annotations

import logging

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
