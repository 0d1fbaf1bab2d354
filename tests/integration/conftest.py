"""Fixtures the integration tests share."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpp.sandbox.etcd import EtcdServer
from mpp.store import SqliteStore, Store
from mpp.store.etcd import EtcdStore


@pytest.fixture(params=["sqlite", "etcd"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The store contract holds on every backend, so its tests run on each: a SQLite file,
    and a prefix of its own on the session's real etcd."""
    made: Store
    if request.param == "sqlite":
        made = SqliteStore(tmp_path / "state.db")
    else:
        server: EtcdServer = request.getfixturevalue("etcd_server")
        made = EtcdStore([server.endpoint], f"/test-{uuid.uuid4().hex[:8]}")
    yield made
    made.close()
