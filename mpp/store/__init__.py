"""State and history persistence; `open_store` picks the backend from `[mpp] state`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mpp.store.contract import Followed, Leader, NotLeader, Snapshot, Store, StoreError
from mpp.store.owners import new_owner
from mpp.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from pydantic import SecretStr

    from mpp.config.sections import EtcdLocation, EtcdSection


class StoreSettings(Protocol):
    """Where the store is: mpp.toml's Config, or the node agent's (mpp.config.agent)."""

    @property
    def etcd_location(self) -> EtcdLocation | None: ...
    @property
    def state_path(self) -> Path: ...
    @property
    def etcd(self) -> EtcdSection | None: ...
    def etcd_password(self) -> SecretStr | None: ...
    def resolve(self, relative: str, /) -> Path: ...


def open_store(config: StoreSettings, source_address: str | None = None) -> Store:
    """`source_address`: the local IP an etcd store's connections come from."""
    where = config.etcd_location
    if where is None:
        return SqliteStore(config.state_path)
    from mpp.store.etcd import EtcdAccess, EtcdStore  # only a distributed store needs it

    section = config.etcd
    if section is None:
        return EtcdStore(where.endpoints, where.prefix, source_address=source_address)
    access = EtcdAccess(
        user=section.user,
        password=config.etcd_password(),
        ca_file=config.resolve(section.ca_file) if section.ca_file else None,
        cert_file=config.resolve(section.cert_file) if section.cert_file else None,
        key_file=config.resolve(section.key_file) if section.key_file else None,
    )
    return EtcdStore(
        where.endpoints,
        where.prefix,
        timeout=section.timeout,
        access=access,
        source_address=source_address or section.source_address,
    )


__all__ = [
    "Followed",
    "Leader",
    "NotLeader",
    "Snapshot",
    "SqliteStore",
    "Store",
    "StoreError",
    "new_owner",
    "open_store",
]
