"""mpp's etcd store while its cluster loses the leader: a real 3-member cluster
(mpp.faults.etcd), the leader killed with SIGKILL under a stream of store calls.

The two members left elect a new leader in about a second; meanwhile they answer 503
("leader changed", "no leader"). Each store call must wait that out within its timeout
and succeed: a call that fails costs mpp a cycle and an ERROR line for a fault that a
three-member cluster exists to absorb.
"""

from __future__ import annotations

import time
from pathlib import Path

from mpp.faults.etcd import EtcdCluster
from mpp.logic.failover import initial_state
from mpp.store.etcd import EtcdStore
from tests.builders import ring_spec


def test_store_calls_ride_out_the_election_after_the_leader_is_killed(tmp_path: Path) -> None:
    cluster = EtcdCluster(tmp_path / "etcd")
    cluster.start()
    endpoints = [cluster.endpoint(i) for i in range(3)]
    # a call's timeout well above an election's (about 1 s; longer on a loaded machine)
    store = EtcdStore(endpoints, "/election", timeout=6.0)
    try:
        spec = ring_spec()
        version = store.save(initial_state(spec), [], None)
        killed = cluster.kill("leader")
        store._good = killed  # mpp's last good endpoint was the leader: the worst case
        slowest = 0.0
        ends = time.monotonic() + 3.0
        while time.monotonic() < ends:
            started = time.monotonic()
            snapshot = store.load(spec.name)  # raises StoreError if a call gives up
            assert snapshot is not None and snapshot.version == version
            version = store.save(snapshot.state, [], version)
            assert version is not None, "nobody else writes: the compare holds"
            slowest = max(slowest, time.monotonic() - started)
        assert cluster.leader() not in (None, killed)
        assert slowest < 6.0
    finally:
        store.close()
        cluster.stop()
