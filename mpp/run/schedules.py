"""When a pool's [[pool.schedule]] slots come due (cron expressions, with croniter).

The decision of what a due slot does is the logic's (mpp.logic.schedule); this module only
reads the calendar. Only the leading instance runs it. A slot is due once the wall clock has
passed it since the last look; slots that passed while no mpp was leading are not run late
(a switchover meant for 08:00 is not wanted at 11:00), and several slots missed between two
looks run once.
"""

from __future__ import annotations

from mpp.logic.schedule import next_run
from mpp.model import Schedule


class Scheduler:
    """The calendar of one pool's schedules, looked at once per cycle."""

    def __init__(self, schedules: tuple[Schedule, ...], now: float) -> None:
        self.schedules = schedules
        self.last = now  # nothing before the instance started (or started leading) runs

    def due(self, now: float) -> list[tuple[Schedule, float]]:
        """The schedules with a slot in (last look, now], each with its latest such slot."""
        found: list[tuple[Schedule, float]] = []
        for schedule in self.schedules:
            slot = next_run(schedule, self.last)
            if slot > now:
                continue
            while (following := next_run(schedule, slot)) <= now:
                slot = following
            found.append((schedule, slot))
        self.last = max(self.last, now)
        return found

    def restart(self, now: float) -> None:
        """A new term of leadership: slots missed while following are not run late."""
        self.last = now
