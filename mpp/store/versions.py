"""What this process knows of every pool's version in one etcd prefix, shared by its stores.

The daemon's cycles ask `EtcdStore.is_current` with `within`: answered from one keys-only read
of every pool's version per `within` seconds instead of a load per pool-cycle. Shared by
every EtcdStore of the process on the same endpoints and prefix, so a write by another
store object here (the API runs each operator command on a store of its own) is known to
the daemon's as soon as that write is answered, not after the next read.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence


class KnownVersions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reading = threading.Lock()  # one read of every version at a time
        self._versions: dict[str, int] = {}
        self._read_at = -math.inf  # monotonic: when the last read began
        self._written_at: dict[str, float] = {}  # pool -> when this process last wrote it

    def current(
        self, pool: str, version: int, within: float, read: Callable[[], dict[str, int]]
    ) -> bool:
        """True when `version` was the pool's at a read begun at most `within` seconds ago,
        or was written since by this process. A thread that finds the read stale while
        another makes it answers False (its caller loads) instead of waiting."""
        if time.monotonic() - self._read_at >= within:
            if not self._reading.acquire(blocking=False):
                return False
            try:
                if time.monotonic() - self._read_at >= within:
                    begun = time.monotonic()
                    self.learn(read(), begun)
            finally:
                self._reading.release()
        with self._lock:
            return self._versions.get(pool) == version

    def learn(self, read: Mapping[str, int], begun: float) -> None:
        """Every pool's version from a read begun at `begun` (monotonic). The read is the
        truth (a restored etcd's revisions may go down, a deleted pool is forgotten), except
        for a version this process wrote after the read began. A read begun before the last
        one learnt is older than what is known: ignored."""
        fresh = dict(read)
        with self._lock:
            if begun < self._read_at:
                return
            for pool, at in self._written_at.items():
                if at >= begun and pool in self._versions:
                    fresh[pool] = max(fresh.get(pool, 0), self._versions[pool])
            self._versions, self._read_at = fresh, begun
            self._written_at = {p: at for p, at in self._written_at.items() if at >= begun}

    def wrote(self, pool: str, version: int) -> None:
        with self._lock:
            if self._versions.get(pool, 0) < version:
                self._versions[pool] = version
            self._written_at[pool] = time.monotonic()


_SHARED: dict[tuple[tuple[str, ...], str], KnownVersions] = {}
_SHARED_LOCK = threading.Lock()


def known_versions(endpoints: Sequence[str], prefix: str) -> KnownVersions:
    """The process's one KnownVersions for this cluster and prefix."""
    with _SHARED_LOCK:
        return _SHARED.setdefault((tuple(endpoints), prefix), KnownVersions())
