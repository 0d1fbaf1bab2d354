"""The quorum of views as pure functions (mpp/logic/views.py, mpp/run/views.py dating):
one site's broken link never fails a node the majority sees; stale views never vote."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from mpp.logic import logic_for, views
from mpp.model import (
    NodeState,
    Observation,
    PeerSight,
    PoolState,
    Quorum,
    QuorumPolicy,
    SiteView,
    State,
)
from mpp.run.views import ViewTracker
from tests.builders import star, star_spec

SPEC = replace(star_spec(3), quorum=QuorumPolicy(Quorum.MAJORITY))
UNREACHABLE = Observation("db1", 0.0, reachable=False, error="2003 timed out")
# db1 ACTIVE, db2 and db3 STANDBY: where every history here starts
STARTED = PoolState(
    "main",
    (
        NodeState("db1", State.ACTIVE),
        NodeState("db2", State.STANDBY),
        NodeState("db3", State.STANDBY),
    ),
)

peers = st.lists(
    st.builds(
        PeerSight,
        owner=st.sampled_from(["a", "b", "c", "d"]),
        site=st.sampled_from(["dc1", "dc2", ""]),
        answered=st.booleans(),
        age=st.floats(0, 10),
        interval=st.floats(0.5, 2),
    ),
    max_size=6,
)
own = st.sampled_from(
    [UNREACHABLE, Observation("db1", 0.0, reachable=True, error="1040 too many"), None]
)


@given(own, peers)
def test_overruled_only_when_the_leader_failed_and_no_majority_agrees(
    obs: Observation | None, sights: list[PeerSight]
) -> None:
    seen = obs or Observation("db1", 0.0, reachable=True, read_only=False)
    seen = replace(seen, peers=tuple(sights))
    fresh = [p for p in sights if p.age <= 2 * p.interval]
    down = 1 + sum(not p.answered for p in fresh)
    result = views.overruled(SPEC, seen)
    if obs is None:
        assert result is None  # the leader saw it answering: never overruled either way
    elif 2 * down > 1 + len(fresh):
        assert result is None
    else:
        assert result is not None and result and all(p.answered and p.fresh for p in result)
    # with quorum = "leader" the views never count
    assert views.overruled(replace(SPEC, quorum=QuorumPolicy()), seen) is None


@given(own, peers, peers)
def test_stale_views_do_not_vote(
    obs: Observation | None, sights: list[PeerSight], stale: list[PeerSight]
) -> None:
    seen = replace(obs or UNREACHABLE, peers=tuple(sights))
    old = tuple(replace(p, age=2 * p.interval + 0.01) for p in stale)
    more = replace(seen, peers=seen.peers + old)
    assert views.overruled(SPEC, seen) == views.overruled(SPEC, more)


def _cycles(peer_age: float, count: int = 8) -> PoolState:
    """db1 (ACTIVE) unreachable from the leader for `count` cycles while two other
    instances, their views `peer_age` seconds old, see it answering."""
    logic = logic_for(SPEC.logic)
    state = STARTED
    for i in range(count):
        obs = star(SPEC, {"db1": "offline"}, at=float(i))
        # the replicas lost it too (as when the leader's host is cut from everything but
        # the store): only the other instances' views keep it up
        for name in ("db2", "db3"):
            rep = obs[name].replication
            assert rep is not None
            obs[name] = replace(obs[name], replication=replace(rep, io_running="Connecting"))
        sights = tuple(
            PeerSight(owner, site, True, peer_age, 1.0)
            for owner, site in (("b", "dc2"), ("c", "dc3"))
        )
        obs["db1"] = replace(obs["db1"], peers=sights)
        state = logic.decide(SPEC, state, obs, float(i)).state
    return state


def test_a_primary_the_other_sites_see_is_not_failed_over() -> None:
    state = _cycles(peer_age=0.5)
    assert state.node("db1").state is State.ACTIVE
    assert "quorum of views" in state.node("db1").message
    assert state.node("db1").views == "dc2 ok, dc3 ok"


def test_with_the_other_views_stale_the_leader_fails_it_over() -> None:
    state = _cycles(peer_age=5.0)
    assert state.node("db1").state is State.FAILED_OFFLINE
    assert [n.name for n in state.active] in (["db2"], ["db3"])
    assert state.node("db1").views == "dc2 ok (stale), dc3 ok (stale)"


def test_a_node_only_the_others_reach_is_not_a_candidate() -> None:
    """db1 and db3 die; db2 is unreachable from the leader though another instance sees it
    answering: it stays STANDBY (not failed) but is never promoted from here, where no
    action could reach it."""
    logic = logic_for(SPEC.logic)
    state = STARTED
    down = PeerSight("b", "dc2", False, 0.1, 1.0)
    for i in range(8):
        obs = star(SPEC, {"db1": "offline", "db2": "offline", "db3": "offline"}, at=float(i))
        obs["db2"] = replace(obs["db2"], peers=(PeerSight("b", "dc2", True, 0.1, 1.0),))
        obs["db1"] = replace(obs["db1"], peers=(down,))
        obs["db3"] = replace(obs["db3"], peers=(down,))
        state = logic.decide(SPEC, state, obs, float(i)).state
    assert state.node("db2").state is State.STANDBY
    assert state.node("db3").state is State.FAILED_OFFLINE
    assert [n.name for n in state.active] == ["db1"], "kept: no candidate the leader reaches"


def test_the_tracker_dates_views_by_first_sight_and_skips_its_own() -> None:
    clock = [100.0]
    tracker = ViewTracker(SPEC, "a", monotonic=lambda: clock[0])
    mine = tracker.mine("dc1", 1.0, {"db1": UNREACHABLE})
    assert mine.seq == 1 and mine.nodes[0].answered is False
    other = replace(mine, owner="b", site="dc2", nodes=(replace(mine.nodes[0], answered=True),))
    tracker.read({"a": mine, "b": other})
    clock[0] += 1.5
    tracker.read({"a": mine, "b": other})  # the same view again: it ages
    (sight,) = tracker.peers("db1")
    assert (sight.owner, sight.answered, sight.age) == ("b", True, 1.5)
    clock[0] += 1.0
    assert not tracker.peers("db1")[0].fresh
    tracker.read({"b": replace(other, seq=2)})  # a new one: fresh again
    assert tracker.peers("db1")[0].age == 0.0
    assert tracker.peers("db9") == ()
    stray = SiteView("other-pool", "c", "dc3", 1, 1.0, other.nodes)
    tracker.read({"c": stray})
    assert tracker.peers("db1") == ()
