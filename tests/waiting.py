"""Waiting in tests: poll a condition until it holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    what: str, check: Callable[[], bool], timeout: float = 15.0, every: float = 0.1
) -> float:
    """Call `check` every `every` seconds until it returns true; the seconds that took.
    After `timeout` seconds: AssertionError naming `what`."""
    started = time.monotonic()
    while not check():
        waited = time.monotonic() - started
        if waited > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - started
