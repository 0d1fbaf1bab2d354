"""The pure helpers of the logic (gtid, ladder, health, converge) pinned at their edges:
boundaries, empty inputs, several domains or intervals, each written for a mutant of
mpp/logic that the other tests let live (`make mutate`)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpp.logic import gtid
from mpp.logic.failover import converge
from mpp.logic.health import classify
from mpp.logic.ladder import status_of, warn_cap
from mpp.model import (
    Fence,
    NodeState,
    Observation,
    PoolState,
    Promote,
    Replication,
    Repoint,
    State,
    Status,
    Verdict,
)
from tests.builders import ring_spec, star, star_spec

U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
U2 = "8a94f357-aab4-11df-86ab-c80aa9429562"

# -- gtid ----------------------------------------------------------------------------------------


def test_parse_mariadb_keeps_the_highest_seq_per_domain_sorted_by_domain() -> None:
    g = gtid.parse(" 1-2-5,\n0-1-100 , 0-3-7,1-4-9,")
    assert g.mariadb == ((0, 1, 100), (1, 4, 9))
    assert gtid.parse("0-1-5,0-2-5").mariadb == ((0, 1, 5),)  # the first of equal seqs
    assert g.mysql == ()
    assert str(g) == "0-1-100,1-4-9"
    assert not g.empty
    assert gtid.parse(" , ").empty and str(gtid.parse("")) == ""


def test_parse_mysql_merges_touching_and_overlapping_intervals_per_uuid() -> None:
    g = gtid.parse(f"{U2}:3,{U1.upper()}:1-3:4-6:9:8,{U1}:20-25:22-30")
    assert g.mariadb == ()
    assert g.mysql == ((U1, ((1, 6), (8, 9), (20, 30))), (U2, ((3, 3),)))
    assert str(g) == f"{U1}:1-6:8-9:20-30,{U2}:3"
    with pytest.raises(ValueError, match="not a GTID"):
        gtid.parse("0-1-2,nonsense")


def test_merge_keeps_apart_intervals_with_a_gap() -> None:
    assert gtid.parse(f"{U1}:1-2:4-5").mysql == ((U1, ((1, 2), (4, 5))),)
    assert gtid.parse(f"{U1}:1-10:2-3").mysql == ((U1, ((1, 10),)),)
    assert gtid.parse(f"{U1}:5:1-4").mysql == ((U1, ((1, 5),)),)


def test_beyond_on_mariadb_compares_seq_per_domain() -> None:
    a = gtid.parse("0-1-10,1-1-5,2-1-1")
    b = gtid.parse("0-2-10,1-1-6")
    assert str(gtid.beyond(a, b)) == "2-1-1"  # equal seq is not beyond; a domain b lacks is
    assert str(gtid.beyond(b, a)) == "1-1-6"
    assert gtid.beyond(a, gtid.Gtids()) == a
    assert gtid.beyond(gtid.Gtids(), a).empty


def test_beyond_on_mysql_subtracts_per_uuid() -> None:
    a = gtid.parse(f"{U1}:1-10,{U2}:1-3")
    b = gtid.parse(f"{U1}:1-4:6:9-20")
    assert str(gtid.beyond(a, b)) == f"{U1}:5:7-8,{U2}:1-3"
    assert gtid.beyond(b, a).mysql == ((U1, ((11, 20),)),)
    assert gtid.beyond(a, a).empty and gtid.contains(a, a)


def test_subtract_edges() -> None:
    s = ((5, 10),)
    assert gtid._subtract(s, ((1, 4),)) == s
    assert gtid._subtract(s, ((11, 12),)) == s
    assert gtid._subtract(s, ((1, 5),)) == ((6, 10),)
    assert gtid._subtract(s, ((10, 12),)) == ((5, 9),)
    assert gtid._subtract(s, ((5, 10),)) == ()
    assert gtid._subtract(s, ((7, 7),)) == ((5, 6), (8, 10))
    assert gtid._subtract(((1, 3), (5, 9)), ((2, 2), (6, 7))) == ((1, 1), (3, 3), (5, 5), (8, 9))


def test_union_is_the_furthest_point() -> None:
    assert str(gtid.union(gtid.parse("0-1-5"), gtid.Gtids(), gtid.parse("0-2-7,1-1-1"))) == (
        "0-2-7,1-1-1"
    )
    assert gtid.union().empty
    assert str(gtid.union(gtid.parse(f"{U1}:1-3"), gtid.parse(f"{U1}:4-6"))) == f"{U1}:1-6"


def test_errant_on_mariadb_per_domain() -> None:
    own = gtid.parse("0-1-12,1-1-4,2-3-2")
    promoted = gtid.parse("0-1-10,1-1-4")
    active = gtid.parse("0-2-20,1-2-9,2-3-5")
    # 0-1-12: written after the promotion, not by the writer of the active node's stream
    # 1-1-4: not past the promotion point; 2-3-2: replicated from the active node's writer
    assert str(gtid.errant(own, promoted, active)) == "0-1-12"
    # same writer but beyond what the active node has: errant
    assert str(gtid.errant(gtid.parse("0-2-21"), promoted, active)) == "0-2-21"
    assert gtid.errant(gtid.parse("0-2-20"), promoted, active).empty
    # a domain the promotion point lacks counts from 0
    assert str(gtid.errant(gtid.parse("5-1-1"), promoted, active)) == "5-1-1"
    # only one side in MariaDB syntax still compares as MariaDB
    assert str(gtid.errant(gtid.parse("0-1-1"), gtid.Gtids(), gtid.Gtids())) == "0-1-1"
    assert gtid.errant(gtid.Gtids(), gtid.Gtids(), gtid.parse("0-1-1")).empty


def _seqs(g: gtid.Gtids) -> dict[int, int]:
    return {d: n for d, _s, n in g.mariadb}


positions = st.dictionaries(st.integers(0, 3), st.integers(1, 30), max_size=4)


@given(positions, positions)
def test_mariadb_beyond_and_contains_are_max_seq_per_domain(
    x: dict[int, int], y: dict[int, int]
) -> None:
    a = gtid.parse(",".join(f"{d}-1-{n}" for d, n in x.items()))
    b = gtid.parse(",".join(f"{d}-2-{n}" for d, n in y.items()))
    assert _seqs(gtid.beyond(a, b)) == {d: n for d, n in x.items() if n > y.get(d, 0)}
    assert gtid.contains(b, a) == all(n <= y.get(d, 0) for d, n in x.items())
    assert _seqs(gtid.union(a, b)) == {d: max(x.get(d, 0), y.get(d, 0)) for d in {*x, *y}}


# -- ladder --------------------------------------------------------------------------------------


def test_warn_cap_for_small_fail_points() -> None:
    assert [warn_cap(fp) for fp in range(1, 9)] == [0, 1, 2, 2, 3, 4, 4, 5]
    for fp in range(1, 30):
        cap = warn_cap(fp)
        assert status_of(cap, fp) <= Status.OK_WARN
        assert status_of(cap + 1, fp) > Status.OK_WARN or cap + 1 >= fp


@given(st.integers(1, 60))
def test_warn_cap_is_the_last_req_at_ok_warn(fail_point: int) -> None:
    expected = max((r for r in range(1, fail_point) if status_of(r, fail_point) <= 2), default=0)
    assert warn_cap(fail_point) == expected


def test_ladder_levels_at_every_req_for_fail_point_three_and_five() -> None:
    assert [status_of(r, 3) for r in range(-1, 5)] == [
        Status.OK,
        Status.OK,
        Status.OK_INFO,
        Status.OK_WARN,
        Status.FAIL,
        Status.FAIL,
    ]
    assert [status_of(r, 5) for r in range(6)] == [
        Status.OK,
        Status.OK_INFO,
        Status.OK_WARN,
        Status.OK_WARN,
        Status.OK_CRIT,
        Status.FAIL,
    ]
    assert status_of(-1, 4, notice=True) is Status.OK_INFO
    assert status_of(4, 4, notice=True) is Status.FAIL


# -- health --------------------------------------------------------------------------------------

SPEC = star_spec()
PREV = PoolState(
    "main",
    (NodeState("db1", State.ACTIVE), NodeState("db2", State.STANDBY), NodeState("db3")),
)


def rep(**changes: object) -> Replication:
    base = Replication("127.0.0.1", 3306, "Yes", True, seconds_behind=0)
    return replace(base, **changes)  # type: ignore[arg-type]


def verdict(
    r: Replication | None, prev: PoolState = PREV, **obs: Observation
) -> tuple[Verdict, str]:
    o = Observation("db2", 0.0, reachable=True, read_only=True, replication=r)
    others = {"db1": Observation("db1", 0.0, reachable=True, read_only=False), **obs}
    return classify(SPEC, prev, "db2", {**others, "db2": o})


def test_health_messages_for_every_replication_problem() -> None:
    assert verdict(None) == (
        Verdict.REPLICATION,
        "not replicating: SHOW SLAVE STATUS returned no row",
    )
    assert verdict(rep(sql_running=False)) == (
        Verdict.REPLICATION,
        "replication SQL thread stopped",
    )
    assert verdict(rep(sql_running=False, last_sql_errno=1062, last_sql_error="dup")) == (
        Verdict.REPLICATION,
        "replication SQL thread stopped: 1062 dup",
    )
    assert verdict(rep(io_running="Connecting")) == (
        Verdict.REPLICATION,
        "replication IO thread Connecting to db1",
    )
    assert verdict(rep(io_running="No", last_io_errno=1045, last_io_error="denied")) == (
        Verdict.REPLICATION,
        "replication IO thread No to db1: 1045 denied",
    )
    assert verdict(rep(source_port=9999, io_running="No")) == (
        Verdict.REPLICATION,
        "replication IO thread No to 127.0.0.1:9999",
    )
    assert verdict(rep(seconds_behind=None)) == (
        Verdict.REPLICATION,
        "replication lag from db1 unknown",
    )
    assert verdict(rep(seconds_behind=11)) == (
        Verdict.REPLICATION,
        "replication lag 11s over max_lag 10s",
    )
    assert verdict(rep(seconds_behind=10)) == (
        Verdict.GOOD,
        "replicating from db1, lag 10s, relay log applied",
    )
    assert verdict(rep(relay_pending_bytes=None))[1].endswith("relay log being applied")
    assert verdict(rep(relay_pending_bytes=512))[1].endswith("512 bytes of relay log to apply")


def test_an_io_thread_to_a_dead_source_is_not_counted() -> None:
    down = Observation("db1", 0.0, reachable=False, error="2003")
    message = "replication source db1 is down; not counted against it"
    assert verdict(rep(io_running="Connecting"), db1=down) == (Verdict.GOOD, message)
    failed = replace(PREV, nodes=(NodeState("db1", State.FAILED_OFFLINE), *PREV.nodes[1:]))
    assert verdict(rep(io_running="Connecting"), failed) == (Verdict.GOOD, message)
    failed_online = replace(PREV, nodes=(NodeState("db1", State.FAILED_ONLINE), *PREV.nodes[1:]))
    assert verdict(rep(io_running="Connecting"), failed_online)[0] is Verdict.REPLICATION
    # not probed this cycle and not known to be down: counted
    alone = classify(
        SPEC,
        PREV,
        "db2",
        {"db2": Observation("db2", 0.0, reachable=True, replication=rep(io_running="No"))},
    )
    assert alone[0] is Verdict.REPLICATION
    # a source no node is configured at: counted
    unknown = rep(source_host="10.9.9.9", io_running="Connecting")
    assert verdict(unknown, db1=down)[0] is Verdict.REPLICATION


def test_health_of_nodes_that_need_not_replicate() -> None:
    obs = {"db1": Observation("db1", 0.0, reachable=True, read_only=False)}
    assert classify(SPEC, PREV, "db1", obs) == (Verdict.GOOD, "serving, writable")
    ro = {"db3": Observation("db3", 0.0, reachable=True, read_only=True)}
    assert classify(SPEC, PREV, "db3", ro) == (Verdict.GOOD, "serving, read-only")
    empty = PoolState("main")
    assert classify(SPEC, empty, "db3", ro) == (Verdict.GOOD, "serving, read-only")
    off = {"db1": Observation("db1", 0.0, reachable=False)}
    assert classify(SPEC, PREV, "db1", off) == (Verdict.OFFLINE, "cannot connect")
    err = {"db1": Observation("db1", 0.0, reachable=True, error="1040 Too many")}
    assert classify(SPEC, PREV, "db1", err) == (Verdict.SERVICE, "1040 Too many")
    ring = ring_spec()
    assert classify(ring, PREV, "db1", obs)[0] is Verdict.REPLICATION  # a ring's ACTIVE too


# -- converge ------------------------------------------------------------------------------------


def test_received_is_empty_for_an_unreachable_or_unseen_node() -> None:
    assert converge.received(None).empty
    down = Observation("db1", 0.0, reachable=False, gtid_executed="0-1-5")
    assert converge.received(down).empty
    primary = Observation("db1", 0.0, reachable=True, gtid_executed="0-1-5")
    assert str(converge.received(primary)) == "0-1-5"


def test_is_primary_and_source_of() -> None:
    obs = star(SPEC, {"db3": "fenced"})
    assert converge.is_primary(obs["db1"])
    assert not converge.is_primary(obs["db2"])  # replicating
    assert not converge.is_primary(obs["db3"])  # read-only
    assert not converge.is_primary(None)
    busy = replace(obs["db1"], error="1040")
    assert not converge.is_primary(busy)
    assert converge.source_of(SPEC, obs["db2"]) == "db1"
    assert converge.source_of(SPEC, obs["db3"]) is None
    assert converge.source_of(SPEC, None) is None


def test_replicas_of_counts_only_reachable_answering_replicas_of_that_node() -> None:
    obs = star(SPEC, {})
    assert [n for n, _ in converge.replicas_of(SPEC, "db1", obs)] == ["db2", "db3"]
    assert converge.replicas_of(SPEC, "db2", obs) == []
    obs["db3"] = replace(obs["db3"], error="1045 denied")
    assert [n for n, _ in converge.replicas_of(SPEC, "db1", obs)] == ["db2"]
    obs["db2"] = replace(obs["db2"], reachable=False)
    assert converge.replicas_of(SPEC, "db1", obs) == []


def test_second_look_at_replicas_of_an_unreachable_or_erring_node() -> None:
    obs = star(SPEC, {})
    assert converge.second_look(SPEC, obs) == []
    busy = {**obs, "db1": replace(obs["db1"], error="1040 Too many connections")}
    assert converge.second_look(SPEC, busy) == ["db2", "db3"]
    silent = {**obs, "db1": Observation("db1", 0.0, reachable=False)}
    assert converge.second_look(SPEC, silent) == ["db2", "db3"]
    lost = star(SPEC, {"db1": "offline", "db2": "io_lost"})
    assert converge.second_look(SPEC, lost) == ["db3"]  # db2 already lost it
    both = {**lost, "db3": replace(lost["db3"], error="1045")}
    assert converge.second_look(SPEC, both) == []  # db3 failed too


def test_order_puts_a_running_primary_then_the_most_received_then_priority() -> None:
    obs = star(SPEC, {"db1": "offline"}, gtids={"db2": "0-1-5", "db3": "0-1-5"})
    assert converge.order(SPEC, ["db3", "db2"], obs) == ["db2", "db3"]
    ahead = star(SPEC, {"db1": "offline"}, gtids={"db2": "0-1-5", "db3": "0-1-6"})
    assert converge.order(SPEC, ["db2", "db3"], ahead) == ["db3", "db2"]
    running = star(SPEC, {"db1": "offline", "db3": "primary"}, gtids={"db2": "0-1-9"})
    assert converge.order(SPEC, ["db2", "db3"], running) == ["db3", "db2"]
    # incomparable positions (two domains, each ahead in one): priority decides
    split = star(SPEC, {"db1": "offline"}, gtids={"db2": "0-1-9,1-1-1", "db3": "0-1-1,1-1-9"})
    assert converge.order(SPEC, ["db3", "db2"], split) == ["db2", "db3"]
    # ahead of two beats ahead of one
    four = star_spec(4)
    obs4 = star(four, {"db1": "offline"}, gtids={"db2": "0-1-5", "db3": "0-1-6", "db4": "0-1-7"})
    assert converge.order(four, ["db2", "db3", "db4"], obs4) == ["db4", "db3", "db2"]


def test_missing_names_the_first_node_with_more_and_what() -> None:
    obs = star(SPEC, {}, gtids={"db1": "0-1-9", "db2": "0-1-5", "db3": "0-1-7"})
    assert converge.missing("db2", ["db2", "db3", "db1"], obs) == ("db3", gtid.parse("0-1-7"))
    assert converge.missing("db1", ["db1", "db2", "db3"], obs) is None
    assert converge.missing("db3", [], obs) is None


@given(st.lists(st.integers(1, 9), min_size=3, max_size=3))
def test_order_never_puts_a_node_behind_one_it_contains_strictly(seqs: list[int]) -> None:
    gtids = {f"db{i + 1}": f"0-1-{n}" for i, n in enumerate(seqs)}
    obs = star(SPEC, {"db1": "offline"}, gtids=gtids)
    ranked = converge.order(SPEC, ["db1", "db2", "db3"], obs)
    best = max(seqs[1:])
    assert int(gtids[ranked[0]].rsplit("-", 1)[1]) == best


def test_errant_on_mariadb_goes_on_after_a_domain_it_skips() -> None:
    promoted = gtid.parse("0-1-10")
    active = gtid.parse("0-2-20,1-2-9")
    # domain 0 is skipped (not past the promotion point), domain 1 is errant
    assert str(gtid.errant(gtid.parse("0-1-5,1-1-20"), promoted, active)) == "1-1-20"
    # domain 0 is skipped (replicated from the active node's writer), domain 1 is errant
    assert str(gtid.errant(gtid.parse("0-2-15,1-1-30"), promoted, active)) == "1-1-30"


# -- converge: errant checks and the plan for a failed node ------------------------------------


def _returning(**changes: object) -> Observation:
    obs = Observation(
        "db1", 0.0, reachable=True, read_only=True, gtid_executed="0-1-10", gtid_binlog="0-1-10"
    )
    return replace(obs, **changes)  # type: ignore[arg-type]


def test_errant_reads_the_binlog_of_the_returning_node_not_what_it_executed() -> None:
    state = PoolState("main", rejoin_base=(("db1", "0-1-8"),))
    obs = {"db2": Observation("db2", 0.0, reachable=True, gtid_executed="0-2-30")}
    own = _returning(gtid_binlog="0-1-9", gtid_executed="0-2-30")
    assert str(converge.errant(state, "db2", own, obs)) == "0-1-9"
    executed_only = _returning(gtid_binlog="", gtid_executed="0-1-9")
    assert str(converge.errant(state, "db2", executed_only, obs)) == "0-1-9"


def test_errant_counts_what_the_active_node_received_from_the_returning_one() -> None:
    """db1 wrote 9 and 10 after db2's promotion point 8, and db2 received them: not errant."""
    state = PoolState("main", rejoin_base=(("db1", "0-1-8"),), promoted_at="0-2-3")
    obs = {"db2": Observation("db2", 0.0, reachable=True, gtid_executed="0-1-10")}
    assert converge.errant(state, "db2", _returning(), obs).empty
    # without a base of its own, the pool's promotion point counts
    later = PoolState("main", promoted_at="0-1-8")
    assert converge.errant(later, "db2", _returning(), obs).empty
    # without any promotion point, the active node's head is the base
    none = PoolState("main")
    other = {"db2": Observation("db2", 0.0, reachable=True, gtid_executed="0-2-12")}
    assert converge.errant(none, "db2", _returning(), other).empty
    assert str(converge.errant(later, "db2", _returning(), other)) == "0-1-10"


