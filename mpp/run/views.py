"""This instance's view of a pool for the others, and the others' views dated by this
process (the quorum of views: mpp.model.views, mpp.logic.views).

Dating follows mpp.run.agents: a view is identified by (owner, seq, sent_at) and dated by
when THIS process first saw it, on its own monotonic clock, so no two hosts' clocks are
ever compared and a view is never taken for fresher than it is. A tracker created fresh
(an mpp restart, a follower just become leader) dates what it finds as first seen now: a
view dead instances left behind then counts for two intervals at most, and only against a
failure the leader's own probe already saw (a stale "ok" keeps a failing node up for those
two intervals; a stale "down" cannot fail anything the leader sees answering).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from mpp.model import NodeSight, Observation, PeerSight, PoolSpec, SiteView

_ERROR_TEXT = 120  # a sight's error is for people; the store keeps it short


def sight(obs: Observation) -> NodeSight:
    return NodeSight(
        obs.node, obs.reachable, obs.reachable and not obs.error, obs.error[:_ERROR_TEXT]
    )


@dataclass(frozen=True)
class _Seen:
    key: tuple[int, float]
    view: SiteView
    first_seen: float


class ViewTracker:
    """One pool's SiteViews of the other instances, fed once per cycle with store.views()."""

    def __init__(
        self, spec: PoolSpec, owner: str, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.pool = spec.name
        self.owner = owner
        self._clock = monotonic
        self._seen: dict[str, _Seen] = {}
        self.seq = 0

    def mine(self, site: str, interval: float, observations: Mapping[str, Observation]) -> SiteView:
        """The next view this instance writes."""
        self.seq += 1
        nodes = tuple(sight(o) for _, o in sorted(observations.items()))
        return SiteView(self.pool, self.owner, site, self.seq, interval, nodes, time.time())

    def read(self, views: Mapping[str, SiteView]) -> None:
        now = self._clock()
        seen: dict[str, _Seen] = {}
        for owner, view in views.items():
            if owner == self.owner or view.pool != self.pool or view.owner != owner:
                continue
            key = (view.seq, view.sent_at)
            old = self._seen.get(owner)
            first = old.first_seen if old is not None and old.key == key else now
            seen[owner] = _Seen(key, view, first)
        self._seen = seen

    def peers(self, node: str) -> tuple[PeerSight, ...]:
        now = self._clock()
        out = []
        for s in sorted(self._seen.values(), key=lambda s: (s.view.site, s.view.owner)):
            seen = s.view.sight(node)
            if seen is None:
                continue  # that instance's config lacks the node: no vote
            age = max(0.0, now - s.first_seen)
            out.append(
                PeerSight(
                    s.view.owner, s.view.site, seen.answered, age, s.view.interval, seen.error
                )
            )
        return tuple(out)

    def attach(self, observations: Mapping[str, Observation]) -> dict[str, Observation]:
        return {n: replace(o, peers=self.peers(n)) for n, o in observations.items()}

    def table(self) -> dict[str, SiteView]:
        """The other instances' views as last read (owner -> view), for the API."""
        return {owner: s.view for owner, s in self._seen.items()}
