"""Scheduled switchovers ([[pool.schedule]]): what happens when a slot comes due (pure).

When the slot comes (mpp.run.schedules decides that, with the cron library), the pool's
health decides whether the switchover is asked for. It goes through the logic's own
`apply_command(Switchover)`, so it has exactly the safety of `mpp switchover`: the daemon's
next cycle carries it out, with catch-up and fencing, or refuses it. When the pool is not
healthy at that moment, nothing is switched: a POOL event says why and the pool alert asks
for the operator (orchestrator and Patroni have no scheduler; cron calling their CLI would
switch over blindly).
"""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import replace

from croniter import croniter

from mpp.logic.interface import Logic
from mpp.model import (
    CommandRefused,
    Decision,
    Event,
    EventKind,
    PoolSpec,
    PoolState,
    Schedule,
    State,
    Switchover,
)


def next_run(schedule: Schedule, after: float) -> float:
    """The first slot strictly after `after` (epoch seconds), in the schedule's time zone.
    Pure arithmetic on the calendar, so the loop and `mpp status` ask the same function."""
    zone = zoneinfo.ZoneInfo(schedule.timezone)
    start = datetime.datetime.fromtimestamp(after, zone)
    slot: datetime.datetime = croniter(schedule.cron, start).get_next(datetime.datetime)
    return slot.timestamp()


def unready(spec: PoolSpec, state: PoolState, schedule: Schedule, now: float) -> str:
    """Why the pool is not healthy enough for the planned switchover ('' when it is)."""
    pending = state.request or state.switching
    if pending is not None:
        return f"a {pending.kind} is already in progress"
    if not state.active:
        return "the pool has no ACTIVE node"
    for node in state.nodes:
        if node.state.failed or node.state is State.UNKNOWN:
            return f"{node.name} is {node.state.value}"
        if node.req > 0:
            return f"{node.name} is not OK ({node.req} bad polls: {node.message})"
        if node.in_maintenance(now):
            return f"{node.name} is in maintenance"
    return ""


def due(
    logic: Logic, spec: PoolSpec, prev: PoolState, schedule: Schedule, slot: float, now: float
) -> Decision:
    """The slot at `slot` came due: ask for the switchover, or record why not."""
    to = schedule.to
    if to is not None and prev.has(to) and prev.node(to).state is State.ACTIVE:
        reason = f"scheduled switchover {schedule.label}: {to} is already ACTIVE"
        return _note(spec, prev, reason, now, alert=False)
    why = unready(spec, prev, schedule, now)
    if not why:
        command = Switchover(schedule.to, schedule.timeout, id=f"schedule-{int(slot)}")
        try:
            return logic.apply_command(spec, prev, command, now)
        except CommandRefused as refused:
            why = str(refused)
    return _note(spec, prev, f"scheduled switchover {schedule.label} skipped: {why}", now)


def _note(spec: PoolSpec, prev: PoolState, reason: str, now: float, alert: bool = True) -> Decision:
    word = "skipped" if alert else "unchanged"  # skipped needs the operator; unchanged not
    event = Event(now, spec.name, "-", EventKind.POOL, "schedule", word, reason)
    state = replace(prev, alert=reason) if alert else prev
    return Decision(state, events=(event,))