FAILED_OVER = PoolState(
    "main",
    (
        NodeState("db1", State.FAILED_OFFLINE),
        NodeState("db2", State.ACTIVE),
        NodeState("db3", State.STANDBY),
    ),
    rejoin_base=(("db1", "0-1-8"),),
)
BEFORE = PoolState(
    "main",
    (
        NodeState("db1", State.ACTIVE),
        NodeState("db2", State.STANDBY),
        NodeState("db3", State.STANDBY),
    ),
)


def test_plan_for_a_failed_node_not_probed_this_cycle() -> None:
    obs = star(SPEC, {"db1": "offline"}, source="db2")
    del obs["db1"]
    actions = converge.plan(SPEC, BEFORE, FAILED_OVER, obs)
    assert [a for a in actions if a.node == "db1"] == [Fence("db1", best_effort=True)]
    assert [a for a in converge.plan(SPEC, FAILED_OVER, FAILED_OVER, obs) if a.node == "db1"] == []


def test_plan_does_not_fence_a_just_demoted_node_already_read_only() -> None:
    obs = star(SPEC, {"db1": "fenced", "db2": "primary", "db3": "replica"}, source="db2")
    actions = converge.plan(SPEC, BEFORE, FAILED_OVER, obs)
    assert not any(isinstance(a, Fence) for a in actions)
    writable = star(SPEC, {"db1": "primary"}, source="db2")
    assert Fence("db1") in converge.plan(SPEC, BEFORE, FAILED_OVER, writable)


