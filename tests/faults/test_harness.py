"""The fault harness itself, on real sandboxes: a harness that cannot see a lost write or a
second writable node would make every scenario pass, so each watcher is shown both
verdicts (the healthy one and a fault made on purpose)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pymysql
import pytest

from mpp import faults
from tests.conftest import Cluster
from tests.integration.test_topology import pr_cluster

Make = Callable[..., Cluster]


def test_writer_records_every_ack_and_lost_ids_sees_only_real_losses(make_cluster: Make) -> None:
    d = pr_cluster(make_cluster).dir
    faults.create_table(d)
    writer = faults.Writer(faults.ports(d))
    writer.start()
    try:
        assert faults.poll_until(lambda: len(writer.acks) >= 200, 10), writer.errors[-3:]
    finally:
        writer.close()
    acks = writer.snapshot()
    ids = [a.id for a in acks]
    # a healthy primary answers every INSERT: the record is 1..n, in order, all on db1
    assert ids == list(range(1, len(ids) + 1))
    assert {a.node for a in acks} == {"db1"}
    assert writer.ambiguous == [] and writer.errors == []
    assert all(a.at <= b.at for a, b in itertools.pairwise(acks))

    assert faults.lost_ids(d, "db1", ids) == []
    pos = faults.gtid_binlog_pos(d, "db1")
    for replica in ("db2", "db3"):
        assert faults.wait_caught_up(d, replica, pos, timeout=10)
        assert faults.lost_ids(d, replica, ids) == []

    gone = [ids[4], ids[99], ids[-1]]
    assert faults.delete_unlogged(d, "db1", gone) == 3
    assert faults.lost_ids(d, "db1", ids) == sorted(gone)
    # the delete was not in the binlog: the replicas still have every row
    assert faults.lost_ids(d, "db2", ids) == []


def test_sampler_sees_one_writable_node_and_two_when_a_replica_is_made_writable(
    make_cluster: Make,
) -> None:
    d = pr_cluster(make_cluster).dir
    sampler = faults.ReadOnlySampler(d, every=0.02, timeout=0.5)
    sampler.start()
    try:
        assert sampler.wait_rounds(10)
        assert sampler.max_writable() == 1
        assert all(r.writable == ["db1"] for r in sampler.snapshot())

        split = faults.now()
        faults.set_read_only(d, "db2", on=False)
        assert sampler.wait_rounds(5)
        assert sampler.max_writable(since=split) == 2
        worst = sampler.worst()
        assert worst is not None and worst.writable == ["db1", "db2"]
        assert worst.started >= split

        faults.set_read_only(d, "db2", on=True)
        healed = faults.now()
        assert sampler.wait_rounds(5)
        assert sampler.max_writable(since=healed) == 1
        assert sampler.max_writable() == 2, "the verdict keeps the worst round seen"
    finally:
        sampler.close()


def test_hang_silences_the_primary_without_stalling_the_harness_and_resume_wakes_it(
    make_cluster: Make,
) -> None:
    d = pr_cluster(make_cluster).dir
    faults.create_table(d)
    sampler = faults.ReadOnlySampler(d, every=0.02, timeout=0.3)
    writer = faults.Writer(faults.ports(d))
    sampler.start()
    writer.start()
    try:
        assert faults.poll_until(lambda: len(writer.acks) >= 50, 10), writer.errors[-3:]
        hung = faults.now()
        faults.hang(d, "db1")
        # the sampler goes on (a hung node is a timeout, counted as not writable) ...
        assert sampler.wait_rounds(3, timeout=5)
        after = sampler.snapshot(since=hung + 0.05)
        assert after and all(r.read_only["db1"] is None for r in after)
        assert sampler.max_writable(since=hung + 0.05) == 0
        # ... and the writer's INSERT sent to the frozen server is ambiguous, not lost
        assert faults.poll_until(lambda: writer.ambiguous, 5)
        assert writer.first_ack(hung + 0.6) is None

        woken = faults.now()
        faults.resume(d, "db1")  # SIGCONT
        assert faults.poll_until(lambda: writer.first_ack(woken, only="db1"), 10)
        assert sampler.wait_rounds(3)
        assert sampler.snapshot()[-1].writable == ["db1"]
    finally:
        writer.close()
        sampler.close()
    assert faults.lost_ids(d, "db1", writer.acked_ids()) == []


def test_kill_closes_the_port_and_a_restart_keeps_every_acknowledged_write(
    make_cluster: Make,
) -> None:
    d = pr_cluster(make_cluster).dir
    faults.create_table(d)
    port = faults.ports(d)["db1"]
    watch = faults.IoWatch(d, ["db2", "db3"])
    writer = faults.Writer(faults.ports(d))
    watch.start()
    writer.start()
    try:
        assert faults.poll_until(lambda: len(writer.acks) >= 50, 10), writer.errors[-3:]
        killed = faults.now()
        faults.inject(d, "db1", "kill")
        # a crash, unlike a hang, refuses connections at once
        with pytest.raises(pymysql.MySQLError):
            faults.app_connect(port, timeout=2).close()
        loss = faults.poll_until(lambda: watch.first_loss(killed), 5)
        assert loss is not None and loss[1] in ("db2", "db3")

        restarted = faults.now()
        faults.resume(d, "db1")  # a restart with its data, writable as its config says
        assert faults.poll_until(lambda: writer.first_ack(restarted, only="db1"), 15)
    finally:
        writer.close()
        watch.close()
    assert faults.lost_ids(d, "db1", writer.acked_ids()) == []


def test_pinned_clients_tell_refused_writes_from_acknowledged_ones(make_cluster: Make) -> None:
    d = pr_cluster(make_cluster).dir
    faults.create_table(d)
    ports = faults.ports(d)
    on_replica = faults.StaleClient("db2", ports["db2"], 1_000_000)
    on_primary = faults.StaleClient("db1", ports["db1"], 2_000_000)
    patient = faults.PatientClient(ports["db1"], 3_000_000, timeout=5)
    for client in (on_replica, on_primary, patient):
        client.start()
    try:
        assert faults.poll_until(lambda: on_replica.refused >= 3 and patient.acks, 10)
        assert faults.poll_until(lambda: len(on_primary.acks) >= 10, 10)
    finally:
        on_replica.close()
        on_primary.close()
        patient.close()
    # read_only refused every write on the replica: certain not-writes, not ambiguous ones
    assert on_replica.acks == [] and on_replica.ambiguous == []
    assert "1290" in on_replica.first_error
    assert on_primary.ambiguous == [] and {a.node for a in on_primary.acks} == {"db1"}
    assert patient.outcomes()["acknowledged"] == len(patient.acks) >= 1
    acked = [a.id for a in on_primary.acks] + [i for i, _, _ in patient.acks]
    assert faults.lost_ids(d, "db1", acked) == []
    assert all(sent <= at for _, sent, at in patient.acks)
