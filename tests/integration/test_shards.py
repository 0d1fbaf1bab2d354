"""Pools shared among three `mpp run` on one real etcd (`[mpp] shard = true`).

Six pools over one real three-node sandbox (every pool polls the same servers, so every
probe is a real session). Each instance leads some pools; one killed with SIGKILL loses its
pools to the others within the lease; restarted under its name, it gets them back. A
sampler asks every instance every 100 ms which pools it leads: no pool is ever claimed by
two instances at once, and the store's leader keys agree.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from mpp.faults import wait_for
from mpp.sandbox.etcd import EtcdServer
from mpp.store.etcd import EtcdStore
from tests.conftest import Cluster
from tests.daemons import MppRun
from tests.ports import Ports

pytestmark = pytest.mark.integration

Make = Callable[..., Cluster]
POOLS = [f"p{i}" for i in range(1, 7)]
TTL = 3.0


class Instance:
    def __init__(self, config: Path, api: int, log: Path) -> None:
        self.config, self.api_port, self.logfile = config, api, log
        self.run = MppRun(config, log)

    def health(self, client: httpx.Client | None = None) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.api_port}/v1/health"
        try:
            answer = (client or httpx).get(url, timeout=0.5)
            doc: dict[str, Any] = answer.json()
            return doc
        except (httpx.HTTPError, ValueError):
            return {}

    def leads(self, client: httpx.Client | None = None) -> set[str]:
        return set(self.health(client).get("leads", []))


class Sampler:
    """Every 100 ms: which pools each live instance says it leads."""

    def __init__(self, instances: dict[str, Instance]) -> None:
        self.instances = instances
        self.doubles: list[tuple[float, str, list[str]]] = []
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client() as client:
            while not self.stop.wait(0.1):
                self._sample(client)

    def _sample(self, client: httpx.Client) -> None:
        claims: dict[str, list[str]] = {}
        for name, inst in list(self.instances.items()):
            for pool in inst.leads(client):
                claims.setdefault(pool, []).append(name)
        self.samples += 1
        for pool, names in claims.items():
            if len(names) > 1:
                self.doubles.append((time.time(), pool, names))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def test_three_instances_share_the_pools_and_move_them_when_one_dies(
    make_cluster: Make, etcd_server: EtcdServer, ports: Ports, tmp_path: Path
) -> None:
    cluster = make_cluster()
    base = cluster.doc["pool"][0]
    prefix = f"/shards-{uuid.uuid4().hex[:8]}"
    state = f"etcd://{etcd_server.host_port}{prefix}"
    pools = [{**base, "name": name} for name in POOLS]

    def config(name: str, api: int) -> Path:
        changes = {
            "mpp": {"state": state, "name": name, "leader_ttl": f"{TTL:g}s", "shard": True},
            "api": {"listen": f"127.0.0.1:{api}"},
            "pool": pools,
        }
        return cluster.variant(name, changes)

    apis = {name: ports.port() for name in ("a", "b", "c")}
    instances = {n: Instance(config(n, apis[n]), apis[n], tmp_path / f"{n}.log") for n in apis}
    sampler = Sampler(instances)
    store = EtcdStore([f"http://{etcd_server.host_port}"], prefix)
    try:

        def spread() -> bool:
            led = [inst.leads() for inst in instances.values()]
            return sorted(p for s in led for p in s) == POOLS and all(led)

        wait_for("every pool led, each instance leading some", spread, 30)
        before = {n: inst.leads() for n, inst in instances.items()}
        assert set(store.leaders()) == set(POOLS)

        instances["b"].run.kill()  # SIGKILL: no resignation, its leases must run out
        killed_at = time.monotonic()
        gone = instances.pop("b")
        moved = before["b"]

        def taken() -> bool:
            led = set().union(*(inst.leads() for inst in instances.values()))
            return moved <= led

        wait_for("b's pools taken over", taken, 3 * TTL)
        took = time.monotonic() - killed_at
        print(f"b's {sorted(moved)} taken over {took:.2f} s after SIGKILL (leader_ttl {TTL:g} s)")
        # the lease runs out <= TTL after the last renewal (etcd grants whole seconds and
        # may expire a lease up to about a second late), then one look (TTL / 6)
        assert took <= 2 * TTL + 1.0
        held = store.leaders()
        assert all("b@" not in held[p] for p in POOLS)

        instances["b"] = Instance(gone.config, gone.api_port, tmp_path / "b-again.log")
        wait_for("b gets its pools back", lambda: instances["b"].leads() == moved, 30)
        wait_for("every pool led once", spread, 30)
    finally:
        sampler.close()
        for inst in instances.values():
            inst.run.stop()
        store.close()
    assert sampler.samples > 50
    assert sampler.doubles == [], f"pools claimed by two instances: {sampler.doubles[:5]}"
