"""The probe on a slow management link: a real mariadbd behind mpp.faults' TCP proxy.

A probe's cost on a slow link is its round trips, and the probe must answer within one
poll interval (1 s by default) or the node counts as not answering. With 200 ms each way a
probe that asks twice needs 800 ms of that second; asking once, 400 ms. These tests pin the
one round trip, deterministically (the proxy counts what the client sent), and what it buys.
"""

from __future__ import annotations

from collections.abc import Callable

from mpp import faults
from mpp.config import load
from mpp.faults.proxy import Proxies
from mpp.probe.connection import pool_targets
from mpp.probe.mysql import NodeProber
from tests.conftest import Cluster
from tests.integration.test_topology import pr_cluster


def _proxied_prober(cluster: Cluster, node: str) -> tuple[NodeProber, Proxies]:
    proxies = Proxies(faults.ports(cluster.dir))
    routed = cluster.dir / "proxied.toml"
    routed.write_text(proxies.route_config(cluster.config_path.read_text()))
    config = load(routed)
    return NodeProber(pool_targets(config, config.pool[0])[node]), proxies


def test_a_probe_on_an_open_session_is_one_round_trip(make_cluster: Callable[..., Cluster]) -> None:
    prober, proxies = _proxied_prober(pr_cluster(make_cluster), "db2")
    proxy = proxies.by_node["db2"]
    try:
        first = prober.probe()  # connects: greeting, login, then the probe
        assert first.reachable and first.replication is not None, first
        before = proxy.requests
        again = prober.probe()
        assert proxy.requests - before == 1, "health and replication status in one request"
        assert again.replication is not None and again.replication.sql_running
        assert again.read_only is True and again.gtid_executed == first.gtid_executed
    finally:
        prober.close()
        proxies.close()


def test_a_probe_answers_within_the_interval_at_400ms_round_trip(
    make_cluster: Callable[..., Cluster],
) -> None:
    """200 ms each way: the probe takes one round trip (~400 ms), well inside the 1 s the
    daemon gives it; two round trips would leave 200 ms for a loaded machine."""
    prober, proxies = _proxied_prober(pr_cluster(make_cluster), "db1")
    try:
        assert prober.probe().reachable
        proxies.set_delay(0.2)
        seen = [prober.probe() for _ in range(3)]
        assert all(o.reachable and o.replication is None for o in seen), seen
        assert all(400 <= (o.latency_ms or 0) < 1000 for o in seen), [o.latency_ms for o in seen]
    finally:
        prober.close()
        proxies.close()
