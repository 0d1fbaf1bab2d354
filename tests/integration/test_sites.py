"""Two `mpp run` sharing one etcd store: one leads and acts, the other follows and takes over.

Real parts only: a MariaDB primary-replica sandbox, a real etcd (mpp/sandbox/etcd.py), and
two `mpp run` processes, as two sites would run them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mpp.model import EventKind
from mpp.sandbox.etcd import EtcdServer
from mpp.store.etcd import EtcdStore
from tests.conftest import Cluster
from tests.integration.test_topology import Make, pr_cluster, role

pytestmark = pytest.mark.integration


def _site_config(cluster: Cluster, etcd: EtcdServer, prefix: str, name: str, api: int) -> Path:
    text = cluster.config_path.read_text()
    text = text.replace('state = "sqlite://state.db"', f'state = "etcd://{etcd.host_port}{prefix}"')
    text = text.replace("[mpp]\n", f'[mpp]\nname = "{name}"\nleader_ttl = "3s"\n', 1)
    text += f'\n[api]\nlisten = "127.0.0.1:{api}"\n'
    path = cluster.dir / f"{name}.toml"
    path.write_text(text)
    return path


class Site:
    def __init__(self, config: Path, api: int, logs: Path) -> None:
        self.api = f"http://127.0.0.1:{api}"
        self.log = logs / config.with_suffix(".log").name
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mpp", "--config", str(config), "run", "--no-live"],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )

    def health(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = httpx.get(self.api + "/v1/health", timeout=1).json()
            return doc
        except httpx.HTTPError:
            return {}

    def pools(self) -> dict[str, Any]:
        doc: dict[str, Any] = httpx.get(self.api + "/v1/pools", timeout=1).json()
        return doc

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _until(check: Callable[[], bool], seconds: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not reached within {seconds} s: {what}")
        time.sleep(0.1)
    return time.monotonic() - started


def _active(site: Site) -> list[str]:
    nodes = site.pools()["pools"][0]["nodes"]
    return [n["name"] for n in nodes if n["state"] == "ACTIVE"]


@pytest.fixture
def sites() -> Iterator[list[Site]]:
    made: list[Site] = []
    yield made
    for site in made:
        site.stop()


def _two_sites(
    cluster: Cluster, etcd: EtcdServer, prefix: str, api: int, sites: list[Site], logs: Path
) -> tuple[Site, Site]:
    """site-a started first and leading, then site-b following (APIs on api and api + 1)."""
    a = Site(_site_config(cluster, etcd, prefix, "site-a", api), api, logs)
    sites.append(a)
    _until(lambda: a.health().get("role") == "leader", 15, "site-a leads")
    b = Site(_site_config(cluster, etcd, prefix, "site-b", api + 1), api + 1, logs)
    sites.append(b)
    _until(lambda: b.health().get("role") == "follower", 15, "site-b answers as follower")
    return a, b


def test_one_site_leads_the_other_follows_then_takes_over_and_fails_over(
    make_cluster: Make, etcd_server: EtcdServer, sites: list[Site], tmp_path: Path
) -> None:
    cluster = pr_cluster(make_cluster, 24420)
    prefix = f"/sites-{uuid.uuid4().hex[:8]}"
    a, b = _two_sites(cluster, etcd_server, prefix, 26721, sites, tmp_path)
    leader = a.health()["leader"]
    assert leader.startswith("site-a@") and b.health()["leader"] == leader
    _until(lambda: _active(b) == ["db1"], 10, "the follower publishes the leader's state")
    assert b.pools()["leader"] == leader

    a.process.send_signal(signal.SIGKILL)  # no resignation: the lease is left behind
    a.process.wait()
    took = _until(lambda: b.health().get("role") == "leader", 10, "site-b takes over")
    # same host: site-b sees site-a's process is gone and need not wait for the 3 s TTL
    assert took < 3.0, f"takeover took {took:.1f} s"

    cluster.kill("db1")
    _until(lambda: _active(b) in (["db2"], ["db3"]), 20, "the new leader fails over")
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
    make_cluster: Make, etcd_server: EtcdServer, sites: list[Site], tmp_path: Path
) -> None:
    cluster = pr_cluster(make_cluster, 24430, nodes=2)
    prefix = f"/sites-{uuid.uuid4().hex[:8]}"
    a, b = _two_sites(cluster, etcd_server, prefix, 26723, sites, tmp_path)
    a.stop()
    store = EtcdStore([etcd_server.endpoint], prefix)
    try:
        found = store.leader()  # a killed site's key would still be there until its TTL
        assert found is None or found.owner.startswith("site-b@"), found
    finally:
        store.close()
    _until(lambda: b.health().get("role") == "leader", 3, "site-b leads after a clean stop")
    out = subprocess.run(
        [sys.executable, "-m", "mpp", "--config", str(cluster.dir / "site-a.toml"), "poll"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "holds the leadership" in out.stderr, out.stderr
