"""`mpp maintenance` on a real primary-replica sandbox under `mpp run`: a primary killed
during its maintenance window is not failed over; when the window runs out by itself,
the failover follows."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mpp.faults import wait_for
from tests.conftest import Cluster
from tests.daemons import MppRun

pytestmark = pytest.mark.integration

Make = Callable[..., Cluster]


def pool(cluster: Cluster) -> dict[str, Any]:
    out = cluster.cli("status", "--json")
    assert out.returncode == 0, out.stderr
    (doc,) = json.loads(out.stdout)["pools"]
    return dict(doc)


def states(cluster: Cluster) -> dict[str, str]:
    return {n["name"]: n["state"] for n in pool(cluster)["nodes"]}


def test_no_failover_from_a_primary_in_maintenance_until_the_window_ends(
    make_cluster: Make, tmp_path: Path
) -> None:
    cluster = make_cluster(topology="primary-replica")
    daemon = MppRun(cluster.config_path, tmp_path / "mpp-run.log")
    try:
        wait_for("db1 ACTIVE", lambda: states(cluster).get("db1") == "ACTIVE", 20)
        window = 6.0
        on = cluster.cli("maintenance", "db1", "on", "--for", f"{window:g}s")
        assert on.returncode == 0, on.stdout + on.stderr
        started = time.monotonic()
        (db1,) = [n for n in pool(cluster)["nodes"] if n["name"] == "db1"]
        assert db1["maintenance"] is not None and db1["maintenance"]["until"] is not None
        cluster.kill("db1")  # kill -9 during the window: a backup gone wrong, say
        time.sleep(3.0)  # the fail point is 4 polls of 200 ms: long past it
        assert states(cluster) == {"db1": "ACTIVE", "db2": "STANDBY", "db3": "STANDBY"}
        assert time.monotonic() - started < window, "the check ran after the window"

        wait_for("the failover once the window ran out",
                 lambda: states(cluster).get("db1") != "ACTIVE", window + 15)  # fmt: skip
        assert time.monotonic() - started >= window
        after = states(cluster)
        assert sorted(after.values()).count("ACTIVE") == 1 and after["db1"].startswith("FAILED")
        lines = json.loads(cluster.cli("history", "--json", "--limit", "500").stdout)
        assert any("maintenance" in e["reason"] and "ended" in e["reason"] for e in lines), [
            e["reason"] for e in lines if "maint" in e["reason"]
        ]
    finally:
        daemon.stop()
