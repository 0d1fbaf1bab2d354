"""When mysqld dies: restart it, or give up (pure, no I/O; the rules first).

Rules (the Solaris process monitor's, as the second seed describes them):
1. A death is answered by a restart at once, unless `limit` restarts already happened within
   the last `interval` seconds: then the agent gives up, and the node stays down for the
   operator (mpp fails it over at once instead of after its fail point).
2. Restarts older than `interval` no longer count: a mysqld that crashed twice a week ago
   gets its restarts back.
3. Having given up is final until the operator resets the agent (restarting it): a node
   that crashes in a loop must not come back by itself to take writes.
4. `limit = 0`: never restart (supervise and report only).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ledger:
    """The restarts the agent made (monotonic seconds), and whether it gave up."""

    restarts: tuple[float, ...] = ()
    gave_up: bool = False

    def recent(self, now: float, interval: float) -> tuple[float, ...]:
        return tuple(t for t in self.restarts if now - t < interval)


@dataclass(frozen=True)
class Verdict:
    restart: bool
    ledger: Ledger
    why: str


def on_death(ledger: Ledger, now: float, limit: int, interval: float) -> Verdict:
    """What to do about a mysqld that just died, and the ledger after it."""
    if ledger.gave_up:
        return Verdict(False, ledger, "restarts exhausted earlier; left for the operator")
    recent = ledger.recent(now, interval)
    if len(recent) >= limit:
        window = f"{interval:g} s"
        return Verdict(
            False,
            Ledger(recent, gave_up=True),
            f"restarts exhausted: {len(recent)} of {limit} within {window}; left for the operator",
        )
    after = Ledger((*recent, now))
    return Verdict(True, after, f"restart {len(after.restarts)}/{limit}")
