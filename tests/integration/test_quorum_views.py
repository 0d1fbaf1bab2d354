"""Three `mpp run` on one real etcd with quorum = "majority": one site's broken link to the
primary does not fail it over; when a majority of the instances lose it, it is.

Real parts: a MariaDB primary-replica sandbox, a real etcd, three `mpp run` processes, each
probing from its own loopback address, and real iptables DROP rules on those addresses
(mpp.faults.cut_from_mpp), so the servers and their replication are untouched and only one
instance's path to the primary is cut. confirm_with_replicas is off in this pool, so that the
replicas, which still stream from the primary, cannot be what keeps it up: without the
others' views the leader would fail it over after fail_point polls.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mpp.faults import cut_from_mpp, wait_for
from mpp.model import EventKind, State
from mpp.sandbox.etcd import EtcdServer
from mpp.store.etcd import EtcdStore
from tests.daemons import mpp_command
from tests.integration.test_sites import Site
from tests.integration.test_topology import Make
from tests.ports import Ports

pytestmark = pytest.mark.integration

SOURCES = {"site-a": "127.0.0.5", "site-b": "127.0.0.6", "site-c": "127.0.0.7"}


def _db1(site: Site) -> dict[str, object]:
    nodes = site.pools()["pools"][0]["nodes"]
    found: dict[str, object] = next(n for n in nodes if n["name"] == "db1")
    return found


@pytest.fixture
def heals() -> Iterator[list[Callable[[], None]]]:
    undo: list[Callable[[], None]] = []
    yield undo
    for heal in reversed(undo):
        with contextlib.suppress(Exception):
            heal()


def test_one_site_cut_from_the_primary_is_outvoted_a_majority_is_not(
    make_cluster: Make,
    etcd_server: EtcdServer,
    ports: Ports,
    tmp_path: Path,
    heals: list[Callable[[], None]],
) -> None:
    cluster = make_cluster(
        nodes=3,
        topology="primary-replica",
        interval="1s",
        pool={"quorum": "majority", "confirm_with_replicas": False},
    )
    prefix = f"/quorum-{uuid.uuid4().hex[:8]}"
    sites: dict[str, Site] = {}
    try:

        def start(name: str) -> Site:
            api = ports.port()
            changes = {
                "mpp": {
                    "state": f"etcd://{etcd_server.host_port}{prefix}",
                    "name": name,
                    "leader_ttl": "3s",
                    "source_address": SOURCES[name],
                    "site": name.replace("site-", "dc-"),
                },
                "api": {"listen": f"127.0.0.1:{api}"},
            }
            sites[name] = Site(cluster.variant(name, changes), api, tmp_path)
            return sites[name]

        lead = start("site-a")
        wait_for("site-a to lead", lambda: lead.health().get("role") == "leader", 15)
        start("site-b")
        start("site-c")
        a = sites["site-a"]
        store = EtcdStore([etcd_server.endpoint], prefix)
        try:
            wait_for("every instance to share its view", lambda: len(store.views("main")) == 3, 15)
            views = store.views("main")
            assert {v.owner.split("@")[0] for v in views.values()} == set(SOURCES)
            assert {v.site for v in views.values()} == {"dc-a", "dc-b", "dc-c"}
            sights = [v.sight("db1") for v in views.values()]
            assert all(s is not None and s.answered for s in sights), sights

            # the leader's own path to the primary cut: the other two still see it
            cut_at = time.time()
            heals.append(cut_from_mpp(cluster.dir, "db1", SOURCES["site-a"]))
            wait_for(
                "the leader to say the others outvote it",
                lambda: "quorum of views" in str(_db1(a)["message"]),
                15,
            )
            time.sleep(6.0)  # past fail_point (4) polls at 1 s: the leader alone would fail it
            db1 = _db1(a)
            assert db1["state"] == "ACTIVE", db1
            assert "dc-b" in str(db1["message"]) and "dc-c" in str(db1["message"]), db1
            # how the others see it, by site, in the API document and any instance's status
            assert db1["views"] == "dc-b ok, dc-c ok", db1
            status = subprocess.run(
                [*mpp_command(cluster.dir / "site-c.toml", "status")],
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "COLUMNS": "250"},
            )
            assert "Seen by others" in status.stdout, status.stdout
            assert not any(
                e.kind is EventKind.STATE and e.node == "db1" and e.at >= cut_at
                for e in store.history("main", limit=200)
            ), "db1 changed state while only the leader's link was cut"

            # a second instance cut too: two of the three do not see it, failed over
            heals.append(cut_from_mpp(cluster.dir, "db1", SOURCES["site-b"]))
            wait_for(
                "the majority to fail db1 over",
                lambda: _db1(a)["state"] == State.FAILED_OFFLINE.value,
                20,
            )
            actives = [n["name"] for n in a.pools()["pools"][0]["nodes"] if n["state"] == "ACTIVE"]
            assert actives in (["db2"], ["db3"]), actives
        finally:
            store.close()
    finally:
        for heal in reversed(heals):
            with contextlib.suppress(Exception):
                heal()
        heals.clear()
        for site in sites.values():
            site.run.stop()
