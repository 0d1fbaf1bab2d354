"""Which event loop `mpp run` serves on: uvloop when it is installed, else asyncio's.

uvloop nearly doubles the router's small-packet forwarding (docs/router.md) and costs 2.4x
less CPU per agent check (docs/benchmarks.md). What mpp serves is tested on uvloop (the
integration tests run `mpp run`) and on asyncio (in-process tests).
MPP_EVENT_LOOP=asyncio|uvloop overrides; the benchmarks use it to compare.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("mpp")


def chosen() -> str:
    """ "uvloop" or "asyncio": what `run` will use."""
    if os.environ.get("MPP_EVENT_LOOP", "uvloop") != "uvloop":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, None]) -> None:
    if chosen() == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main)
        return
    if os.environ.get("MPP_EVENT_LOOP", "uvloop") == "uvloop":
        log.info("uvloop is not installed: using asyncio's loop")
    asyncio.run(main)
