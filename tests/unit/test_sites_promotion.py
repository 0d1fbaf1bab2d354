"""Site-aware promotion (docs/sites.md) as pure functions, over random pools.

A pool of 3 to 5 nodes, db1 its running primary, every node with a random site (dc1, dc2 or
none), a random `promotion` (prefer, normal, never), some replicas delayed (MASTER_DELAY),
random GTID positions; db1 then dies (every replica lost it too). Checked:
1. the successor is never a `promotion = "never"` node nor a delayed replica;
2. it lacks no transaction another reachable node has received (the safety rule first);
3. among the eligible nodes holding the same data, it is the first by (in the failed
   primary's site, prefer before normal, priority);
4. with cross_site = "auto", an eligible node lacking nothing is always promoted;
5. with cross_site = "manual", the successor is in db1's site; with no eligible node there,
   nobody is promoted, the pool alert says why (an ALERT event with that reason), and the
   operator's takeover of a remote node that lacks nothing makes it ACTIVE;
6. over random histories of polls and operator commands on such pools: never two ACTIVE
   nodes, and whatever mpp promotes by itself obeys 1 and 5.
Besides: a delayed replica's lag counts only past its delay; a running primary gets mpp's
semi-sync settings exactly when they differ; pools without the new keys rank as before.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from mpp.logic import gtid
from mpp.logic.failover import apply_command, complete, converge, decide, initial_state
from mpp.logic.health import classify
from mpp.model import (
    CommandRefused,
    CrossSite,
    EventKind,
    NodeSpec,
    Observation,
    Outcome,
    PoolSpec,
    PoolState,
    Promote,
    Promotion,
    Recover,
    ReplicationPolicy,
    SemiSync,
    State,
    Switchover,
    Takeover,
    Verdict,
)
from tests.builders import star, star_spec
from tests.examples import examples

POSITIONS = ["0-1-1", "0-1-2", "0-1-3", "0-1-2,1-2-1", "0-1-3,1-2-1"]
SITES = ["dc1", "dc2", ""]


@st.composite
def pools(draw: Any) -> tuple[PoolSpec, dict[str, str], set[str], CrossSite]:
    n = draw(st.integers(3, 5))
    manual = draw(st.booleans())
    spec = star_spec(n, fail_point=2, cross_site=CrossSite.MANUAL if manual else CrossSite.AUTO)
    sites = SITES[:2] if manual else SITES  # manual needs a site on every node (config)
    nodes = tuple(
        replace(
            node,
            site=draw(st.sampled_from(sites)),
            promotion=draw(st.sampled_from(list(Promotion))),
        )
        for node in spec.nodes
    )
    spec = replace(spec, nodes=nodes)
    names = [node.name for node in nodes]
    gtids = {name: draw(st.sampled_from(POSITIONS)) for name in names[1:]}
    # the primary has everything its replicas received (a real one always has)
    gtids["db1"] = str(gtid.union(*(gtid.parse(p) for p in gtids.values())))
    delayed = {name for name in names[1:] if draw(st.integers(0, 3)) == 0}
    return spec, gtids, delayed, spec.replication.cross_site


def _delay(obs: dict[str, Observation], delayed: set[str]) -> dict[str, Observation]:
    """The `delayed` nodes' replication with MASTER_DELAY (those that replicate now)."""
    out = dict(obs)
    for name in delayed:
        rep = out[name].replication
        if rep is not None:
            out[name] = replace(out[name], replication=replace(rep, sql_delay=3600))
    return out


def _running(spec: PoolSpec, gtids: dict[str, str], delayed: set[str]) -> PoolState:
    """db1 ACTIVE, the others STANDBY: the pool as mpp met it."""
    state = initial_state(spec)
    d = decide(spec, state, _delay(star(spec, {}, gtids=gtids), delayed), 1.0)
    assert [n.name for n in d.state.active] == ["db1"]
    assert all(n.state is State.STANDBY for n in d.state.nodes if n.name != "db1")
    return d.state


def _dead_primary(
    spec: PoolSpec, gtids: dict[str, str], delayed: set[str]
) -> dict[str, Observation]:
    kinds = {n.name: "io_lost" for n in spec.nodes[1:]}
    return _delay(star(spec, {"db1": "offline", **kinds}, gtids=gtids, at=2.0), delayed)


def _eligible(spec: PoolSpec, delayed: set[str]) -> list[str]:
    return [
        n.name
        for n in spec.nodes[1:]
        if n.promotion is not Promotion.NEVER and n.name not in delayed
    ]


