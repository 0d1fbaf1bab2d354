"""What this process knows of every pool's version in one etcd prefix, shared by its stores.

The daemon's cycles ask `EtcdStore.is_current` with `within`: answered from one keys-only read
of every pool's version per `within` seconds instead of a load per pool-cycle. Shared by
every EtcdStore of the process on the same endpoints and prefix, so a write by another
store object here (the API runs each operator command on a store of its own) is known to
the daemon's at once, not after the next read: the daemon then never publishes a state
older than one the API has just published.
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
        """Every pool's version from a read begun at `begun` (monotonic); a version written
        by this process while the read was under way is newer and stays (versions only
        grow). A pool missing from the read is forgotten."""
        fresh = dict(read)
        with self._lock:
            for pool, version in self._versions.items():
                if pool in fresh and version > fresh[pool]:
                    fresh[pool] = version
            self._versions, self._read_at = fresh, begun

    def wrote(self, pool: str, version: int) -> None:
        with self._lock:
            if self._versions.get(pool, 0) < version:
                self._versions[pool] = version


_SHARED: dict[tuple[tuple[str, ...], str], KnownVersions] = {}
_SHARED_LOCK = threading.Lock()


def known_versions(endpoints: Sequence[str], prefix: str) -> KnownVersions:
    """The process's one KnownVersions for this cluster and prefix."""
    with _SHARED_LOCK:
        return _SHARED.setdefault((tuple(endpoints), prefix), KnownVersions())
