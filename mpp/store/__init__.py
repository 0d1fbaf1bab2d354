"""State and history persistence; `open_store` picks the backend from `[mpp] state`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mpp.store.base import Leader, NotLeader, Snapshot, Store, StoreError, new_owner
from mpp.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from mpp.config import Config


def open_store(config: Config) -> Store:
    where = config.etcd
    if where is None:
        return SqliteStore(config.state_path)
    from mpp.store.etcd import EtcdStore  # httpx is only needed for a distributed store

    return EtcdStore(where.endpoints, where.prefix)


__all__ = [
    "Leader",
    "NotLeader",
    "Snapshot",
    "SqliteStore",
    "Store",
    "StoreError",
    "new_owner",
    "open_store",
]
