"""A self-repairing master-master ring (`ring_repair = true`) on three real MariaDB servers
replicating db1 -> db2 -> db3 -> db1, under `mpp run`: a member killed, the ring closed
around it; the member back, re-inserted in its place; back with an errant transaction,
quarantined."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql
import pytest

from mpp import sandbox
from mpp.faults import wait_for
from tests.conftest import Cluster
from tests.daemons import MppRun
from tests.probes import app_connect, node_port, query_one, role

pytestmark = pytest.mark.integration

Make = Callable[..., Cluster]
ids = itertools.count(1)


def states(cluster: Cluster) -> dict[str, str]:
    out = cluster.cli("status", "--json")
    assert out.returncode == 0, out.stderr
    (pool,) = json.loads(out.stdout)["pools"]
    return {n["name"]: n["state"] for n in pool["nodes"]}


def node(cluster: Cluster, name: str) -> dict[str, Any]:
    out = cluster.cli("status", "--json")
    (pool,) = json.loads(out.stdout)["pools"]
    return next(n for n in pool["nodes"] if n["name"] == name)


def source(cluster: Cluster, name: str) -> int | None:
    return role(cluster.dir, name)[1]


def write(cluster: Cluster, name: str) -> int:
    value = next(ids)
    conn = app_connect(node_port(cluster.dir, name))
    try:
        query_one(conn, "CREATE TABLE IF NOT EXISTS ring (id INT PRIMARY KEY)")
        query_one(conn, f"INSERT INTO ring VALUES ({value})")
    finally:
        conn.close()
    return value


def arrives(cluster: Cluster, name: str, value: int) -> None:
    def there() -> bool:
        try:
            return bool(cluster.sql(name, f"SELECT id FROM app.ring WHERE id = {value}"))
        except pymysql.ProgrammingError:  # the table itself has not arrived yet
            return False

    wait_for(f"row {value} on {name}", there, 15)


def test_the_ring_closes_around_a_dead_member_and_takes_it_back(
    make_cluster: Make, tmp_path: Path
) -> None:
    cluster = make_cluster()
    secret = cluster.dir / "repl.password"
    sandbox.accounts.write_secret(secret, sandbox.REPL_PASSWORD)
    config = cluster.variant("ring", {"pool": [{**cluster.doc["pool"][0], "fail_point": 2,
        "ring_repair": True, "repl_user": sandbox.REPL_USER,
        "repl_password_file": str(secret)}]})  # fmt: skip
    port = {n: node_port(cluster.dir, n) for n in ("db1", "db2", "db3")}
    assert source(cluster, "db3") == port["db2"]
    cluster.config_path = config
    daemon = MppRun(config, tmp_path / "mpp-run.log")
    try:
        wait_for("the ring placed", lambda: states(cluster)["db1"] == "ACTIVE", 20)
        arrives(cluster, "db3", write(cluster, "db1"))

        cluster.kill("db2")  # kill -9
        wait_for("db3 repointed to db1", lambda: source(cluster, "db3") == port["db1"], 20)
        assert states(cluster)["db2"] == "FAILED_OFFLINE"
        assert role(cluster.dir, "db3")[0] == 0  # a ring member stays writable
        value = write(cluster, "db1")
        arrives(cluster, "db3", value)  # db1 -> db3 -> db1: closed
        arrives(cluster, "db1", write(cluster, "db3"))

        cluster.start("db2")  # resumes replicating from db1 by itself
        wait_for("db2 back in the ring", lambda: states(cluster)["db2"] == "STANDBY", 20)
        wait_for("db3 repointed to db2", lambda: source(cluster, "db3") == port["db2"], 20)
        value = write(cluster, "db1")
        arrives(cluster, "db2", value)
        arrives(cluster, "db3", value)
    finally:
        daemon.stop()


def test_a_member_back_with_an_errant_transaction_is_quarantined(
    make_cluster: Make, tmp_path: Path
) -> None:
    cluster = make_cluster()
    secret = cluster.dir / "repl.password"
    sandbox.accounts.write_secret(secret, sandbox.REPL_PASSWORD)
    config = cluster.variant("ring", {"pool": [{**cluster.doc["pool"][0], "fail_point": 2,
        "ring_repair": True, "repl_user": sandbox.REPL_USER,
        "repl_password_file": str(secret)}]})  # fmt: skip
    port = {n: node_port(cluster.dir, n) for n in ("db1", "db2", "db3")}
    cluster.config_path = config
    arrives(cluster, "db3", write(cluster, "db1"))
    daemon = MppRun(config, tmp_path / "mpp-run.log")
    try:
        wait_for("the ring placed", lambda: states(cluster)["db1"] == "ACTIVE", 20)
        cluster.kill("db2")
        wait_for("db3 repointed to db1", lambda: source(cluster, "db3") == port["db1"], 20)
    finally:
        daemon.stop()
    cluster.start("db2")
    for _ in range(3):  # written on db2 alone while it is out of the ring
        write(cluster, "db2")
    daemon = MppRun(config, tmp_path / "mpp-run-2.log")
    try:
        wait_for(
            "db2 quarantined",
            lambda: "errant transactions" in node(cluster, "db2").get("message", ""),
            20,
        )
        assert states(cluster)["db2"] == "FAILED_ONLINE"
        assert source(cluster, "db3") == port["db1"]  # not put back
    finally:
        daemon.stop()
