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
from mpp.faults.surfaces import (
    Answer,
    Landing,
    Misroute,
    RouterClient,
    SurfaceWatch,
    misroutes,
    summary,
)
from mpp.faults.watchers import Round
from tests.conftest import Cluster
from tests.integration.test_topology import pr_cluster

Make = Callable[..., Cluster]


def _rounds(values: dict[str, list[int | None]], step: float = 0.05) -> list[Round]:
    """One round per `step` seconds from t = 0, node -> read_only in that round."""
    count = len(next(iter(values.values())))
    return [
        Round(
            i * step,
            i * step + 0.005,
            {n: v[i] for n, v in values.items()},
            {n: i * step + 0.005 for n in values},
        )
        for i in range(count)
    ]


def _said(rounds: list[Round], answers: list[list[Answer]], grace: float = 0.0) -> list[str]:
    return [w.what for w in misroutes(rounds, answers, [], grace)]


def _agent(node: str, up: bool) -> Answer:
    """The agent-check's word about `node`, asked at 0.2 s."""
    return Answer(0.2, 0.21, "agent-check", node, up)


def test_an_rw_answer_for_a_read_only_node_is_a_misroute_and_for_the_primary_is_not() -> None:
    rounds = _rounds({"db1": [0] * 10, "db2": [1] * 10})
    good = [[_agent("db1", True), _agent("db2", False)]]
    assert _said(rounds, good) == []
    bad = [[Answer(0.2, 0.21, "http rw check", "db2", True)]]
    assert _said(rounds, bad) == ["http rw check said rw UP for db2, which was read-only"]


def test_two_nodes_up_for_rw_in_one_round_is_a_misroute_whatever_the_servers_say() -> None:
    rounds = _rounds({"db1": [0] * 10, "db2": [0] * 10})
    both = [[_agent("db1", True), _agent("db2", True)]]
    assert _said(rounds, both) == ["agent-check said rw UP for db1, db2 at once"]


def test_samples_are_dated_by_their_answer_not_by_their_round() -> None:
    # db1 hung: each round lasts the 0.5 s timeout; db2's answer came at once each time.
    # db2 was promoted at 0.1 s, the check said UP at 0.2 s, inside the first round: the
    # sample that judges it is the next one (db2 writable), not the round that spans it
    rounds = [
        Round(0.0, 0.5, {"db1": None, "db2": 1}, {"db1": 0.5, "db2": 0.01}),
        Round(0.55, 1.05, {"db1": None, "db2": 0}, {"db1": 1.05, "db2": 0.56}),
    ]
    assert _said(rounds, [[_agent("db2", True)]]) == []
    # and read-only on both sides of the answer is a misroute, however long the rounds
    rounds[1] = Round(0.25, 0.75, {"db1": None, "db2": 1}, {"db1": 0.75, "db2": 0.26})
    assert _said(rounds, [[_agent("db2", True)]]) == [
        "agent-check said rw UP for db2, which was read-only"
    ]


def test_a_node_that_did_not_answer_the_sampler_proves_nothing() -> None:
    # a hung old primary: no sample of it, so an UP answer about it is not judged wrong here
    # (the sampler's two-writable check and the lost-write check cover that case)
    rounds = _rounds({"db1": [None] * 10, "db2": [0] * 10})
    assert _said(rounds, [[_agent("db1", True)]]) == []
    assert misroutes(rounds, [], [Landing(0.1, 0.2, "db1", 1)]) == []


def test_a_landing_on_a_node_fenced_during_the_login_is_not_a_misroute() -> None:
    # db1 was writable when the connection started and read-only when it was served: the
    # route was right when it was taken
    rounds = _rounds({"db1": [0, 0, 0, 0, 1, 1, 1, 1, 1, 1], "db2": [1] * 10})
    assert misroutes(rounds, [], [Landing(0.1, 0.3, "db1", 1)]) == []
    wrong = misroutes(rounds, [], [Landing(0.1, 0.3, "db2", 1)] * 3)
    assert summary(wrong) == [
        "router sent a client to db2, which was read-only (x3, first at 0.30 s)"
    ]
    assert wrong[0] == Misroute(0.3, "router sent a client to db2, which was read-only")


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


def test_a_node_turned_read_only_is_judged_only_after_a_whole_poll_interval() -> None:
    # db2 (the ACTIVE node) restarted read-only at 0.5 s after being down: mpp learns it at
    # its next poll, so an UP at 0.8 s is within the interval (1 s) and not judged; at 1.7 s
    # mpp had a whole interval to see it
    down, up_ro = [None] * 10, [1] * 30
    rounds = _rounds({"db1": [1] * 40, "db2": down + up_ro})
    early = [[Answer(0.8, 0.81, "agent-check", "db2", True)]]
    late = [[Answer(1.7, 1.71, "agent-check", "db2", True)]]
    assert _said(rounds, early, grace=1.0) == []
    assert _said(rounds, late, grace=1.0) == ["agent-check said rw UP for db2, which was read-only"]
    assert _said(rounds, early, grace=0.0) != []
