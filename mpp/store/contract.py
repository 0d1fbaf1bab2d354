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

import os
import secrets
import socket
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mpp.model import Event, PoolState


@dataclass(frozen=True)
class Snapshot:
    state: PoolState
    version: int


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
    @abstractmethod
    def load(self, pool: str) -> Snapshot | None:
        """The pool's current state and version, or None when never saved."""

    @abstractmethod
    def save(
        self,
        state: PoolState,
        events: Sequence[Event],
        expected_version: int | None,
        leader: str | None = None,
    ) -> int | None:
        """Compare-and-set: write if the stored version is still `expected_version` (None:
        the pool must not exist yet). Returns the new version, or None on conflict. With
        `leader`, the write also requires that owner to hold the lease (else NotLeader)."""

    @abstractmethod
    def history(
        self, pool: str | None = None, node: str | None = None, limit: int = 50
    ) -> list[Event]:
        """The newest `limit` events, oldest first."""

    @abstractmethod
    def pools(self) -> list[str]:
        """Names of pools with stored state."""

    @abstractmethod
    def lead(self, owner: str, ttl: float) -> bool:
        """Take the leadership lease for `ttl` seconds if it is free (or expired, or held by
        a process of this host that no longer exists), or renew it if `owner` holds it.
        True while `owner` is the leader."""

    @abstractmethod
    def leader(self) -> Leader | None:
        """The current holder of the lease, or None."""

    @abstractmethod
    def resign(self, owner: str) -> None:
        """Give the lease up at once (a clean shutdown), if `owner` holds it."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


def _scope() -> str:
    """What makes "this host" precise: the boot and the pid namespace. Two containers with
    the host's name but their own pid namespaces (or a cloned VM with the same hostname)
    must not read each other's pids as their own."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        pid_ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return "unknown"
    return f"{boot}.{pid_ns}"


def new_owner(name: str) -> str:
    """A leadership owner id unique to this process: a restarted mpp is a new owner, so two
    processes never both believe they hold the same lease."""
    return f"{name}@{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}:{_scope()}"


def vanished_here(owner: str) -> bool:
    """True when `owner` was a process of this very host (same hostname, same boot, same pid
    namespace) that no longer exists. Lets a restarted mpp take its dead predecessor's lease
    at once instead of waiting for it to expire (the SQLite case, and etcd sites restarted
    in place); anything else waits for the TTL."""
    try:
        _, where = owner.rsplit("@", 1)
        host, pid_text, _token, scope = where.rsplit(":", 3)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname() or scope != _scope() or scope == "unknown":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
