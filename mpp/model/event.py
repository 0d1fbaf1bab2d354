"""The append-only history's unit: what changed, from what to what, and why."""

from __future__ import annotations

from dataclasses import dataclass

from mpp.model.kinds import ActionKind, ChangeKind, EventKind


@dataclass(frozen=True)
class Event:
    """One line of the append-only history: what changed, from what to what, and why."""

    at: float
    pool: str
    node: str
    kind: EventKind
    old: str
    new: str
    reason: str
    # what the line is part of, for counters, alerts and tests (never parsed from the text):
    change: ChangeKind | None = None  # a state line of a failover/switchover/takeover
    action: ActionKind | None = None  # an ACTION line: which action the executor ran

    @property
    def promoted_by_failover(self) -> bool:
        """The line where a node took the writes in an automatic (or operator) failover."""
        return self.change is ChangeKind.FAILOVER and self.new == "ACTIVE"