def test_plan_rejoins_only_a_returning_node_that_answers_and_is_not_rejoined_yet() -> None:
    back = NodeState("db1", State.FAILED_ONLINE)
    failed = replace(FAILED_OVER, nodes=(back, *FAILED_OVER.nodes[1:]))
    rejoin = Repoint("db1", source="db2", rejoin=True)
    fenced = star(SPEC, {"db1": "fenced"}, source="db2")
    assert rejoin in converge.plan(SPEC, failed, failed, fenced)
    erring = {**fenced, "db1": replace(fenced["db1"], error="1064 in-depth check failed")}
    assert converge.plan(SPEC, failed, failed, erring) == []
    # replicating from the ACTIVE node already, threads running (lagging): nothing to do
    lagging = star(SPEC, {"db1": "lagging"}, source="db2")
    assert [a for a in converge.plan(SPEC, failed, failed, lagging) if a.node == "db1"] == []
    # db1 wrote 9 and 10 after the promotion point, db2 received them: rejoined, not held
    received = {**fenced, "db2": replace(fenced["db2"], gtid_executed="0-1-10")}
    received["db1"] = replace(fenced["db1"], gtid_binlog="0-1-10", gtid_executed="0-1-10")
    assert rejoin in converge.plan(SPEC, failed, failed, received)
    errant = {**received, "db2": replace(fenced["db2"], gtid_executed="0-2-10")}
    assert rejoin not in converge.plan(SPEC, failed, failed, errant)


