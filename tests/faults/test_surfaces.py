"""The surface checker itself (mpp.faults.surfaces): it must see a client sent to a
replica, and must not call a fence racing a login a wrong route. The judge is a pure
function of the samples, shown each verdict on made-up samples; the recorders are shown
on real servers, with a "router" that sends clients to a replica (the client connects to
the replica's port itself: mpp's router cannot be told to misroute) and an agent-check
stand-in that answers "up" for every node (a socket server of a few lines, because the
point is a surface that lies, which mpp's does not do on request)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from mpp import faults
from mpp.faults.surfaces import Answer, Landing, RouterClient, SurfaceWatch, misroutes, summary
from mpp.faults.watchers import Round
from tests.conftest import Cluster
from tests.integration.test_topology import pr_cluster

Make = Callable[..., Cluster]


def _rounds(values: dict[str, list[int | None]], step: float = 0.05) -> list[Round]:
    """One round per `step` seconds from t = 0, node -> read_only in that round."""
    count = len(next(iter(values.values())))
    return [
        Round(i * step, i * step + 0.005, {n: v[i] for n, v in values.items()})
        for i in range(count)
    ]


def test_an_rw_answer_for_a_read_only_node_is_a_misroute_and_for_the_primary_is_not() -> None:
    rounds = _rounds({"db1": [0] * 10, "db2": [1] * 10})
    good = [[Answer(0.2, "agent-check", "db1", True), Answer(0.2, "agent-check", "db2", False)]]
    assert misroutes(rounds, good, []) == []
    bad = [[Answer(0.2, "http rw check", "db2", True)]]
    assert misroutes(rounds, bad, []) == ["http rw check said rw UP for db2, which was read-only"]


def test_two_nodes_up_for_rw_in_one_round_is_a_misroute_whatever_the_servers_say() -> None:
    rounds = _rounds({"db1": [0] * 10, "db2": [0] * 10})
    both = [[Answer(0.2, "agent-check", "db1", True), Answer(0.2, "agent-check", "db2", True)]]
    assert misroutes(rounds, both, []) == ["agent-check said rw UP for db1, db2 at once"]


def test_a_node_that_did_not_answer_the_sampler_proves_nothing() -> None:
    # a hung old primary: no sample of it, so an UP answer about it is not judged wrong here
    # (the sampler's two-writable check and the lost-write check cover that case)
    rounds = _rounds({"db1": [None] * 10, "db2": [0] * 10})
    assert misroutes(rounds, [[Answer(0.2, "agent-check", "db1", True)]], []) == []
    assert misroutes(rounds, [], [Landing(0.1, 0.2, "db1", 1)]) == []


def test_a_landing_on_a_node_fenced_during_the_login_is_not_a_misroute() -> None:
    # db1 was writable when the connection started and read-only when it was served: the
    # route was right when it was taken
    rounds = _rounds({"db1": [0, 0, 0, 0, 1, 1, 1, 1, 1, 1], "db2": [1] * 10})
    assert misroutes(rounds, [], [Landing(0.1, 0.3, "db1", 1)]) == []
    wrong = misroutes(rounds, [], [Landing(0.1, 0.3, "db2", 1)] * 3)
    assert summary(wrong) == ["router sent a client to db2, which was read-only (x3)"]


@pytest.fixture
def liar() -> Iterator[int]:
    """An agent-check port that says `up` for every node (the lie to catch)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(512)
                conn.sendall(b"up ready #every node is up\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_recorders_catch_a_client_sent_to_a_replica_and_a_lying_agent_check(
    make_cluster: Make, liar: int
) -> None:
    d = pr_cluster(make_cluster).dir
    faults.create_table(d)
    ports = faults.ports(d)
    sampler = faults.ReadOnlySampler(d)
    to_primary = RouterClient(ports["db1"], ports, first_id=1)
    to_replica = RouterClient(ports["db2"], ports, first_id=1_000_000)
    watch = SurfaceWatch("main", sorted(ports), None, ("127.0.0.1", liar))
    threads = (sampler, to_primary, to_replica, watch)
    for t in threads:
        t.start()
    try:
        assert faults.poll_until(
            lambda: (len(to_replica.landings) >= 5 and len(watch.rounds) >= 5) or None, 15
        )
    finally:
        for t in threads:
            t.close()
    rounds = sampler.snapshot()
    assert misroutes(rounds, [], to_primary.landings) == []
    assert to_primary.acks and {a.node for a in to_primary.acks} == {"db1"}
    # the replica refuses the app user's INSERT (read_only): nothing acknowledged there
    assert to_replica.acks == [] and {ln.node for ln in to_replica.landings} == {"db2"}
    wrong = summary(misroutes(rounds, watch.rounds, to_replica.landings))
    assert any(w.startswith("router sent a client to db2, which was read-only") for w in wrong)
    assert any(w.startswith("agent-check said rw UP for db1, db2, db3 at once") for w in wrong)
    assert any(w.startswith("agent-check said rw UP for db2, which was read-only") for w in wrong)
