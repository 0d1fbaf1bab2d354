"""How each mpp instance sees a pool's nodes, so that one site's broken link does not
decide for every site (issue 14's quorum of views).

With `quorum = "majority"` every instance probes every node each cycle and writes a
SiteView under its own key in the store; the leader reads the others' views and attaches
them to its own observations as PeerSights. The logic (mpp.logic.views) then fails a node
only when the leader's own probe and a majority of the fresh views agree that it does not
answer.

As with agent reports, nobody compares clocks across hosts: the reader dates a view by when
it first saw its `seq` (PeerSight.age); a view older than two of its writer's intervals does
not count, for either side.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Quorum(enum.StrEnum):
    """Who decides that a node does not answer."""

    LEADER = "leader"  # the leader's own probe alone (one instance, or sites that trust it)
    MAJORITY = "majority"  # the leader's probe and a majority of the fresh views


@dataclass(frozen=True)
class QuorumPolicy:
    mode: Quorum = Quorum.LEADER


@dataclass(frozen=True)
class NodeSight:
    """One node as one instance's probe saw it in one cycle."""

    node: str
    reachable: bool
    answered: bool  # reachable and its queries answered (no error)
    error: str = ""  # the probe's error, shortened, for people


@dataclass(frozen=True)
class SiteView:
    """One instance's newest sight of every node of one pool (the store keeps the newest
    per (pool, owner))."""

    pool: str
    owner: str  # the instance's id (the leadership owner)
    site: str  # the instance's site ('' when none is configured)
    seq: int  # rises with every view this instance writes
    interval: float  # its poll interval: a view older than two of them does not count
    nodes: tuple[NodeSight, ...]
    sent_at: float = 0.0  # the writer's wall clock: shown to people, never compared

    def sight(self, node: str) -> NodeSight | None:
        for s in self.nodes:
            if s.node == node:
                return s
        return None


@dataclass(frozen=True)
class PeerSight:
    """Another instance's sight of one node, aged by the reader's clock."""

    owner: str
    site: str
    answered: bool
    age: float  # seconds since this reader first saw the view
    interval: float  # the writer's poll interval
    error: str = ""

    @property
    def fresh(self) -> bool:
        """Counts for the quorum: no older than two of its writer's intervals."""
        return self.age <= 2.0 * self.interval
