"""Every key of the pool spec the logic reads, each with a test that fails when the logic
ignores it: the same world decided with the key at two values gives two different results.

The keys (mpp/model/spec.py) and where they are read:
- PoolSpec.fail_point, .max_lag: the ladder and health, every logic;
- PoolSpec.topology: ring (cycle.py) or primary-replica (primary_replica.py);
- PoolSpec.nodes: the priority order and the addresses replicas name their source by;
- FailoverPolicy.hostile_takeover: a recovered higher-priority node takes over at once;
- ReplicationPolicy (primary-replica): auto_failover, auto_rejoin, confirm_with_replicas,
  fast_fail, failover_block, catchup_timeout, semi_sync.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from mpp.logic.failover import apply_command, decide, initial_state
from mpp.model import (
    Acknowledge,
    Change,
    ChangeKind,
    Decision,
    Detach,
    Observation,
    PoolSpec,
    PoolState,
    Promote,
    Recover,
    Repoint,
    State,
)
from tests.builders import observe, ring_spec, star, star_spec


def states(state: PoolState) -> dict[str, State]:
    return {n.name: n.state for n in state.nodes}


def settled(spec: PoolSpec, source: str = "db1") -> PoolState:
    state = decide(spec, initial_state(spec), star(spec, {}, source=source), 0.0).state
    assert states(state)[source] is State.ACTIVE
    return state


def run(spec: PoolSpec, state: PoolState, obs: dict[str, Observation], cycles: int) -> PoolState:
    for t in range(cycles):
        state = decide(spec, state, obs, 1.0 + t).state
    return state


# -- fail_point --------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_point", [1, 2, 6])
def test_fail_point_is_the_number_of_bad_polls_that_fails_a_standby(fail_point: int) -> None:
    spec = ring_spec(fail_point=fail_point)
    state = decide(spec, initial_state(spec), observe(spec, {}), 0.0).state
    bad = observe(spec, {"db3": "service"})
    for t in range(fail_point - 1):
        state = decide(spec, state, bad, 1.0 + t).state
        assert states(state)["db3"] is State.STANDBY, t
    state = decide(spec, state, bad, 10.0).state
    assert states(state)["db3"] is State.FAILED_ONLINE
    assert state.node("db3").req == fail_point


@pytest.mark.parametrize("fail_point", [2, 5])
def test_fail_point_is_the_number_of_bad_polls_that_fails_the_active_node(fail_point: int) -> None:
    spec = ring_spec(fail_point=fail_point)
    state = decide(spec, initial_state(spec), observe(spec, {}), 0.0).state
    dead = observe(spec, {"db1": "offline"})
    state = run(spec, state, dead, fail_point - 1)
    assert states(state)["db1"] is State.ACTIVE
    state = decide(spec, state, dead, 10.0).state
    assert states(state) == {"db1": State.FAILED_OFFLINE, "db2": State.ACTIVE, "db3": State.STANDBY}


# -- max_lag -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("max_lag", "failed"), [(4.0, True), (5.0, False), (30.0, False)])
def test_max_lag_is_the_lag_a_replica_may_have(max_lag: float, failed: bool) -> None:
    """Lag over max_lag is bad; a lag equal to it is still good."""
    spec = replace(star_spec(), max_lag=max_lag)
    state = settled(spec)
    obs = star(spec, {})
    rep = obs["db3"].replication
    assert rep is not None
    obs["db3"] = replace(obs["db3"], replication=replace(rep, seconds_behind=5))
    state = run(spec, state, obs, spec.fail_point)
    assert (states(state)["db3"] is State.FAILED_ONLINE) is failed
    assert ("over max_lag" in state.node("db3").message) is failed


# -- topology and nodes ------------------------------------------------------------------------


def test_topology_decides_whether_the_active_node_must_replicate() -> None:
    """In a ring the ACTIVE node replicates too; in primary-replica it is the one that
    does not. The same observations (db1 replicating from nobody) read two ways."""
    ring = ring_spec()
    obs = star(ring, {})
    ring_state = decide(ring, initial_state(ring), obs, 0.0).state
    ring_state = run(ring, ring_state, obs, ring.fail_point)
    assert "not replicating" in ring_state.node("db1").message
    assert ring_state.node("db1").req > 0
    pr = star_spec()
    pr_state = run(pr, settled(pr), obs, pr.fail_point)
    assert pr_state.node("db1").req == 0 and states(pr_state)["db1"] is State.ACTIVE


def test_node_order_is_the_priority_of_the_first_election() -> None:
    spec = ring_spec()
    reordered = replace(spec, nodes=(spec.nodes[0], spec.nodes[2], spec.nodes[1]))
    dead = observe(spec, {"db1": "offline"})
    for s, successor in ((spec, "db2"), (reordered, "db3")):
        state = decide(s, initial_state(s), observe(s, {}), 0.0).state
        state = run(s, state, dead, s.fail_point)
        assert states(state)[successor] is State.ACTIVE


# -- hostile_takeover --------------------------------------------------------------------------


@pytest.mark.parametrize("hostile", [True, False])
def test_hostile_takeover_decides_whether_the_primary_takes_back_at_once(hostile: bool) -> None:
    spec = ring_spec(hostile=hostile)
    state = decide(spec, initial_state(spec), observe(spec, {}), 0.0).state
    state = run(spec, state, observe(spec, {"db1": "offline"}), spec.fail_point)
    state = apply_command(spec, state, Recover("db1"), 10.0).state
    state = decide(spec, state, observe(spec, {}), 11.0).state  # db1 UNKNOWN -> STANDBY
    state = decide(spec, state, observe(spec, {}), 12.0).state
    assert (states(state)["db1"] is State.ACTIVE) is hostile
    if not hostile:
        assert state.relinquish_to == "db1"
        state = decide(spec, state, observe(spec, {}), 13.0).state
        assert states(state)["db1"] is State.ACTIVE


# -- confirm_with_replicas and fast_fail -------------------------------------------------------

LOST = {"db1": "offline", "db2": "io_lost", "db3": "io_lost"}  # every replica lost db1
CUT = {"db1": "offline"}  # only mpp lost db1: both replicas still stream from it


def cycles_to_failover(spec: PoolSpec, kinds: dict[str, str], limit: int = 12) -> int | None:
    """How many cycles of `kinds` it takes until db1 is failed over (None: not in `limit`)."""
    state = settled(spec)
    obs = star(spec, kinds)
    for t in range(limit):
        decision = decide(spec, state, obs, 1.0 + t)
        state = decision.state
        if decision.change is not None:
            assert decision.change == Change(ChangeKind.FAILOVER, "db1", "db2")
            return t + 1
    return None


@pytest.mark.parametrize("confirm", [True, False])
@pytest.mark.parametrize("fast", [True, False])
def test_how_soon_a_primary_is_failed_over(confirm: bool, fast: bool) -> None:
    """The four combinations, in both worlds (docs/topology.md "Detection"):
    every replica lost the primary: 1 cycle with fast_fail, else the whole ladder;
    only mpp lost it: never with confirm_with_replicas, else the whole ladder (fast_fail
    needs every replica to have lost it, whatever confirm_with_replicas says)."""
    spec = star_spec(confirm_with_replicas=confirm, fast_fail=fast)
    assert cycles_to_failover(spec, LOST) == (1 if fast else spec.fail_point)
    assert cycles_to_failover(spec, CUT) == (None if confirm else spec.fail_point)


def test_issue_16_bug_no_confirmation_is_not_every_replica_lost_it() -> None:
    """Issue 16: with confirm_with_replicas = false and fast_fail = true a primary that only
    mpp could not reach, both replicas streaming from it, was failed over in one cycle
    "confirmed dead: ... every replica lost it too"."""
    spec = star_spec(confirm_with_replicas=False, fast_fail=True)
    decision = decide(spec, settled(spec), star(spec, CUT), 1.0)
    assert decision.change is None
    assert states(decision.state)["db1"] is State.ACTIVE
    assert decision.state.node("db1").req == 1
    assert "every replica lost it" not in decision.state.node("db1").message


def test_fast_fail_off_still_fails_over_after_the_ladder_without_waiting_longer() -> None:
    spec = star_spec(fast_fail=False)
    state = settled(spec)
    obs = star(spec, LOST)
    for t in range(spec.fail_point - 1):
        decision = decide(spec, state, obs, 1.0 + t)
        state = decision.state
        assert decision.change is None, t
        assert "confirmed dead" not in state.node("db1").message
    assert decide(spec, state, obs, 9.0).change == Change(ChangeKind.FAILOVER, "db1", "db2")


@pytest.mark.parametrize("fast", [True, False])
def test_fast_fail_needs_a_replica_to_have_lost_it(fast: bool) -> None:
    """A primary with no replica at all (none configured as replicating from it) is not
    'confirmed dead' by nobody: the ladder decides."""
    spec = star_spec(2, fast_fail=fast)
    state = settled(spec)
    obs = star(spec, {"db1": "offline", "db2": "fenced"})  # db2 replicates from nobody
    decision = decide(spec, state, obs, 1.0)
    assert decision.change is None
    assert decision.state.node("db1").req == 1


# -- auto_failover -----------------------------------------------------------------------------


@pytest.mark.parametrize("auto", [True, False])
def test_auto_failover_decides_whether_a_dead_primary_is_failed_over(auto: bool) -> None:
    spec = star_spec(auto_failover=auto)
    found = cycles_to_failover(spec, LOST)
    assert found == (1 if auto else None)


# -- failover_block ----------------------------------------------------------------------------


def second_failover(spec: PoolSpec, at: float) -> Decision:
    """db1 fails over to db2 at t=10; db2 dies too and is decided at `at`."""
    state = settled(spec)
    first = decide(spec, state, star(spec, LOST), 10.0)
    assert first.change == Change(ChangeKind.FAILOVER, "db1", "db2")
    assert first.state.last_failover_at == 10.0
    dead2 = star(spec, {"db1": "offline", "db2": "offline", "db3": "io_lost"}, source="db2")
    return decide(spec, first.state, dead2, at)


@pytest.mark.parametrize(
    ("block", "at", "blocked"),
    [
        (60.0, 11.0, True),
        (60.0, 69.5, True),
        (60.0, 70.0, False),
        (60.0, 500.0, False),
        (5.0, 14.0, True),
        (5.0, 15.5, False),
        (0.0, 10.0, False),
    ],
)
def test_failover_block_is_the_time_after_a_failover_without_another(
    block: float, at: float, blocked: bool
) -> None:
    """The block expires by itself `failover_block` seconds after the last failover."""
    spec = star_spec(failover_block=block)
    decision = second_failover(spec, at)
    if blocked:
        assert decision.change is None
        assert states(decision.state)["db2"] is State.ACTIVE
        assert f"blocked for {block:g}s" in decision.state.alert
    else:
        assert decision.change == Change(ChangeKind.FAILOVER, "db2", "db3")
        assert decision.state.alert == ""


def test_acknowledge_lifts_the_failover_block_before_it_expires() -> None:
    spec = star_spec(failover_block=60.0)
    state = settled(spec)
    state = decide(spec, state, star(spec, LOST), 10.0).state
    assert state.failover_acknowledged is False
    state = apply_command(spec, state, Acknowledge(), 11.0).state
    dead2 = star(spec, {"db1": "offline", "db2": "offline", "db3": "io_lost"}, source="db2")
    assert decide(spec, state, dead2, 12.0).change == Change(ChangeKind.FAILOVER, "db2", "db3")


# -- auto_rejoin -------------------------------------------------------------------------------


@pytest.mark.parametrize("auto", [True, False])
def test_auto_rejoin_decides_whether_a_clean_old_primary_becomes_a_replica(auto: bool) -> None:
    spec = star_spec(auto_rejoin=auto)
    state = decide(spec, settled(spec), star(spec, LOST), 1.0).state
    assert states(state)["db1"] is State.FAILED_OFFLINE
    fenced = star(spec, {"db1": "fenced"}, source="db2")  # back, read-only, no errant GTID
    decision = decide(spec, state, fenced, 2.0)
    rejoin = Repoint("db1", source="db2", rejoin=True)
    repoints = [a for a in decision.actions if isinstance(a, Repoint) and a.node == "db1"]
    assert repoints == ([rejoin] if auto else [])
    # already replicating from the new primary (rejoined by hand, say): STANDBY only with it
    replicating = star(spec, {}, source="db2")
    state = decide(spec, decision.state, replicating, 3.0).state
    expected = State.STANDBY if auto else State.FAILED_ONLINE
    assert states(state)["db1"] is expected
    assert ("auto-rejoined" in state.node("db1").message) is auto


# -- catchup_timeout and semi_sync -------------------------------------------------------------


def test_catchup_timeout_is_the_timeout_of_a_failovers_detach_and_promote() -> None:
    spec = star_spec(catchup_timeout=3.5)
    decision = decide(spec, settled(spec), star(spec, LOST), 1.0)
    assert Detach("db2", timeout=3.5) in decision.actions
    assert Detach("db3", timeout=3.5) in decision.actions
    assert Promote("db2", timeout=3.5) in decision.actions


@pytest.mark.parametrize("semi", [True, False])
def test_semi_sync_is_asked_of_every_promote_and_repoint(semi: bool) -> None:
    spec = star_spec(semi_sync=semi)
    decision = decide(spec, settled(spec), star(spec, LOST), 1.0)
    assert Promote("db2", timeout=spec.replication.catchup_timeout, semi_sync=semi) in (
        decision.actions
    )
    assert Repoint("db3", source="db2", semi_sync=semi) in decision.actions


@pytest.mark.parametrize("semi", [True, False])
def test_semi_sync_on_converges_a_primary_and_replicas_without_it(semi: bool) -> None:
    """With semi_sync on, a primary whose semi-sync master side is off is promoted again and
    a replica whose slave side is off is repointed; with it off, both are left alone."""
    spec = star_spec(semi_sync=semi)
    state = settled(spec)
    obs = star(spec, {})
    obs["db1"] = replace(obs["db1"], semi_sync_primary=False)
    obs["db3"] = replace(obs["db3"], semi_sync_replica=False)
    obs["db2"] = replace(obs["db2"], semi_sync_replica=True)
    actions = decide(spec, state, obs, 1.0).actions
    if semi:
        assert actions == (
            Promote("db1", timeout=spec.replication.catchup_timeout, semi_sync=True),
            Repoint("db3", source="db1", semi_sync=True),
        )
    else:
        assert actions == ()