def _received(obs: dict[str, Observation], name: str) -> gtid.Gtids:
    return converge.received(obs[name])


def _lacks_nothing(obs: dict[str, Observation], name: str, others: list[str]) -> bool:
    return converge.missing(name, others, obs) is None


@settings(max_examples=examples(400), deadline=None)
@given(pools())
def test_the_successor_is_eligible_safe_and_best_at_equal_data(
    pool: tuple[PoolSpec, dict[str, str], set[str], CrossSite],
) -> None:
    spec, gtids, delayed, cross = pool
    state = _running(spec, gtids, delayed)
    obs = _dead_primary(spec, gtids, delayed)
    d = decide(spec, state, obs, 2.0)
    new = [n.name for n in d.state.active if n.name != "db1"]
    others = [n.name for n in spec.nodes[1:]]
    eligible = _eligible(spec, delayed)
    home = spec.spec("db1").site
    if cross is CrossSite.MANUAL:
        eligible = [n for n in eligible if spec.spec(n).site == home]
    if new:
        (chosen,) = new
        event(f"promoted ({cross})")
        assert chosen in eligible, f"{chosen} promoted: never, delayed or remote"
        assert _lacks_nothing(obs, chosen, others), "promoted a node missing transactions"
        assert any(isinstance(a, Promote) and a.node == chosen for a in d.actions)

        def key(name: str) -> tuple[int, int, int]:
            node = spec.spec(name)
            return (int(bool(home) and node.site != home), node.promotion.rank, spec.priority(name))

        same = [n for n in eligible if _received(obs, n) == _received(obs, chosen)]
        assert key(chosen) == min(key(n) for n in same), (chosen, same)
        return
    assert [n.name for n in d.state.active] == ["db1"], "db1 is kept while none may take over"
    if not _eligible(spec, delayed):
        assert "no candidate mpp may promote by itself" in d.state.alert
    safe = [n for n in eligible if _lacks_nothing(obs, n, others)]
    event(f"kept ({cross})")
    assert not safe, f"{safe} could safely take over but nobody was promoted: {d.state.alert}"
    if cross is CrossSite.MANUAL and not eligible and _eligible(spec, delayed):
        assert "cross_site = manual" in d.state.alert
        alerts = [e for e in d.events if e.kind is EventKind.POOL and e.new == "ALERT"]
        assert [e.reason for e in alerts] == [d.state.alert]
        # the operator moves the writes to another site: a remote node lacking nothing
        remote = [n for n in _eligible(spec, delayed) if _lacks_nothing(obs, n, others)]
        event("manual: waits for the operator")
        if remote:
            event("manual: takeover to another site")
            asked = apply_command(spec, d.state, Takeover(remote[0]), 3.0).state
            done = decide(spec, asked, obs, 4.0)
            assert [n.name for n in done.state.active] == [remote[0]]
            assert done.state.alert == ""
            assert any(isinstance(a, Promote) and a.node == remote[0] for a in done.actions)


def test_manual_cross_site_waits_for_the_takeover_then_promotes_remote() -> None:
    """The example of docs/sites.md: db1 and db2 in dc1, db3 in dc2; dc1 lost whole."""
    spec = star_spec(3, fail_point=2, cross_site=CrossSite.MANUAL)
    sites = {"db1": "dc1", "db2": "dc1", "db3": "dc2"}
    spec = replace(spec, nodes=tuple(replace(n, site=sites[n.name]) for n in spec.nodes))
    state = _running(spec, {}, set())
    obs = star(spec, {"db1": "offline", "db2": "offline", "db3": "io_lost"}, at=2.0)
    for now in (2.0, 3.0, 4.0):
        d = decide(spec, state, obs, now)
        state = d.state
        assert [n.name for n in state.active] == ["db1"]
        assert not any(isinstance(a, Promote) for a in d.actions)
    assert "no eligible node left in site dc1" in state.alert
    assert "mpp takeover main --to NODE" in state.alert
    state = apply_command(spec, state, Takeover("db3"), 5.0).state
    d = decide(spec, state, obs, 6.0)
    assert [n.name for n in d.state.active] == ["db3"]
    assert d.state.node("db1").state is State.FAILED_OFFLINE
    # the same loss with cross_site = "auto" fails over to dc2 by itself
    auto = replace(spec, replication=ReplicationPolicy(cross_site=CrossSite.AUTO))
    d = decide(auto, _running(auto, {}, set()), obs, 2.0)
    assert [n.name for n in d.state.active] == ["db3"]


