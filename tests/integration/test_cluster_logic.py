"""`logic = "cluster"` in front of three real, independent MariaDB servers (a farm: the
sandbox's ring replication is removed first), with `mpp run`'s router and API.

Which node a connection through the router reaches is read from `@@server_id` (dbN is N).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mpp.faults import wait_for
from tests.conftest import Cluster
from tests.daemons import MppRun
from tests.ports import Ports
from tests.probes import app_connect, http, query_one, routes_to

pytestmark = pytest.mark.integration

Make = Callable[..., Cluster]


@pytest.fixture
def farm(make_cluster: Make, tmp_path: Path, ports: Ports) -> Iterator[tuple[Cluster, int, int]]:
    rw, ro, api = ports.port(), ports.port(), ports.port()
    cluster = make_cluster(
        pool={"logic": "cluster", "min_nodes": 2, "return_after": 2, "fail_point": 2},
        router={"rw": f"127.0.0.1:{rw}", "ro": f"127.0.0.1:{ro}"},
        api={"listen": f"127.0.0.1:{api}"},
    )
    for node in ("db1", "db2", "db3"):  # independent servers: nothing replicates
        cluster.sql(node, "STOP SLAVE")
        cluster.sql(node, "RESET SLAVE ALL")
    daemon = MppRun(cluster.config_path, tmp_path / "mpp-run.log")
    wait_for("mpp's API", lambda: http(f"http://127.0.0.1:{api}/v1/health")[0] == 200)
    yield cluster, rw, api
    daemon.stop()


def pool_doc(api: int) -> dict[str, Any]:
    status, body = http(f"http://127.0.0.1:{api}/v1/pools/main")
    return json.loads(body) if status == 200 else {}


def states(api: int) -> dict[str, str]:
    return {n["name"]: n["state"] for n in pool_doc(api).get("nodes", [])}


def test_cluster_pool_serves_on_every_healthy_node_and_keeps_min_nodes(
    farm: tuple[Cluster, int, int],
) -> None:
    cluster, rw, api = farm
    wait_for("every node in service", lambda: set(states(api).values()) == {"ACTIVE"})
    held = [app_connect(rw) for _ in range(6)]  # least connections: two on each node
    assert sorted(int(query_one(c, "SELECT @@server_id")) for c in held) == [1, 1, 2, 2, 3, 3]
    for c in held:
        c.close()

    cluster.kill("db2")  # kill -9
    wait_for("db2 out of service", lambda: states(api).get("db2") == "STANDBY")
    routes_to(rw, {1, 3}, tries=6)
    assert states(api) == {"db1": "ACTIVE", "db2": "STANDBY", "db3": "ACTIVE"}

    cluster.start("db2")
    wait_for("db2 back in service", lambda: states(api).get("db2") == "ACTIVE")
    seen = routes_to(rw, {1, 2, 3}, tries=6)
    assert 2 in {*seen, *[int(query_one(app_connect(rw), "SELECT @@server_id")) for _ in range(3)]}

    # min_nodes = 2: with db2 and db3 both down, one leaves and the last two stay
    cluster.kill("db2")
    cluster.kill("db3")
    wait_for("one of them out of service", lambda: "STANDBY" in states(api).values())
    doc = pool_doc(api)
    now = {n["name"]: n["state"] for n in doc["nodes"]}
    assert now["db1"] == "ACTIVE"
    assert list(now.values()).count("ACTIVE") == 2  # never fewer than min_nodes in service
    assert doc["alert"].startswith("CRITICAL")
    routes_to(rw, {1}, tries=6)  # the router skips the dead one it was told to keep

    cluster.start("db2")
    cluster.start("db3")
    wait_for("all back", lambda: set(states(api).values()) == {"ACTIVE"})
    wait_for("the alert to clear", lambda: pool_doc(api).get("alert") == "")
