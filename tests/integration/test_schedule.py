"""Scheduled switchovers in a running `mpp run` over a real primary-replica sandbox: one
fires at a near-future slot and moves the primary with the safety of `mpp switchover`;
another is skipped, with an event and an alert, because a node has failed."""

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
from tests.probes import role

pytestmark = pytest.mark.integration

Make = Callable[..., Cluster]


def history(cluster: Cluster) -> list[dict[str, Any]]:
    out = cluster.cli("history", "--json", "--limit", "500")
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


def pool_doc(cluster: Cluster) -> dict[str, Any]:
    out = cluster.cli("status", "--json")
    assert out.returncode == 0, out.stderr
    (pool,) = json.loads(out.stdout)["pools"]
    return dict(pool)


def states(cluster: Cluster) -> dict[str, str]:
    return {n["name"]: n["state"] for n in pool_doc(cluster)["nodes"]}


def test_a_scheduled_switchover_fires_and_one_on_an_unhealthy_pool_is_skipped(
    make_cluster: Make, tmp_path: Path
) -> None:
    every3 = {"cron": "* * * * * */3", "switchover_to": "db2", "timeout": "5s"}
    cluster = make_cluster(topology="primary-replica", pool={"schedule": [every3]})
    daemon = MppRun(cluster.config_path, tmp_path / "mpp-run.log")
    try:
        wait_for("db2 ACTIVE by the schedule", lambda: states(cluster).get("db2") == "ACTIVE", 30)
        assert role(cluster.dir, "db2") == (0, None)  # writable, replicating from nobody
        lines = history(cluster)
        asked = [e for e in lines if e["new"] == "switchover" and "schedule-" in e["reason"]]
        assert asked, "the switchover request was recorded with the schedule's id"
        assert not any(e["new"] == "skipped" for e in lines)
    finally:
        daemon.stop()

    cluster.kill("db3")
    back = cluster.variant("back", {"pool": [{**cluster.doc["pool"][0], "schedule": [
        {"cron": "* * * * * */3", "switchover_to": "db1"}]}]})  # fmt: skip
    daemon = MppRun(back, tmp_path / "mpp-run-2.log")
    try:

        def skipped() -> list[dict[str, Any]]:
            return [e for e in history(cluster) if e["new"] == "skipped"]

        wait_for("a skipped slot", lambda: bool(skipped()), 40)
        reason = skipped()[-1]["reason"]
        assert "-> db1" in reason and "db3" in reason, reason
        assert states(cluster)["db2"] == "ACTIVE"  # nothing was switched
        assert pool_doc(cluster)["alert"].startswith("scheduled switchover")
        time.sleep(0.5)
    finally:
        daemon.stop()