def test_operator_may_switch_over_to_a_never_node_but_not_to_a_delayed_one() -> None:
    spec = star_spec(3)
    nodes = tuple(
        replace(n, promotion=Promotion.NEVER) if n.name == "db2" else n for n in spec.nodes
    )
    spec = replace(spec, nodes=nodes)
    delayed = {"db3"}
    state = _running(spec, {}, delayed)
    obs = _delay(star(spec, {}, at=2.0), delayed)

    def switch(to: str | None) -> Any:
        asked = apply_command(spec, state, Switchover(to), 2.0).state
        return decide(spec, asked, obs, 3.0)

    assert switch("db2").state.switching is not None, "the operator named it: allowed"
    auto = switch(None)  # mpp's own pick: neither the never node nor the delayed one
    assert auto.state.switching is None
    assert [e.reason for e in auto.events if e.new == "refused"] == [
        "no healthy STANDBY to switch over to"
    ]
    refused = [e.reason for e in switch("db3").events if e.new == "refused"]
    assert refused and "delayed replica (MASTER_DELAY 3600s)" in refused[0]
    took = decide(spec, apply_command(spec, state, Takeover("db3"), 2.0).state, obs, 3.0)
    assert [n.name for n in took.state.active] == ["db1"]
    assert any("MASTER_DELAY" in e.reason for e in took.events if e.new == "refused")


@settings(max_examples=examples(300), deadline=None)
@given(
    st.integers(1, 100_000),
    st.integers(0, 100_000),
    st.sampled_from([0.5, 10.0, 60.0]),
)
def test_a_delayed_replicas_lag_counts_only_past_its_delay(
    delay: int, behind: int, max_lag: float
) -> None:
    spec = star_spec(2, max_lag=max_lag)
    state = _running(spec, {}, set())
    obs = star(spec, {})
    rep = obs["db2"].replication
    assert rep is not None
    obs["db2"] = replace(
        obs["db2"], replication=replace(rep, sql_delay=delay, seconds_behind=behind)
    )
    verdict, message = classify(spec, state, "db2", obs)
    assert verdict is (Verdict.REPLICATION if behind - delay > max_lag else Verdict.GOOD)
    assert f"MASTER_DELAY {delay}s" in message


def _semi_world(
    spec: PoolSpec, timeout: int | None, point: str, on: bool | None
) -> dict[str, Observation]:
    obs = star(spec, {})
    obs["db1"] = replace(
        obs["db1"],
        semi_sync_primary=on,
        semi_sync_timeout_ms=timeout,
        semi_sync_wait_point=point,
    )
    for name in ("db2", "db3"):
        obs[name] = replace(obs[name], semi_sync_replica=True, semi_sync_primary=False)
    return obs


@settings(max_examples=examples(300), deadline=None)
@given(
    st.booleans(),
    st.sampled_from([None, 1000, 10000, 30000, 30001]),
    st.sampled_from(["", "AFTER_SYNC", "AFTER_COMMIT", "after_sync"]),
    st.sampled_from([True, False, None]),
    st.sampled_from([30.0, 10.0, 0.5]),
)
def test_a_running_primary_gets_mpps_semi_sync_settings(
    semi_sync: bool, timeout: int | None, point: str, on: bool | None, wanted: float
) -> None:
    spec = star_spec(3, semi_sync=semi_sync, semi_sync_timeout=wanted)
    obs = _semi_world(spec, timeout, point, on)
    state = _running(spec, {}, set())
    actions = decide(spec, state, obs, 2.0).actions
    semi = [a for a in actions if isinstance(a, SemiSync)]
    promote = [a for a in actions if isinstance(a, Promote)]
    differs = (timeout is not None and timeout != int(wanted * 1000)) or point.upper() not in (
        "",
        "AFTER_SYNC",
    )
    assert (semi == [SemiSync("db1")]) == (semi_sync and on is True and differs)
    assert bool(promote) == (semi_sync and on is False)
    assert not (semi and promote)
    # the executor's outcome is recorded; the next poll with mpp's settings asks nothing
    done = complete(spec, state, [Outcome(a, True, "", 0.01) for a in actions], 2.1)
    assert [e.old for e in done.events if e.kind is EventKind.ACTION] == [
        a.describe() for a in actions
    ]
    fixed = _semi_world(spec, int(wanted * 1000), "AFTER_SYNC", True)
    assert not [a for a in decide(spec, state, fixed, 3.0).actions if isinstance(a, SemiSync)]


