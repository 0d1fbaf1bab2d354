"""State and history persistence; `open_store` picks the backend from `[mpp] state`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mpp.store.contract import Leader, NotLeader, Snapshot, Store, StoreError
from mpp.store.owners import new_owner
from mpp.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from mpp.config import Config


def open_store(config: Config) -> Store:
    where = config.etcd_location
    if where is None:
        return SqliteStore(config.state_path)
    from mpp.store.etcd import EtcdAccess, EtcdStore  # only a distributed store needs httpx

    section = config.etcd
    if section is None:
        return EtcdStore(where.endpoints, where.prefix)
    access = EtcdAccess(
        user=section.user,
        password=config.etcd_password(),
        ca_file=config.resolve(section.ca_file) if section.ca_file else None,
        cert_file=config.resolve(section.cert_file) if section.cert_file else None,
        key_file=config.resolve(section.key_file) if section.key_file else None,
    )
    return EtcdStore(where.endpoints, where.prefix, timeout=section.timeout, access=access)


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
