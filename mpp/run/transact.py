"""The one way any writer changes a pool: load, decide, compare-and-set save, retry.

The daemon's cycles, `mpp poll`, the CLI's operator commands and the API's all go through
`transact`, so two writers never overwrite each other: when the CAS fails, the step runs
again on the fresh state (with the same observations or the same command).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

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


@dataclass(frozen=True)
class Kept:
    """What a daemon's cycle decided last and did not need to write: its state, and the
    stored version it was decided on (the next cycle builds on it while that version is
    still the stored one), with the stored state itself and its clockless form, so a cycle
    on an unchanged store decodes and strips nothing (both were ~8 % of mpp's CPU at a
    thousand nodes)."""

    version: int
    state: PoolState
    stored: PoolState
    stored_clockless: PoolState

    @classmethod
    def stored_at(cls, version: int, state: PoolState) -> Kept:
        """What a load or a save of `state` at `version` leaves to build on."""
        return cls(version, state, state, _clockless(state))


def _clockless(state: PoolState) -> PoolState:
    """The state without what every poll restamps: the cycle count, when it was decided,
    each node's last poll time and round trip. Nothing the logic decides on."""
    return replace(
        state,
        cycle=0,
        updated_at=None,
        nodes=tuple(replace(n, last_request=None, latency_ms=None) for n in state.nodes),
    )


@dataclass(frozen=True)
class CycleWrite:
    """How a pool's daemon cycles write, the same for every cycle of the pool.

    heartbeat: a cycle that changed only the clocks is still saved once the stored state
    is this many seconds old. leader / scoped: the lease the save is fenced by (`Store.save`).
    current_within: how old the store's knowledge that the kept version is still stored may
    be (`Store.is_current`)."""

    heartbeat: float
    leader: str | None = None
    scoped: bool = False
    current_within: float = 0.0


def transact_cycle(
    store: Store,
    spec: PoolSpec,
    step: Callable[[PoolState], Decision],
    kept: Kept | None,
    write: CycleWrite,
    settle: Callable[[PoolState, Decision], Decision] | None = None,
) -> tuple[Decision, Kept | None]:
    """`transact` for the daemon's poll cycle, which writes only what changed.

    A cycle whose decision has no event, action or change and whose state differs from the
    stored one only in the poll's clock fields (`_clockless`) is not saved, unless the stored
    state is `write.heartbeat` seconds old: what followers, `mpp check --source store` and
    /v1/health read as "the leader is polling" stays fresh. Nothing is lost by the skip: the
    next cycle compares with the store again (a version other than `kept`'s means someone
    else wrote: it decides on theirs), and every write is still compare-and-set and fenced
    by the lease; a deposed leader writes nothing it would not have written anyway.

    A decision taken on the store's recent-only knowledge (`write.current_within`) and found
    to change something is not settled or saved on it: the version is checked exactly (a
    load, on etcd) and the step runs again on what is stored, so `settle` (the pre_* hooks)
    only ever sees a decision on the stored state. A store whose every version answer is
    exact (`Store.versions_exact`, SQLite) is not asked twice. Returns the decision and what
    to pass as `kept` next time."""
    logic = logic_for(spec.logic)
    within = write.current_within
    for _ in range(_MAX_CAS_RETRIES):
        base: Kept | None = None  # the stored state, with its version and clockless form
        exact = True  # base is known to be the stored state, not only recently
        if kept is not None and store.is_current(spec.name, kept.version, within):
            base, prev = kept, kept.state  # the stored state plus the unwritten clocks
            exact = within <= 0 or store.versions_exact
        elif (snapshot := store.load(spec.name)) is not None:
            base = Kept.stored_at(snapshot.version, snapshot.state)
            prev = snapshot.state
        else:
            prev = logic.initial_state(spec)
        decision = step(prev)
        if base is not None:
            if _unchanged(base.stored, base.stored_clockless, decision, write.heartbeat):
                return decision, replace(base, state=decision.state)
            if (
                not exact
                and not _clock_only(base.stored_clockless, decision)
                and not store.is_current(spec.name, base.version)
            ):
                kept = None  # decided on a version only known to be recent: decide on the store's
                continue
        if settle is not None:
            decision = settle(prev, decision)
        version = base.version if base is not None else None
        written = store.save(decision.state, decision.events, version, write.leader, write.scoped)
        if written:
            return decision, Kept.stored_at(written, decision.state)
        kept = None  # someone else wrote: the next try loads theirs
    raise StoreError(f"pool {spec.name}: state kept changing under us; gave up after retries")


def _clock_only(stored_clockless: PoolState, decision: Decision) -> bool:
    """Nothing but the poll's clocks differs from the stored state (a heartbeat's save)."""
    if decision.events or decision.actions or decision.change is not None:
        return False
    return stored_clockless == _clockless(decision.state)


def _unchanged(
    stored: PoolState, stored_clockless: PoolState, decision: Decision, heartbeat: float
) -> bool:
    if decision.events or decision.actions or decision.change is not None:
        return False
    fresh = decision.state
    if stored.updated_at is None or fresh.updated_at is None:
        return False
    if fresh.updated_at - stored.updated_at >= heartbeat:
        return False
    return stored_clockless == _clockless(fresh)


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
