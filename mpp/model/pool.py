"""A pool's whole remembered state: the logic's input and output and the store's unit.
Whatever the next decision depends on lives here, which is what makes a restart invisible."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from mpp.model.kinds import RequestKind
from mpp.model.node import NodeState, State


@dataclass(frozen=True)
class Request:
    """A planned switchover or a takeover asked for by the operator (CLI or API)."""

    kind: RequestKind
    to: str | None  # target node; None: the best candidate
    at: float  # when it was asked for
    timeout: float = 10.0  # switchover: how long writes may stay blocked waiting for catch-up
    force: bool = False  # takeover: promote even a candidate that is not the most advanced
    id: str = ""


@dataclass(frozen=True)
class PoolState:
    """A pool's whole remembered state; the logic's input and output, the store's unit."""

    name: str
    nodes: tuple[NodeState, ...] = ()
    cycle: int = 0
    updated_at: float | None = None
    pinned: str | None = None  # an operator chose this ACTIVE node: no automatic failback
    relinquish_to: str | None = None  # graceful handover announced last cycle, done this one
    draining: tuple[str, ...] = ()  # nodes being switched away from: finish sessions, take none
    request: Request | None = None  # an operator's switchover/takeover, waiting for the daemon
    switching: Request | None = None  # a switchover being carried out (crash: resolved next cycle)
    last_failover_at: float | None = None  # anti-flapping: automatic failovers blocked for a while
    failover_acknowledged: bool = True  # the operator lifted the block (`mpp acknowledge`)
    promoted_at: str = ""  # GTID position the ACTIVE node was promoted at: errant-check base
    alert: str = ""  # why the pool needs the operator (e.g. auto_failover off, unsafe candidate)
    promoting: str | None = None  # ACTIVE by decision, not yet writable: rw waits for it
    # a primary a failover or takeover left out -> the promotion point of that change: its
    # errant-check base when it returns (a later failover must not move it)
    rejoin_base: tuple[tuple[str, str], ...] = ()
    # nodes whose agents mpp asks to fence themselves (read-only, clients killed): a primary
    # mpp cannot reach but whose agent still renews its fence lease; the agent reads this
    fencing: tuple[str, ...] = ()
    # strict semi-sync (semi_sync = "strict"): since when the healthy ACTIVE node has had no
    # semi-sync replica (its writes wait), and the node whose semi-sync mpp relaxed
    # (semi_sync_fallback) until a replica is back
    semi_sync_alone_since: float | None = None
    semi_sync_relaxed: str | None = None

    def node(self, name: str) -> NodeState:
        return self._by_name[name]

    def has(self, name: str) -> bool:
        return name in self._by_name

    @cached_property
    def _by_name(self) -> dict[str, NodeState]:
        return {n.name: n for n in self.nodes}

    @property
    def active(self) -> tuple[NodeState, ...]:
        return tuple(n for n in self.nodes if n.state is State.ACTIVE)

    def with_node(self, new: NodeState) -> PoolState:
        return replace(self, nodes=tuple(new if n.name == new.name else n for n in self.nodes))
