"""The store contract's views (put_view, views) on both backends, a SQLite file and a real
etcd: what an instance shares comes back field for field, views are kept apart by pool and
by owner, and a damaged one is a named StoreError, never a wrong vote."""

from __future__ import annotations

import base64
import sqlite3
from dataclasses import replace

import httpx
import pytest

from mpp.model import NodeSight, SiteView
from mpp.store import SqliteStore, Store, StoreError
from mpp.store.etcd import EtcdStore

pytestmark = pytest.mark.integration


def view(owner: str = "mpp-b@host:1", seq: int = 1, pool: str = "main") -> SiteView:
    return SiteView(
        pool=pool,
        owner=owner,
        site="dc2",
        seq=seq,
        interval=1.5,
        nodes=(
            NodeSight("db1", True, True),
            NodeSight("db2", True, False, "1040 Too many connections « ü »"),
            NodeSight("db3", False, False, "2003 Can't connect"),
        ),
        sent_at=1764600000.25,
    )


def test_a_view_comes_back_as_written_and_a_newer_one_replaces_it(store: Store) -> None:
    assert store.views("main") == {}
    store.put_view(view())
    store.put_view(view("mpp-c@host:2"))
    assert store.views("main") == {"mpp-b@host:1": view(), "mpp-c@host:2": view("mpp-c@host:2")}
    newer = replace(view(seq=2), interval=1.0, sent_at=5.0, nodes=())
    store.put_view(newer)
    back = store.views("main")["mpp-b@host:1"]
    assert back == newer and type(back.interval) is float and type(back.sent_at) is float


def test_views_are_kept_apart_by_pool(store: Store) -> None:
    for pool in ("main", "main2"):
        store.put_view(view(seq=len(pool), pool=pool))
    assert [v.seq for v in store.views("main").values()] == [4]
    assert [v.seq for v in store.views("main2").values()] == [5]
    assert store.views("none") == {}
    assert store.pools() == [], "a view is not a pool's state"


_DAMAGED = [
    "not json",
    "[]",
    '{"pool": "main", "owner": "x", "site": "", "seq": 1, "interval": 1}',
    '{"pool": "main", "owner": "x", "site": "", "seq": "1", "interval": 1, "nodes": []}',
    '{"pool": "main", "owner": "x", "site": "", "seq": 1, "interval": 0, "nodes": []}',
    '{"pool": "main", "owner": "x", "site": "", "seq": 1, "interval": 1, '
    '"nodes": [{"node": "db1", "reachable": 1, "answered": true}]}',
]


@pytest.mark.parametrize("text", _DAMAGED)
def test_an_unreadable_view_is_a_store_error_naming_the_store(store: Store, text: str) -> None:
    if isinstance(store, SqliteStore):
        db = sqlite3.connect(store.path)
        with db:
            db.execute(
                "INSERT OR REPLACE INTO site_view (pool, owner, view) VALUES (?, ?, ?)",
                ("main", "x", text),
            )
        db.close()
        where = str(store.path)
    else:
        assert isinstance(store, EtcdStore)
        key = base64.b64encode(f"{store.prefix}/views/main/x".encode()).decode()
        value = base64.b64encode(text.encode()).decode()
        httpx.post(f"{store.endpoints[0]}/v3/kv/put", json={"key": key, "value": value})
        where = repr(store)
    with pytest.raises(StoreError) as caught:
        store.views("main")
    assert where in str(caught.value) and "a view of pool 'main' is unreadable" in str(caught.value)
    assert store.views("other") == {}
