"""Pools shared among several `mpp run` on one etcd (`[mpp] shard = true`).

Each pool has a lease of its own, and the live instances spread the pools between them by
rendezvous hashing with bounded load (`assignment`): every instance scores each (instance
name, pool) pair, and each pool goes to its best-scoring instance that still has room.
Every instance computes the same answer from the same member list, so there is no
coordinator and no vote; an instance that joins takes the pools it wins, one that leaves
(or dies) loses its pools to the next best. Hashing the instance's *name* (not its
per-process owner id) gives a restarted instance its pools back.

Safety is the store's, not the hash's: a pool's lease is a key that only one owner can
hold (compare-and-set), and every commit of a pool's state requires its lease holder, so
two instances never lead one pool even while their member lists disagree. A holder that
is no longer the winner resigns the pool, and the winner takes it at its next look.

Requests: a look renews every pool the instance holds in one `Store.renew_held` (etcd:
one keepalive of the instance's lease and one read), and only a pool it does not hold yet
costs requests of its own (`lead`).

Timing: looks every ttl/6. A dead instance's presence and its pools' leases share one
etcd lease and expire together at most `leader_ttl` after its last renewal; the next
winner takes each pool at its next look, so within leader_ttl + ttl/6.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable

from mpp.run.leadership import Leadership
from mpp.run.repeat import every
from mpp.store import Store, StoreError, new_owner

log = logging.getLogger("mpp")


def instance_name(owner: str) -> str:
    """The configured name inside an owner id (name@host:pid:token:scope)."""
    return owner.rsplit("@", 1)[0]


def _score(pool: str, member: str) -> tuple[bytes, str]:
    """Rendezvous score of (instance name, pool); ties (two instances given one name) go
    to the greater owner id, so every instance ranks alike."""
    return hashlib.sha256(f"{instance_name(member)}\0{pool}".encode()).digest(), member


def assignment(pools: Iterable[str], members: Iterable[str]) -> dict[str, str]:
    """Who leads each pool: rendezvous hashing with bounded load. Plain rendezvous can
    give one instance most pools when there are few (here, with names a, b, c and six
    pools, one got five and another none); so each instance takes at most
    ceil(pools / members), pools in name order each going to its best-ranked instance
    with room. Every instance computes this from the same sorted inputs, so all agree."""
    names, live = sorted(set(pools)), sorted(set(members))
    if not live:
        return {}
    room = -(-len(names) // len(live))
    load = dict.fromkeys(live, 0)
    out: dict[str, str] = {}
    for pool in names:
        for member in sorted(live, key=lambda m: _score(pool, m), reverse=True):
            if load[member] < room:
                out[pool] = member
                load[member] += 1
                break
    return out


class Shards:
    """This instance's share of the pools: one Leadership per pool, one owner id."""

    def __init__(self, store: Store, name: str, ttl: float, pools: Iterable[str]) -> None:
        self.store = store
        self.ttl = ttl
        self.owner = new_owner(name)
        self.leases = {p: Leadership(store, name, ttl, owner=self.owner, scope=p) for p in pools}
        self.members: list[str] = []
        self.barred: Callable[[], str] = lambda: ""  # mpp.run.reach: cut off

    def bar(self, barred: Callable[[], str]) -> None:
        """Every pool's lease asks `barred` too."""
        self.barred = barred
        for lease in self.leases.values():
            lease.barred = barred

    def look(self) -> None:
        """Say this instance is alive, then lead the pools it wins and hand back the rest.
        A barred instance (its checkpoints say it is cut off) says nothing, so that its
        presence runs out and the others spread its pools, and resigns what it holds."""
        if self.barred():
            for lease in self.leases.values():
                lease.renew()  # barred too: resigns or watches
            return
        try:
            self.store.join(self.owner, self.ttl)
            members = self.store.members()
        except StoreError as err:
            log.warning("shards: cannot reach the store: %s", err)
            for lease in self.leases.values():
                lease.renew()  # the same failure: each lease says how long it still holds
            return
        if self.owner not in members:
            members.append(self.owner)  # our own presence, just written
        if members != self.members:
            log.info("shards: %d instance(s): %s", len(members), ", ".join(members))
            self.members = members
        chosen = assignment(self.leases, members)
        mine = [p for p in self.leases if chosen.get(p) == self.owner]
        sent = time.monotonic()
        try:
            held = self.store.renew_held(self.owner, self.ttl, mine)
        except StoreError as err:
            log.warning("shards: cannot renew the pools' leases: %s", err)
            held = set()  # each pool's own renewal below says how long it still holds
        holders = self._holders(chosen)
        for pool, lease in self.leases.items():
            if pool in held:
                lease.confirm(sent)
            elif chosen.get(pool) == self.owner:
                lease.renew()
            elif lease.held or lease.current == self.owner:
                log.info("shards: pool %s goes to %s", pool, chosen.get(pool))
                lease.resign()
            elif holders is not None:
                lease.watched(holders.get(pool))
            else:
                lease.watch()

    def _holders(self, chosen: dict[str, str]) -> dict[str, str] | None:
        """Every pool's lease holder in one read, for the pools this instance only watches
        (status and the API; safety is the store's compare-and-set, not this): one request
        per look instead of two per watched pool. None (each pool asks for itself) when the
        read fails."""
        if all(chosen.get(p) == self.owner for p in self.leases):
            return None
        try:
            return self.store.leaders()
        except StoreError:
            return None

    def renew(self) -> bool:
        """The first look, before the loops start (Leadership's interface)."""
        self.look()
        return any(lease.held for lease in self.leases.values())

    def leaders(self) -> dict[str, str | None]:
        """Who leads each pool, as this instance last saw it."""
        return {p: lease.leader() for p, lease in self.leases.items()}

    def start(self) -> Callable[[], None]:
        """Look every ttl/6 from a thread; returns the function that stops it."""
        return every(self.ttl / 6, self.look, "mpp-shards", self.ttl)

    def resign(self) -> None:
        """A clean shutdown: every pool this instance leads is handed over at once."""
        for lease in self.leases.values():
            if lease.held:
                lease.resign()
