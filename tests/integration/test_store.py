"""The store contract, held by both backends: SQLite (embedded) and etcd (a real etcd server
started by mpp/sandbox/etcd.py). Compare-and-set, atomic events, history, leadership."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mpp.faults import wait_for
from mpp.logic.failover import decide, initial_state
from mpp.model import Event, EventKind
from mpp.sandbox.etcd import EtcdServer
from mpp.store import NotLeader, SqliteStore, Store, StoreError, new_owner
from mpp.store.etcd import EtcdStore
from tests.builders import observe, ring_spec
from tests.ports import Ports

# the shortest lease each backend honours: etcd rounds a lease up to about 2 s
_TTL = {"sqlite": 0.5, "etcd": 2.0}


def _ttl(store: Store) -> float:
    return _TTL["etcd" if isinstance(store, EtcdStore) else "sqlite"]


def _event(at: float, node: str = "db1", reason: str = "", pool: str = "main") -> Event:
    return Event(at, pool, node, EventKind.STATUS, "OK", "OK INFO", reason)


def test_save_is_compare_and_set(store: Store) -> None:
    spec = ring_spec()
    first = decide(spec, initial_state(spec), observe(spec, {}), 1.0)
    assert store.load("main") is None
    v1 = store.save(first.state, first.events, None)
    assert v1 is not None
    assert store.save(first.state, (), None) is None, "pool exists: creating it again must fail"
    snap = store.load("main")
    assert snap is not None and snap.version == v1 and snap.state == first.state
    second = decide(spec, snap.state, observe(spec, {"db2": "offline"}), 2.0)
    v2 = store.save(second.state, second.events, v1)
    assert v2 is not None and v2 != v1
    assert store.save(second.state, second.events, v1) is None, "stale version must lose"
    assert [e.new for e in store.history("main") if e.kind is EventKind.STATE] == [
        "ACTIVE",
        "STANDBY",
        "STANDBY",
    ]


def test_conflicting_save_writes_no_events(store: Store) -> None:
    spec = ring_spec()
    state = initial_state(spec)
    version = store.save(state, (), None)
    assert version is not None
    assert store.save(state, (_event(1.0),), version + 99) is None
    assert store.history() == []


def test_history_filters_and_limits(store: Store) -> None:
    spec = ring_spec()
    events = [_event(float(i), f"db{i % 3 + 1}", f"r{i}") for i in range(10)]
    store.save(initial_state(spec), events, None)
    assert [e.reason for e in store.history(limit=3)] == ["r7", "r8", "r9"]
    assert {e.node for e in store.history(node="db2")} == {"db2"}
    assert [e.reason for e in store.history("main", "db2", limit=2)] == ["r4", "r7"]
    assert store.pools() == ["main"]


def test_history_merges_pools_by_time_and_pages_past_other_nodes(store: Store) -> None:
    main, other = ring_spec(), ring_spec(name="other")
    noise = [_event(float(i), "db1", f"m{i}") for i in range(300)]
    store.save(initial_state(main), [_event(0.5, "db3", "first"), *noise], None)
    store.save(initial_state(other), [_event(299.5, "db1", "o", pool="other")], None)
    assert [e.reason for e in store.history(node="db3")] == ["first"]
    newest = store.history(limit=150)
    assert len(newest) == 150 and [e.reason for e in newest[-2:]] == ["m299", "o"]
    assert newest[0].reason == "m151" and newest == sorted(newest, key=lambda e: e.at)
    assert [e.reason for e in store.history("other")] == ["o"]
    assert store.pools() == ["main", "other"]


def test_only_one_owner_leads_and_a_leaders_save_needs_the_lease(store: Store) -> None:
    ttl = _ttl(store)
    spec = ring_spec()
    assert store.leader() is None
    assert store.lead("a", ttl) is True
    assert store.lead("b", ttl) is False, "the lease is a's"
    assert store.lead("a", ttl) is True, "the holder renews"
    found = store.leader()
    assert found is not None and found.owner == "a"
    assert found.expires_in is None or 0 < found.expires_in <= ttl + 1
    version = store.save(initial_state(spec), (), None, leader="a")
    assert version is not None
    with pytest.raises(NotLeader):
        store.save(initial_state(spec), (_event(1.0),), version, leader="b")
    assert store.history() == [], "a refused leader's events are not written"
    store.resign("b")  # not the holder: nothing happens
    assert store.lead("b", ttl) is False
    store.resign("a")
    assert store.leader() is None
    assert store.lead("b", ttl) is True, "a resigned: the lease is free at once"


def test_an_expired_lease_passes_on_and_the_old_leader_cannot_commit(store: Store) -> None:
    ttl = _ttl(store)
    spec = ring_spec()
    assert store.lead("a", ttl)
    version = store.save(initial_state(spec), (), None, leader="a")
    wait_for("a's lease to expire and b to lead", lambda: store.lead("b", ttl), ttl + 3)
    with pytest.raises(NotLeader):
        store.save(initial_state(spec), (), version, leader="a")
    assert store.lead("a", ttl) is False


def test_a_vanished_leader_of_this_host_is_replaced_at_once(store: Store) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = new_owner("live")  # this very process: alive
    scope = live.rsplit(":", 1)[1]
    host = socket.gethostname()
    ghost = f"old@{host}:{dead.pid}:0000:{scope}"
    ttl = 60.0
    for holder in (
        f"old@not-{host}:{dead.pid}:0000:{scope}",  # another host
        f"old@{host}:{dead.pid}:0000:0000.1",  # same name, another boot or pid namespace
        f"old@{host}:{dead.pid}:0000",  # no scope: cannot tell
        live,
    ):
        assert store.lead(holder, ttl)
        assert store.lead("new", ttl) is False, f"{holder} must keep its lease until the TTL"
        store.resign(holder)
    assert store.lead(ghost, ttl)
    assert store.lead("new", ttl) is True, "a dead process of this host does not block"


def test_another_process_sees_committed_state(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    spec = ring_spec()
    store.save(decide(spec, initial_state(spec), observe(spec, {}), 1.0).state, (), None)
    code = (
        "import sys; from mpp.store import SqliteStore; "
        f"s = SqliteStore(__import__('pathlib').Path({str(path)!r})); "
        "print(s.load('main').state.node('db1').state)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open state store"):
        SqliteStore(blocker / "sub" / "state.db")


def test_etcd_uses_the_next_endpoint_and_says_when_none_answers(
    etcd_server: EtcdServer, ports: Ports
) -> None:
    port = ports.port()
    dead = f"http://127.0.0.1:{port}"  # nothing listens here
    store = EtcdStore([dead, etcd_server.endpoint], f"/test-{uuid.uuid4().hex[:8]}", timeout=1)
    try:
        assert store.pools() == []
    finally:
        store.close()
    lonely = EtcdStore([dead], "/x", timeout=1)
    try:
        with pytest.raises(StoreError, match=rf"no etcd endpoint answered.*{port}"):
            lonely.load("main")
    finally:
        lonely.close()


def test_history_is_in_commit_order_whatever_the_clocks_say(store: Store) -> None:
    """A new leader whose clock is behind: its events still come after the old ones."""
    spec = ring_spec()
    version = store.save(initial_state(spec), [_event(100.0, reason="old leader")], None)
    store.save(initial_state(spec), [_event(50.0, reason="new leader, slow clock")], version)
    assert [e.reason for e in store.history("main")] == ["old leader", "new leader, slow clock"]
    assert [e.reason for e in store.history(limit=1)] == ["new leader, slow clock"]


def test_etcd_endpoint_that_is_not_etcd_is_a_store_error(ports: Ports) -> None:
    import http.server
    import threading

    class NotEtcd(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"404 page not found")

        def log_message(self, *args: object) -> None:
            pass

    port = ports.port()
    server = http.server.HTTPServer(("127.0.0.1", port), NotEtcd)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    store = EtcdStore([f"http://127.0.0.1:{port}"], "/x", timeout=2)
    try:
        with pytest.raises(StoreError, match="not JSON: '404 page not found'"):
            store.load("main")
    finally:
        store.close()
        server.shutdown()
        server.server_close()


def test_follow_reads_every_pool_the_new_events_and_the_reports_at_once(store: Store) -> None:
    """A follower's one read per interval (mpp.run.follow): every pool's state and
    version, only the events committed after the cursor (each once, in commit order,
    whatever their clocks say), and every pool's agent reports."""
    from tests.integration.test_store_reports import full

    spec = ring_spec()
    start = store.follow(None)
    assert start.states == {} and start.events == () and start.reports == {}
    versions = {}
    for pool in ("a", "b"):
        state = dataclasses.replace(initial_state(spec), name=pool)
        versions[pool] = store.save(state, (_event(5.0, reason=f"{pool} first", pool=pool),), None)
    store.put_report(full("db1", 7, pool="a"))
    got = store.follow(start.cursor)
    assert {p: s.version for p, s in got.states.items()} == versions
    assert [e.reason for e in got.events] == ["a first", "b first"]
    assert got.reports["a"]["db1"].seq == 7 and "b" not in got.reports
    again = store.follow(got.cursor)
    assert again.events == () and again.states.keys() == {"a", "b"}
    snap = again.states["b"]
    store.save(snap.state, (_event(1.0, reason="b second, earlier clock", pool="b"),), snap.version)
    later = store.follow(again.cursor)
    assert [e.reason for e in later.events] == ["b second, earlier clock"]
    assert later.states["b"].version != snap.version
    assert store.follow(None).events == ()  # no cursor: nothing old, only where to start


def test_renew_held_keeps_an_owners_pools_and_never_reports_anothers(store: Store) -> None:
    """Shards' one renewal per look: every pool lease the owner holds is renewed (still
    its own more than a TTL after it was taken), and one another owner holds is never said
    to be held (nor taken)."""
    import time

    ttl = _ttl(store)
    a, b = new_owner("a"), new_owner("b")
    assert store.lead(a, ttl, "p1") and store.lead(a, ttl, "p2") and store.lead(b, ttl, "p3")
    assert store.renew_held(a, ttl, []) == set()
    deadline = time.monotonic() + 1.5 * ttl
    while time.monotonic() < deadline:
        assert store.renew_held(a, ttl, ["p1", "p2", "p3"]) >= {"p1", "p2"}
        assert store.renew_held(a, ttl, ["p3"]) == set()
        assert store.lead(b, ttl, "p3")  # b's own renewal
        time.sleep(ttl / 4)
    for pool in ("p1", "p2"):
        found = store.leader(pool)
        assert found is not None and found.owner == a, (pool, found)
    found = store.leader("p3")
    assert found is not None and found.owner == b
