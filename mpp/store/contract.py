"""The store contract: one interface, two backends (SQLite embedded, etcd distributed).

Shaped like Patroni's dcs/: immutable snapshots in, compare-and-set out. A writer loads a
Snapshot, decides, and saves with the version it loaded; a concurrent writer (the CLI, a
second mpp instance) makes the save fail instead of being silently overwritten, and the
loser decides again on fresh state. State and the cycle's events are written atomically.

Leadership: several `mpp run` may share one store (sites sharing etcd, or a standby
instance on the same SQLite file); exactly one of them, the holder of a lease that expires
unless renewed, decides and acts. A leader's save names it and fails with NotLeader once the
lease is no longer its own, so a deposed leader that has not noticed yet cannot commit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mpp.model import AgentReport, Event, PoolState, ReachReport, SiteView

# the save's signature in words every backend repeats: what to write, the version it must
# find (None: the pool must not exist yet); with `leader`, the lease holder it must find
Events = Sequence[Event]
Version = int | None


@dataclass(frozen=True)
class Snapshot:
    state: PoolState
    version: int


@dataclass(frozen=True)
class Followed:
    """Every pool's stored state and the events committed after a cursor, read together:
    what a follower publishes each interval, in one or two store requests whatever the
    number of pools (a request per pool and interval kept 3 instances x 333 pools on one
    etcd from cycling on time: docs/benchmarks.md)."""

    states: Mapping[str, Snapshot]
    events: tuple[Event, ...]  # committed after the cursor given, in commit order
    cursor: int  # the next call's `after`
    # pool -> node -> the agent's newest report: a follower dates them too, so that when it
    # takes the lead it knows since when a silent agent has been silent (mpp.run.agents)
    reports: Mapping[str, Mapping[str, AgentReport]]


class StoreError(Exception):
    """The store cannot be opened or written; the message says where and why."""


class NotLeader(StoreError):
    """A save made as leader, after the lease went to someone else (or expired)."""


@dataclass(frozen=True)
class Leader:
    """Who holds the leadership lease, and for how long at most without a renewal."""

    owner: str
    expires_in: float | None  # seconds; None when the backend cannot tell


class Store(ABC):
    #: how many calls the store serves at once to any effect; None: as many as come. A
    #: store that runs one at a time (SQLite: one connection under a lock) gains nothing
    #: from more threads calling it, only their switches and the wait on the lock
    serves_at_once: int | None = None
    #: True when `is_current` answers from the stored version itself whatever its `within`
    #: (no read of every pool's versions that may be up to `within` old): its True needs no
    #: second, exact look before a change is saved on it
    versions_exact: bool = False

    @abstractmethod
    def load(self, pool: str) -> Snapshot | None:
        """The pool's current state and version, or None when never saved."""

    def is_current(self, pool: str, version: int, within: float = 0.0) -> bool:
        """True when the store can tell for less than a `load` that `version` is still the
        pool's stored one (the caller then builds on the state it holds); False means
        changed, or cannot tell that cheaply: load. A save is compare-and-set either way.

        `within` > 0 lets a store answer from a read of every pool's version made at most
        that many seconds ago (etcd: one request for all pools instead of a load per pool).
        A stale True costs one cycle decided on a state another writer has just replaced,
        never a lost write: its save fails the compare and the cycle loads theirs, or, with
        nothing to write, it writes nothing and the next cycle sees the new version."""
        return False

    @abstractmethod
    def save(
        self,
        state: PoolState,
        events: Events,
        expect: Version,
        leader: str | None = None,
        scoped: bool = False,
    ) -> Version:
        """Compare-and-set: write if the stored version is still `expect` (None:
        the pool must not exist yet). Returns the new version, or None on conflict. With
        `leader`, the write also requires that owner to hold the lease (else NotLeader):
        the pool's own lease when `scoped` (pools shared among instances), else the one."""

    @abstractmethod
    def follow(self, after: int | None) -> Followed:
        """Every pool's state and version, the events committed after `after` (a cursor
        an earlier call returned; None: no events, only the cursor to start from), and every
        pool's agent reports. One consistent read: an event is never newer than the states
        read with it."""

    @abstractmethod
    def history(
        self, pool: str | None = None, node: str | None = None, limit: int = 50
    ) -> list[Event]:
        """The newest `limit` events, oldest first."""

    @abstractmethod
    def pools(self) -> list[str]:
        """Names of pools with stored state."""

    @abstractmethod
    def lead(self, owner: str, ttl: float, scope: str | None = None) -> bool:
        """Take the leadership lease for `ttl` seconds if it is free (or expired, or held by
        a process of this host that no longer exists), or renew it if `owner` holds it.
        True while `owner` is the leader. `scope`: one pool's lease (pools shared among
        instances, mpp.run.shards); None: the one lease over every pool."""

    def renew_held(self, owner: str, ttl: float, scopes: Sequence[str]) -> set[str]:
        """The pool leases among `scopes` that `owner` holds once this returns, each renewed
        for `ttl` from before the call: an instance's every renewal in as few requests as
        the backend allows (etcd: two, whatever the number of pools). A backend may also
        take a free one; this default does, with `lead` for each."""
        return {scope for scope in scopes if self.lead(owner, ttl, scope)}

    @abstractmethod
    def leader(self, scope: str | None = None) -> Leader | None:
        """The current holder of the lease (of `scope`), or None."""

    @abstractmethod
    def resign(self, owner: str, scope: str | None = None) -> None:
        """Give the lease (of `scope`) up at once (a clean shutdown, a handover), if
        `owner` holds it."""

    @abstractmethod
    def join(self, owner: str, ttl: float) -> None:
        """Say that `owner` is alive, for `ttl` seconds (pools shared among instances: the
        live members are who the pools are spread over). On etcd the presence and the
        owner's scoped leases share one lease, so they expire together."""

    @abstractmethod
    def members(self) -> list[str]:
        """The owners whose presence has not expired."""

    @abstractmethod
    def leaders(self) -> dict[str, str]:
        """Every pool's scoped lease holder: pool -> owner (for status)."""

    @abstractmethod
    def put_report(self, report: AgentReport) -> None:
        """Replace the node agent's report for (report.pool, report.node): the agent's fence
        lease renewal, so it must be durable when this returns; raises StoreError when the
        write did not happen (the agent then counts the lease as not renewed)."""

    @abstractmethod
    def reports(self, pool: str) -> dict[str, AgentReport]:
        """The newest report of every node agent of the pool, by node name."""

    @abstractmethod
    def put_reach(self, report: ReachReport) -> None:
        """Replace the checkpoint report of the instance `report.instance` names (what its
        checkpoints say, for `mpp status` and `mpp check` on any host)."""

    @abstractmethod
    def reach(self) -> dict[str, ReachReport]:
        """Every instance's latest checkpoint report, by instance name."""

    @abstractmethod
    def put_view(self, view: SiteView) -> None:
        """Replace this instance's view of the pool (view.pool, view.owner): how it sees
        every node this cycle (quorum = "majority"); raises StoreError when not written."""

    @abstractmethod
    def views(self, pool: str) -> dict[str, SiteView]:
        """Every instance's newest view of the pool, by owner (stale ones included: the
        reader ages them)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""