def test_stopped_cleanly_means_a_thread_stopped_without_any_error() -> None:
    def obs(**changes: object) -> Observation:
        return Observation("db2", 0.0, reachable=True, replication=rep(**changes))

    assert not converge.stopped_cleanly(Observation("db2", 0.0, reachable=True))
    assert not converge.stopped_cleanly(obs())
    assert converge.stopped_cleanly(obs(io_running="No"))
    assert converge.stopped_cleanly(obs(sql_running=False))
    assert not converge.stopped_cleanly(obs(io_running="No", last_io_errno=1045))
    assert not converge.stopped_cleanly(obs(sql_running=False, last_sql_errno=1062))
    assert not converge.stopped_cleanly(obs(io_running="Connecting"))
    # a repoint cut short after CHANGE MASTER: both stopped, the dead source's 2003 kept
    assert converge.stopped_cleanly(obs(io_running="No", sql_running=False, last_io_errno=2003))
    assert not converge.stopped_cleanly(
        obs(io_running="No", sql_running=False, last_io_errno=2003, last_sql_errno=1062)
    )


def test_a_repoint_cut_short_after_its_change_master_is_finished() -> None:
    """mpp killed between CHANGE MASTER (to the new primary) and START SLAVE: the replica
    is stopped, already pointing at the ACTIVE node, with the old source's IO error kept."""
    obs = star(SPEC, {"db1": "offline", "db2": "primary", "db3": "replica"}, source="db2")
    cut = obs["db3"].replication
    assert cut is not None
    obs["db3"] = replace(
        obs["db3"],
        replication=replace(cut, io_running="No", sql_running=False, last_io_errno=2003),
    )
    assert converge.source_of(SPEC, obs["db3"]) == "db2"
    assert Repoint("db3", source="db2") in converge.plan(SPEC, FAILED_OVER, FAILED_OVER, obs)


