"""State and history persistence; `open_store` picks the backend from the config's URL."""

from __future__ import annotations

from pathlib import Path

from mpp.store.base import Snapshot, Store, StoreError
from mpp.store.sqlite import SqliteStore


def open_store(path: Path) -> Store:
    return SqliteStore(path)


__all__ = ["Snapshot", "SqliteStore", "Store", "StoreError", "open_store"]
