"""Which `mpp run` decides and acts when several share a store: the holder of its lease.

The lease is renewed every third of its TTL from a thread of its own, so nothing that runs
in the event loop or in the poll cycle (a pre_* hook, a slow store call, a switchover waiting
for a replica) can let it lapse. `held` turns False a fifth of the TTL before the lease could
expire, counted from when the renewal was sent: a leader cut off from the store stops acting
before a follower can take over. The lease also fences the leader's commits in the store
(NotLeader), so a leader deposed without noticing cannot record decisions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mpp.model import Event, EventKind
from mpp.run.repeat import every
from mpp.store import Store, StoreError, new_owner

log = logging.getLogger("mpp")

_HELD_FRACTION = 0.8


class Leadership:
    def __init__(
        self,
        store: Store,
        name: str,
        ttl: float,
        record_terms: bool = True,
        owner: str | None = None,
        scope: str | None = None,
    ) -> None:
        """`scope`: the lease of one pool (pools shared among instances, mpp.run.shards,
        which passes the instance's one `owner` to all of them); None: the one lease."""
        self.store = store
        self.owner = owner or new_owner(name)
        self.scope = scope
        self.ttl = ttl
        # `mpp poll` leads for one cycle at a time: a history line per cron run is noise
        self.record_terms = record_terms
        self.current: str | None = None  # who leads, as last seen
        self.term = 0  # times this process took the lease from someone (or no one)
        self.took_from: str | None = None  # who led before this term, as last seen
        self._held_until = 0.0
        self._said: bool | None = None  # the role last logged
        self._lock = threading.Lock()
        # why this instance may not lead now ("" when it may): its checkpoints say it is
        # cut off (mpp.run.reach); set by `mpp run`
        self.barred: Callable[[], str] = lambda: ""

    @property
    def held(self) -> bool:
        return time.monotonic() < self._held_until and not self.barred()

    def leader(self) -> str | None:
        """Who leads, as far as this process can tell now (for status and health)."""
        if self.held:
            return self.owner
        return self.current if self.current != self.owner else None

    def renew(self) -> bool:
        """Take or renew the lease once (blocking). A barred instance (cut off) gives the
        lease up instead, and only watches who leads."""
        why = self.barred()
        if why:
            if self._held_until > time.monotonic() or self.current == self.owner:
                log.warning("leadership: %s resigns the lease: %s", self.owner, why)
                self.resign()
            else:
                self.watch()
            return False
        sent = time.monotonic()
        try:
            got = self.store.lead(self.owner, self.ttl, self.scope)
            other = None if got else self.store.leader(self.scope)
        except StoreError as err:
            # while the lease still holds, a missed renewal is what the TTL is there to
            # absorb (an etcd election, a slow member): a warning; an error once it is gone
            left = self._held_until - time.monotonic()
            if left > 0:
                log.warning(
                    "leadership: renewal failed (the lease holds %.1f s more): %s", left, err
                )
            else:
                log.error("leadership: cannot reach the store: %s", err)
            got, other = None, None
        with self._lock:
            if got:
                if self.current != self.owner:  # a new term, not a renewal after a stall
                    self.term += 1
                    self.took_from = self.current
                self.current = self.owner
                self._held_until = sent + _HELD_FRACTION * self.ttl
            elif got is False:
                self._held_until = 0.0
                self.current = other.owner if other else None
        if got and (why := self.barred()):  # cut off while this renewal was on its way
            log.warning("leadership: %s resigns the lease: %s", self.owner, why)
            self.resign()
        self._log_role()
        return self.held

    def confirm(self, sent: float) -> None:
        """The lease was renewed by a request sent at `sent` (monotonic) on its holder's
        behalf (Shards' one renewal of all its pools): the same bookkeeping as `renew`."""
        with self._lock:
            if self.current != self.owner:
                self.term += 1
                self.took_from = self.current
            self.current = self.owner
            self._held_until = sent + _HELD_FRACTION * self.ttl
        self._log_role()

    def _log_role(self) -> None:
        held = self.held
        if held == self._said:
            return
        self._said = held
        what = f"pool {self.scope}" if self.scope else "the pools"
        if held:
            log.info("leadership: %s is now the leader and acts on %s", self.owner, what)
        elif self.current == self.owner:  # its own lease, not renewed in time
            log.warning(
                "leadership: %s stops acting on %s: its lease could not be renewed and may "
                "run out any moment",
                self.owner,
                what,
            )
        else:
            where = f" on {what}" if self.scope else ""
            log.info(
                "leadership: %s follows%s (leader: %s)", self.owner, where, self.current or "none"
            )

    def lost(self) -> None:
        """A save found the lease gone: stop acting at once; taking it again is a new term."""
        with self._lock:
            was = self.held
            self._held_until = 0.0
            if self.current == self.owner:
                self.current = None
        if was:
            log.warning("leadership: %s lost the lease; following", self.owner)
            self._said = False

    def event(self, pool: str, now: float) -> Event | None:
        """The history line that says this process took over the pool's decisions."""
        if not self.record_terms:
            return None
        before = self.took_from or "none"
        why = (
            f"took the leadership lease (last seen leader: {before}); "
            "decisions and topology actions for this pool now come from this mpp"
        )
        return Event(now, pool, "-", EventKind.LEADER, before, self.owner, why)

    def start(self) -> Callable[[], None]:
        """Renew from a thread; returns the function that stops it (and waits for it, so
        that no renewal can land after a resignation)."""
        return every(self.ttl / 3, self.renew, "mpp-lease", self.ttl)

    def resign(self) -> None:
        """A clean shutdown hands the lease over at once instead of after the TTL."""
        self._held_until = 0.0
        try:
            self.store.resign(self.owner, self.scope)
        except StoreError as err:
            log.error("leadership: could not resign: %s", err)
        with self._lock:
            if self.current == self.owner:
                self.current = None
        self._log_role()

    def watch(self) -> None:
        """Not this instance's to lead: only learn who does (status, the API)."""
        try:
            other = self.store.leader(self.scope)
        except StoreError:
            return
        self.watched(other.owner if other else None)

    def watched(self, holder: str | None) -> None:
        """`watch` with the holder already read (Shards reads every pool's in one request)."""
        with self._lock:
            self._held_until = 0.0
            self.current = holder
        self._log_role()
