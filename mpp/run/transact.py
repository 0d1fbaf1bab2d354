"""The one way any writer changes a pool: load, decide, compare-and-set save, retry.

The daemon's cycles, `mpp poll`, the CLI's operator commands and the API's all go through
`transact`, so two writers never overwrite each other: when the CAS fails, the step runs
again on the fresh state (with the same observations or the same command).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mpp.config import Config
from mpp.logic import logic_for
from mpp.model import Command, Decision, PoolSpec, PoolState
from mpp.store import Store, StoreError, open_store

_MAX_CAS_RETRIES = 8


def transact(
    store: Store,
    spec: PoolSpec,
    step: Callable[[PoolState], Decision],
    leader: str | None = None,
    scoped: bool = False,
) -> Decision:
    """Apply `step` to the stored pool state with compare-and-set, retrying on conflict.
    With `leader`, the commit also requires that owner to still hold the lease."""
    logic = logic_for(spec.logic)
    for _ in range(_MAX_CAS_RETRIES):
        snapshot = store.load(spec.name)
        prev = snapshot.state if snapshot else logic.initial_state(spec)
        decision = step(prev)
        version = snapshot.version if snapshot else None
        if store.save(decision.state, decision.events, version, leader, scoped):
            return decision
    raise StoreError(f"pool {spec.name}: state kept changing under us; gave up after retries")


def command(store: Store, spec: PoolSpec, order: Command) -> Decision:
    """An operator's command through the pool's logic (CommandRefused says why not)."""
    logic = logic_for(spec.logic)
    return transact(store, spec, lambda prev: logic.apply_command(spec, prev, order, time.time()))


def command_in_own_store(config: Config, spec: PoolSpec, order: Command) -> Decision:
    """`command` with a store connection of its own: the API runs it in a worker thread,
    and SQLite connections belong to the thread that opened them."""
    store = open_store(config)
    try:
        return command(store, spec, order)
    finally:
        store.close()
