"""mpp's view of the node agents: each stored AgentReport dated by mpp's own clock.

The rule (mpp.model.agent states why): mpp never compares its clock with an agent host's.
A report is dated by when THIS process first saw it, on its own monotonic clock:

- a report is identified by (seq, agent_pid, sent_at): a new renewal changes seq, and an
  agent that restarted and counts from 0 again changes agent_pid or sent_at, so a restarted
  agent's report is never mistaken for an old one (which would age it too much, i.e. make
  mpp believe a live lease had run out);
- the first time a report is seen, it is dated now; while the same report is read again,
  its age grows (age = now - first seen); a new one starts again at 0;
- a tracker created fresh (an mpp restart) dates every report it finds as first seen now;
  a follower feeds its tracker from every follow read (mpp.run.follow), so when it takes
  the lead its reports keep the dates it saw them at (a report it missed is newer, and a
  newer report is dated when read: still never earlier than its write).

Since a report is only read after it was written, "first seen" is never earlier than the
agent's own renewal, so `AgentView.age` is never more than the report's true age and mpp's
estimate of when the agent's fence lease ran out is never earlier than the truth (at worst
it is late by the time between the write and the cycle that read it, plus a restart's gap).

Reports of another pool, or of a node the pool's spec does not name, are ignored: a stale
agent config must not speak for a node it is not beside. A node whose report disappears
from the store is forgotten (if it comes back, it is dated afresh).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mpp.model import AgentReport, AgentView, PoolSpec


@dataclass(frozen=True)
class _Seen:
    key: tuple[int, int, float]  # (seq, agent_pid, sent_at): what makes a report new
    report: AgentReport
    first_seen: float  # this process's monotonic clock


def _key(report: AgentReport) -> tuple[int, int, float]:
    return (report.seq, report.agent_pid, report.sent_at)


class AgentTracker:
    """One pool's agent reports as AgentViews; fed once per cycle with `store.reports()`."""

    def __init__(self, spec: PoolSpec, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.pool = spec.name
        self.nodes = frozenset(n.name for n in spec.nodes)
        self._clock = monotonic
        self._seen: dict[str, _Seen] = {}

    def views(self, reports: Mapping[str, AgentReport]) -> dict[str, AgentView]:
        """The views of this read of the store (node -> view); remembers what it saw."""
        now = self._clock()
        seen: dict[str, _Seen] = {}
        for report in reports.values():
            if report.pool != self.pool or report.node not in self.nodes:
                continue
            old = self._seen.get(report.node)
            if old is not None and old.key == _key(report):
                seen[report.node] = _Seen(old.key, report, old.first_seen)
            else:
                seen[report.node] = _Seen(_key(report), report, now)
        self._seen = seen
        return self._views(now)

    def last(self) -> dict[str, AgentView]:
        """The reports of the last successful read, aged to now: what mpp goes on with while
        the store cannot be read (their ages keep growing, so their leases only shorten)."""
        return self._views(self._clock())

    def _views(self, now: float) -> dict[str, AgentView]:
        return {
            node: AgentView(s.report, max(0.0, now - s.first_seen))
            for node, s in self._seen.items()
        }
