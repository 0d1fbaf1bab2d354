"""Runs mpp's poll cycles in-process, one at a time, for integration tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from mpp.config import Config
from mpp.model import PoolState
from mpp.run.daemon import make_workers, poll_once
from mpp.store import SqliteStore


class Driver:
    """Runs poll cycles of one config on demand, like `mpp poll` but in-process."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = SqliteStore(config.state_path)
        self.workers, self.executor = make_workers(config, self.store)

    def cycle(self) -> PoolState:
        decision = asyncio.run(poll_once(self.workers))[0]
        assert decision is not None  # no leadership here: the driver always acts
        return decision.state

    def until(self, check: Callable[[PoolState], bool], cycles: int = 60) -> PoolState:
        for _ in range(cycles):
            state = self.cycle()
            if check(state):
                return state
            time.sleep(0.1)
        raise AssertionError(f"condition not reached in {cycles} cycles: {state}")

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for w in self.workers:
            w.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.store.close()