def test_a_semi_sync_rejoin_asks_for_semi_sync() -> None:
    spec = star_spec(semi_sync=True)
    back = NodeState("db1", State.FAILED_ONLINE)
    failed = replace(FAILED_OVER, nodes=(back, *FAILED_OVER.nodes[1:]))
    fenced = star(spec, {"db1": "fenced"}, source="db2")
    rejoin = Repoint("db1", source="db2", rejoin=True, semi_sync=True)
    assert rejoin in converge.plan(spec, failed, failed, fenced)


def test_plan_fences_every_writable_failed_node() -> None:
    both = PoolState(
        "main",
        (
            NodeState("db1", State.FAILED_ONLINE),
            NodeState("db2", State.ACTIVE),
            NodeState("db3", State.FAILED_ONLINE),
        ),
    )
    obs = star(SPEC, {"db1": "primary", "db3": "primary"}, source="db2")
    actions = converge.plan(SPEC, both, both, obs)
    assert [a for a in actions if isinstance(a, Fence)] == [Fence("db1"), Fence("db3")]


def test_plan_leaves_alone_nodes_not_probed_or_unreachable_or_erring() -> None:
    state = replace(FAILED_OVER, nodes=(NodeState("db1", State.STANDBY), *FAILED_OVER.nodes[1:]))
    obs = star(SPEC, {"db1": "replica", "db2": "fenced", "db3": "replica"})  # db2 must promote
    assert Promote("db2", timeout=10.0) in converge.plan(SPEC, state, state, obs)
    for gone in (
        {k: v for k, v in obs.items() if k != "db2"},
        {**obs, "db2": Observation("db2", 0.0, reachable=False)},
        {**obs, "db2": replace(obs["db2"], error="1045")},
    ):
        assert not any(isinstance(a, Promote) for a in converge.plan(SPEC, state, state, gone))
    # db1 replicates from the old primary: repointed, unless not probed, unreachable or erring
    assert Repoint("db1", source="db2") in converge.plan(SPEC, state, state, obs)
    for gone in (
        {k: v for k, v in obs.items() if k != "db1"},
        {**obs, "db1": Observation("db1", 0.0, reachable=False)},
        {**obs, "db1": replace(obs["db1"], error="1045")},
    ):
        assert not any(a.node == "db1" for a in converge.plan(SPEC, state, state, gone))


def test_plan_rejoins_nothing_in_a_cycle_that_did_not_reach_the_active_node() -> None:
    back = NodeState("db1", State.FAILED_ONLINE)
    failed = replace(FAILED_OVER, nodes=(back, *FAILED_OVER.nodes[1:]))
    fenced = star(SPEC, {"db1": "fenced"}, source="db2")
    assert Repoint("db1", source="db2", rejoin=True) in converge.plan(SPEC, failed, failed, fenced)
    unreachable = {**fenced, "db2": Observation("db2", 0.0, reachable=False)}
    assert converge.plan(SPEC, failed, failed, unreachable) == []
    unseen = {k: v for k, v in fenced.items() if k != "db2"}
    assert converge.plan(SPEC, failed, failed, unseen) == []
