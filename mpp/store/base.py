"""The store contract: one interface, two backends (SQLite embedded now, etcd next).

Shaped like Patroni's dcs/: immutable snapshots in, compare-and-set out. A writer loads a
Snapshot, decides, and saves with the version it loaded; a concurrent writer (the CLI, a
second mpp instance) makes the save fail instead of being silently overwritten, and the
loser decides again on fresh state. State and the cycle's events are written atomically.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from mpp.model import Event, PoolState


@dataclass(frozen=True)
class Snapshot:
    state: PoolState
    version: int


class StoreError(Exception):
    """The store cannot be opened or written; the message says where and why."""


class Store(ABC):
    @abstractmethod
    def load(self, pool: str) -> Snapshot | None:
        """The pool's current state and version, or None when never saved."""

    @abstractmethod
    def save(
        self, state: PoolState, events: Sequence[Event], expected_version: int | None
    ) -> int | None:
        """Compare-and-set: write if the stored version is still `expected_version` (None:
        the pool must not exist yet). Returns the new version, or None on conflict."""

    @abstractmethod
    def history(
        self, pool: str | None = None, node: str | None = None, limit: int = 50
    ) -> list[Event]:
        """The newest `limit` events, oldest first."""

    @abstractmethod
    def pools(self) -> list[str]:
        """Names of pools with stored state."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""
