"""Two `mpp run` sharing one etcd store: one leads and acts, the other follows and takes over.

Real parts only: a MariaDB primary-replica sandbox, a real etcd (mpp/sandbox/etcd.py), and
two `mpp run` processes, as two sites would run them.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mpp.faults import wait_for
from mpp.model import EventKind
from mpp.sandbox.etcd import EtcdServer
from mpp.store.etcd import EtcdStore
from tests.conftest import Cluster
from tests.daemons import MppRun, mpp_command
from tests.integration.test_topology import Make, pr_cluster, role
from tests.ports import Ports

pytestmark = pytest.mark.integration


def _site_config(cluster: Cluster, etcd: EtcdServer, prefix: str, name: str, api: int) -> Path:
    state = f"etcd://{etcd.host_port}{prefix}"
    changes = {
        "mpp": {"state": state, "name": name, "leader_ttl": "3s"},
        "api": {"listen": f"127.0.0.1:{api}"},
    }
    return cluster.variant(name, changes)


class Site:
    def __init__(self, config: Path, api: int, logs: Path) -> None:
        self.api = f"http://127.0.0.1:{api}"
        self.run = MppRun(config, logs / config.with_suffix(".log").name)
        self.log = self.run.log

    def health(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = httpx.get(self.api + "/v1/health", timeout=1).json()
            return doc
        except httpx.HTTPError:
            return {}

    def pools(self) -> dict[str, Any]:
        doc: dict[str, Any] = httpx.get(self.api + "/v1/pools", timeout=1).json()
        return doc


def _active(site: Site) -> list[str]:
    nodes = site.pools()["pools"][0]["nodes"]
    return [n["name"] for n in nodes if n["state"] == "ACTIVE"]


@dataclass
class Pair:
    cluster: Cluster
    prefix: str  # the etcd prefix the two sites share
    a: Site
    b: Site


@pytest.fixture
def two_sites(
    make_cluster: Make, etcd_server: EtcdServer, ports: Ports, tmp_path: Path
) -> Iterator[Callable[[int], Pair]]:
    """Factory: a primary-replica sandbox of N nodes, site-a started first and leading, then
    site-b following (each with its own API); both stopped after the test."""
    made: list[Site] = []

    def start(nodes: int) -> Pair:
        cluster = pr_cluster(make_cluster, nodes=nodes)
        prefix = f"/sites-{uuid.uuid4().hex[:8]}"

        def site(name: str) -> Site:
            api = ports.port()
            made.append(Site(_site_config(cluster, etcd_server, prefix, name, api), api, tmp_path))
            return made[-1]

        a = site("site-a")
        wait_for("site-a to lead", lambda: a.health().get("role") == "leader", 15)
        b = site("site-b")
        wait_for("site-b to answer as follower", lambda: b.health().get("role") == "follower", 15)
        return Pair(cluster, prefix, a, b)

    yield start
    for s in made:
        s.run.stop()


def test_one_site_leads_the_other_follows_then_takes_over_and_fails_over(
    two_sites: Callable[[int], Pair], etcd_server: EtcdServer
) -> None:
    pair = two_sites(3)
    cluster, prefix, a, b = pair.cluster, pair.prefix, pair.a, pair.b
    leader = a.health()["leader"]
    assert leader.startswith("site-a@") and b.health()["leader"] == leader
    wait_for("the follower to publish the leader's state", lambda: _active(b) == ["db1"], 10)
    assert b.pools()["leader"] == leader

    a.run.kill()  # no resignation: the lease is left behind
    took = wait_for("site-b to take over", lambda: b.health().get("role") == "leader", 10)
    # same host: site-b sees site-a's process is gone and need not wait for the 3 s TTL
    assert took < 3.0, f"takeover took {took:.1f} s"

    cluster.kill("db1")
    wait_for("the new leader to fail over", lambda: _active(b) in (["db2"], ["db3"]), 20)
    new = _active(b)[0]
    assert role(cluster, new) == (0, None), "the new primary is writable, replicates from nobody"
    assert "is now the leader" in b.log.read_text()

    store = EtcdStore([etcd_server.endpoint], prefix)
    try:
        events = store.history("main", limit=500)
        assert any(
            e.kind is EventKind.STATE and e.node == new and e.new == "ACTIVE" for e in events
        )
        terms = [(e.old, e.new) for e in events if e.kind is EventKind.LEADER]
        assert terms == [("none", leader), (leader, b.health()["leader"])], terms
    finally:
        store.close()


def test_a_clean_stop_hands_the_lease_over_at_once(
    two_sites: Callable[[int], Pair], etcd_server: EtcdServer
) -> None:
    pair = two_sites(2)
    cluster, prefix, a, b = pair.cluster, pair.prefix, pair.a, pair.b
    a.run.stop()
    store = EtcdStore([etcd_server.endpoint], prefix)
    try:
        found = store.leader()  # a killed site's key would still be there until its TTL
        assert found is None or found.owner.startswith("site-b@"), found
    finally:
        store.close()
    wait_for("site-b to lead after a clean stop", lambda: b.health().get("role") == "leader", 3)
    out = subprocess.run(
        mpp_command(cluster.dir / "site-a.toml", "poll"), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1 and "holds the leadership" in out.stderr, out.stderr
