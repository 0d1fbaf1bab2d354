"""A background thread that calls one function every period (the lease renewals), with
the stop that waits for it: after `halt()` returns no call can land (a renewal after a
resignation would take the lease back)."""

from __future__ import annotations

import threading
from collections.abc import Callable


def every(period: float, work: Callable[[], object], name: str, join: float) -> Callable[[], None]:
    """Call `work` every `period` seconds from a daemon thread named `name`; returns the
    function that stops it and waits up to `join` seconds for a call in progress."""
    stop = threading.Event()

    def keep() -> None:
        while not stop.wait(period):
            work()

    thread = threading.Thread(target=keep, name=name, daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(join)

    return halt
