"""A primary that answers but refuses mpp (1040 too many connections) while its replicas
have lost it too: without a way to fence it, mpp does not fail it over (its clients may
still be writing); with its admin path (MariaDB extra_port, the node's admin_address), mpp
fences it there first and only then promotes.

Real parts: a MariaDB primary-replica sandbox whose db1 listens on an extra_port as well,
`mpp run`, and real connection exhaustion (mpp.faults.exhaust_connections: every new
session refused, mpp's and the replicas' sessions killed so none can come back in).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from mpp import sandbox
from mpp.faults import exhaust_connections, wait_for
from mpp.faults.injectors import Undo
from mpp.sandbox.layout import cnf_path
from tests import probes
from tests.builders import write_config
from tests.conftest import Cluster
from tests.daemons import MppRun, mpp_command
from tests.integration.test_topology import Make, port, pr_cluster
from tests.ports import Ports

pytestmark = pytest.mark.integration


def _with_extra_port(cluster: Cluster, node: str, extra: int) -> None:
    """Restart `node` listening on `extra` too (MariaDB's extra_port, its own small
    connection limit), as a production primary would be configured for its operators."""
    cnf = cnf_path(cluster.dir, node)
    text = cnf.read_text()
    cnf.write_text(
        text.replace(
            "[mariadbd]\n", f"[mariadbd]\nextra_port = {extra}\nextra_max_connections = 8\n", 1
        )
    )
    sandbox.stop_node(cluster.dir, node)
    sandbox.start_node(cluster.dir, node)


def _states(cluster: Cluster, config: Path) -> dict[str, Any]:
    out = subprocess.run(
        mpp_command(config, "status", "--json"), capture_output=True, text=True, timeout=30
    )
    pool: dict[str, Any] = json.loads(out.stdout)["pools"][0]
    return pool


@pytest.fixture
def undo() -> Iterator[list[Undo]]:
    heals: list[Undo] = []
    yield heals
    for heal in reversed(heals):
        with contextlib.suppress(Exception):
            heal()


def test_a_refusing_primary_is_held_without_a_fence_path_and_fenced_through_it_with_one(
    make_cluster: Make, ports: Ports, tmp_path: Path, undo: list[Undo]
) -> None:
    cluster = pr_cluster(make_cluster, nodes=3)
    extra = ports.port()
    _with_extra_port(cluster, "db1", extra)
    run = MppRun(cluster.config_path, tmp_path / "mpp.log")
    try:
        wait_for("db1 ACTIVE", lambda: _active(cluster) == ["db1"], 20)
        wait_for("the replicas streaming again", lambda: _streaming(cluster), 20)
        client = probes.app_connect(port(cluster, "db1"))  # a client the primary already has
        undo.append(exhaust_connections(cluster.dir, "db1", evict=(sandbox.REPL_USER,)))
        # past fail_point polls (200 ms): without a fence path it stays ACTIVE, with the alert
        wait_for(
            "the failover held with the alert",
            lambda: "refuses mpp" in _pool(cluster)["alert"],
            20,
        )
        time.sleep(2.0)
        pool = _pool(cluster)
        assert _active(cluster) == ["db1"], pool
        assert "admin_address" in pool["alert"], pool["alert"]
        with client.cursor() as cur:  # and it did serve its client all along
            cur.execute("CREATE TABLE IF NOT EXISTS held (id INT PRIMARY KEY)")
            cur.execute("INSERT INTO held VALUES (1)")
    finally:
        run.stop()

    # the same pool with db1's admin path configured: fenced there, then failed over
    doc = dict(cluster.doc)
    doc["pool"] = [dict(doc["pool"][0])]
    doc["pool"][0]["node"] = [
        {**n, "admin_address": f"127.0.0.1:{extra}"} if n["name"] == "db1" else n
        for n in doc["pool"][0]["node"]
    ]
    config = write_config(cluster.dir / "admin.toml", doc)
    run = MppRun(config, tmp_path / "mpp-admin.log")
    try:
        wait_for(
            "the failover through the fence", lambda: _active(cluster) in (["db2"], ["db3"]), 30
        )
        admin = pymysql.connect(
            host="127.0.0.1", port=extra, user="root", password=sandbox.ROOT_PASSWORD
        )
        try:
            with admin.cursor() as cur:
                cur.execute("SELECT @@global.read_only")
                assert cur.fetchone() == (1,), "db1 fenced before the promotion"
        finally:
            admin.close()
        # its client: killed or refused, never acknowledged
        with pytest.raises(pymysql.MySQLError), client.cursor() as cur:
            cur.execute("INSERT INTO held VALUES (2)")
        log = (tmp_path / "mpp-admin.log").read_text()
        assert "through its admin path" in log, log[-2000:]
        fence = log.index("action fence db1: ok")
        assert fence < log.index("action promote"), "the fence ran, and succeeded, first"
    finally:
        run.stop()
        with contextlib.suppress(Exception):
            client.close()


def _pool(cluster: Cluster) -> dict[str, Any]:
    return _states(cluster, cluster.config_path)


def _active(cluster: Cluster) -> list[str]:
    with contextlib.suppress(Exception):
        return [n["name"] for n in _pool(cluster)["nodes"] if n["state"] == "ACTIVE"]
    return []


def _streaming(cluster: Cluster) -> bool:
    for node in ("db2", "db3"):
        conn = sandbox.admin_connect(cluster.dir, node)
        try:
            with conn.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute("SHOW SLAVE STATUS")
                row = cur.fetchone()
        finally:
            conn.close()
        if row is None or row["Slave_IO_Running"] != "Yes":
            return False
    return True
