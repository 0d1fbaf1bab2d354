"""Store cost per poll cycle: SQLite (the baseline, measured in the same run) against etcd.

Every cycle of every pool loads the pool's state and saves it with compare-and-set (plus the
cycle's events when something changed), and the leader renews its lease every third of the
TTL. This measures those operations on a real single-member etcd started here (loopback,
fsync on the local disk) and on a SQLite file, with a 3-node pool state, and how long a
follower takes to lead after the leader resigns.

Prints one JSON document and one human line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.conditions import describe, filesystem, finish, machine  # noqa: E402
from bench.stats import pct  # noqa: E402
from mpp.logic.failover import decide, initial_state  # noqa: E402
from mpp.model import Event, EventKind, NodeSpec, NodeType, Observation, PoolSpec  # noqa: E402
from mpp.sandbox.etcd import EtcdServer  # noqa: E402
from mpp.store import SqliteStore, Store  # noqa: E402
from mpp.store.etcd import EtcdStore  # noqa: E402


def _spec() -> PoolSpec:
    return PoolSpec(
        "main",
        tuple(
            NodeSpec(f"db{i}", NodeType.PRIMARY if i == 1 else NodeType.SECONDARY, f"h{i}:3306")
            for i in (1, 2, 3)
        ),
    )


def _timed(op: Callable[[], object], count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        op()
        out.append((time.perf_counter() - started) * 1000)
    return out


def measure(store: Store, count: int) -> dict[str, float]:
    spec = _spec()
    obs = {n.name: Observation(n.name, 0.0, reachable=True) for n in spec.nodes}
    state = decide(spec, initial_state(spec), obs, 1.0).state
    version = store.save(state, (), None)
    assert version is not None
    cycle_ms: list[float] = []
    for i in range(count):  # one poll cycle's store work: load, then compare-and-set save
        event = Event(float(i), "main", "db2", EventKind.STATUS, "OK", "OK INFO", "bench")
        events = (event,) * (i % 2)
        started = time.perf_counter()
        snap = store.load("main")
        assert snap is not None
        version = store.save(snap.state, events, snap.version, None)
        cycle_ms.append((time.perf_counter() - started) * 1000)
        assert version is not None
    store.lead("bench-a", 10)
    renew_ms = _timed(lambda: store.lead("bench-a", 10), max(20, count // 10))
    history_ms = _timed(lambda: store.history("main", limit=50), 20)
    store.resign("bench-a")
    return {
        "cycle_p50_ms": round(statistics.median(cycle_ms), 3),
        "cycle_p99_ms": round(pct(cycle_ms, 0.99), 3),
        "renew_p50_ms": round(statistics.median(renew_ms), 3),
        "history50_p50_ms": round(statistics.median(history_ms), 3),
    }


def handover_ms(store_a: Store, store_b: Store, runs: int) -> float:
    """Leader resigns, follower's very next lead() wins: the clean-stop handover cost."""
    samples = []
    for _ in range(runs):
        assert store_a.lead("a", 10)
        started = time.perf_counter()
        store_a.resign("a")
        assert store_b.lead("b", 10)
        samples.append((time.perf_counter() - started) * 1000)
        store_b.resign("b")
    return round(statistics.median(samples), 3)


def sqlite_conditions(store: SqliteStore) -> dict[str, Any]:
    """The journal mode and synchronous level of the store's own connection (synchronous
    is per connection: another connection to the file would report its own)."""
    db = store._db  # the bench reads the pragmas mpp set; SqliteStore has no accessor
    mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    level = int(db.execute("PRAGMA synchronous").fetchone()[0])
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return {
        "journal_mode": str(mode).upper(),
        "synchronous": names.get(level, str(level)),
        "filesystem": filesystem(store.path.parent),
    }


def etcd_conditions(server: EtcdServer) -> dict[str, Any]:
    """The etcd version and member count, as the server reports them."""
    with httpx.Client(timeout=5.0) as client:
        version = client.get(f"{server.endpoint}/version").json()
        members = client.post(f"{server.endpoint}/v3/cluster/member/list", json={}).json()
    return {
        "version": version.get("etcdserver", "unknown"),
        "members": len(members.get("members", [])),
        "filesystem": filesystem(server.directory),
        "transport": "HTTP gateway over loopback, no TLS",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="cycles per backend")
    parser.add_argument("--port", type=int, default=26740, help="etcd client port (+1 peer)")
    args = parser.parse_args()
    host = machine()
    with tempfile.TemporaryDirectory(prefix="mpp-bench-store-") as tmp:
        sqlite = SqliteStore(Path(tmp) / "state.db")
        sqlite_b = SqliteStore(Path(tmp) / "state.db")
        server = EtcdServer(Path(tmp) / "etcd", args.port, args.port + 1)
        server.start()
        try:
            etcd = EtcdStore([server.endpoint], "/bench")
            etcd_b = EtcdStore([server.endpoint], "/bench")
            kinds = {"sqlite": sqlite_conditions(sqlite), "etcd": etcd_conditions(server)}
            results = {
                "sqlite": {
                    **measure(sqlite, args.count),
                    "handover_ms": handover_ms(sqlite, sqlite_b, 20),
                },
                "etcd": {**measure(etcd, args.count), "handover_ms": handover_ms(etcd, etcd_b, 20)},
            }
            etcd.close()
            etcd_b.close()
        finally:
            server.stop()
            sqlite.close()
            sqlite_b.close()
    ratio = results["etcd"]["cycle_p50_ms"] / results["sqlite"]["cycle_p50_ms"]
    doc = {
        "bench": "store",
        "count": args.count,
        "conditions": {**kinds, "pool_nodes": 3, "machine": finish(host)},
        "results": results,
        "etcd_over_sqlite_cycle_p50": round(ratio, 2),
    }
    print(json.dumps(doc, indent=2))
    e, s = results["etcd"], results["sqlite"]
    print(
        f"store per cycle (load + CAS save), p50/p99: sqlite {s['cycle_p50_ms']}/"
        f"{s['cycle_p99_ms']} ms, etcd {e['cycle_p50_ms']}/{e['cycle_p99_ms']} ms "
        f"(etcd/sqlite {ratio:.2f}x); lease renewal p50 sqlite {s['renew_p50_ms']} ms, etcd "
        f"{e['renew_p50_ms']} ms; history(50) p50 sqlite {s['history50_p50_ms']} ms, etcd "
        f"{e['history50_p50_ms']} ms; clean handover p50 sqlite {s['handover_ms']} ms, etcd "
        f"{e['handover_ms']} ms"
        + describe(
            f"sqlite journal {kinds['sqlite']['journal_mode']}, synchronous "
            f"{kinds['sqlite']['synchronous']} on {kinds['sqlite']['filesystem']}; etcd "
            f"{kinds['etcd']['version']}, {kinds['etcd']['members']} member(s) on "
            f"{kinds['etcd']['filesystem']}, loopback; 3-node pool state, {args.count} cycles",
            host,
        )
    )


if __name__ == "__main__":
    main()