def test_no_sites_and_normal_promotion_rank_as_before() -> None:
    """Without the new keys the order is the old one: most received, then priority."""
    spec = star_spec(4)
    obs = star(spec, {}, gtids={"db2": "0-1-2", "db3": "0-1-3", "db4": "0-1-3"})
    assert converge.order(spec, ["db2", "db3", "db4"], obs, "") == ["db3", "db4", "db2"]
    sited = replace(
        spec,
        nodes=tuple(
            replace(n, site="dc2" if n.name == "db3" else "dc1", promotion=p)
            for n, p in zip(
                spec.nodes,
                [Promotion.NORMAL, Promotion.NORMAL, Promotion.PREFER, Promotion.NORMAL],
                strict=True,
            )
        ),
    )
    # at equal data (db3, db4) the local one wins over a remote preferred one
    assert converge.order(sited, ["db2", "db3", "db4"], obs, "dc1") == ["db4", "db3", "db2"]
    # with no site known, prefer decides
    assert converge.order(sited, ["db2", "db3", "db4"], obs, "") == ["db3", "db4", "db2"]
    assert NodeSpec("x", spec.nodes[0].type).promotion is Promotion.NORMAL


STAR_KINDS = ["replica"] * 4 + ["offline", "io_lost", "sql_stopped", "fenced", "lagging"]


@st.composite
def histories(draw: Any) -> tuple[PoolSpec, set[str], list[Any]]:
    spec, _, delayed, _ = draw(pools())
    names = [n.name for n in spec.nodes]
    steps: list[Any] = []
    writer = "db1"
    for _ in range(draw(st.integers(3, 25))):
        if draw(st.integers(0, 5)) == 0:
            node = draw(st.sampled_from(names))
            steps.append(
                draw(
                    st.sampled_from(
                        [Takeover(node), Switchover(node), Switchover(None), Recover(node)]
                    )
                )
            )
            continue
        if draw(st.integers(0, 6)) == 0:
            writer = draw(st.sampled_from(names))
        kinds = {m: draw(st.sampled_from(STAR_KINDS)) for m in names if m != writer}
        kinds[writer] = draw(st.sampled_from(["primary"] * 4 + ["offline", "fenced"]))
        gtids = {m: draw(st.sampled_from(POSITIONS)) for m in names}
        steps.append((kinds, writer, gtids, draw(st.booleans())))
    return spec, delayed, steps


@settings(max_examples=examples(200), deadline=None)
@given(histories())
def test_mpps_own_promotions_respect_the_rules_over_random_histories(
    history: tuple[PoolSpec, set[str], list[Any]],
) -> None:
    """Over random polls and operator commands: never two ACTIVE nodes, and a node that a
    poll cycle makes ACTIVE by mpp's own choice (no request carried out, no switchover
    resolved) is a running primary, or neither `never` nor delayed, and with cross_site =
    manual in the site of the node it replaces (or of the configured primary)."""
    spec, delayed, steps = history
    state = initial_state(spec)
    now = 0.0
    for step in steps:
        now += 1.0
        if not isinstance(step, tuple):
            with contextlib.suppress(CommandRefused):
                state = apply_command(spec, state, step, now).state
            continue
        kinds, writer, gtids, run = step
        obs = _delay(star(spec, kinds, source=writer, gtids=gtids, at=now), delayed)
        d = decide(spec, state, obs, now)
        actives = [n.name for n in d.state.active]
        assert len(actives) <= 1
        own = state.request is None and state.switching is None
        before = [n.name for n in state.active]
        for name in actives:
            if name in before or not own:
                continue
            seen = obs.get(name)
            if converge.is_primary(seen):
                continue
            event(f"promoted by mpp ({spec.replication.cross_site})")
            assert spec.spec(name).promotion is not Promotion.NEVER, name
            assert seen is None or seen.replication is None or not seen.replication.delayed
            if spec.replication.cross_site is CrossSite.MANUAL:
                home = spec.spec((before or ["db1"])[0]).site
                assert spec.spec(name).site == home, (name, home)
        state = d.state
        if run and d.actions:
            outcomes = [Outcome(a, True, "", 0.01) for a in d.actions if not a.best_effort]
            state = complete(spec, state, outcomes, now + 0.1).state
