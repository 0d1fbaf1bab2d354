"""Strict semi-sync's fallback rules and the heartbeat row's confirmation of a hung primary,
as pure functions of the failover logic (mpp/logic/failover/semisync.py)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from mpp.logic.failover import decide, initial_state
from mpp.logic.failover.semisync import ALERT, heartbeat_target
from mpp.model import (
    EventKind,
    Observation,
    PoolSpec,
    PoolState,
    Promote,
    RelaxSemiSync,
    State,
)
from tests.builders import star, star_spec

PERIOD = 1.0


def settled(spec: PoolSpec, at: float = 0.0) -> PoolState:
    """db1 ACTIVE, db2 and db3 STANDBY, after two healthy polls."""
    state = initial_state(spec)
    for t in (at, at + 1):
        state = decide(spec, state, strict_obs(spec, clients=2, at=t), t).state
    assert [n.state for n in state.nodes] == [State.ACTIVE, State.STANDBY, State.STANDBY]
    return state


def strict_obs(
    spec: PoolSpec, clients: int, at: float, down: tuple[str, ...] = (), semi_on: bool = True
) -> dict[str, Observation]:
    """db1 a strict semi-sync primary with `clients` semi-sync replicas connected; the
    replicas in `down` have lost it (IO thread Connecting), the others stream."""
    obs = star(spec, {n: "io_lost" for n in down}, at=at)
    out = {}
    for name, o in obs.items():
        if name == "db1":
            out[name] = replace(
                o, semi_sync_primary=semi_on, semi_sync_strict=semi_on, semi_sync_clients=clients
            )
        else:
            out[name] = replace(o, semi_sync_primary=False, semi_sync_replica=True)
    return out


# -- strict semi-sync -------------------------------------------------------------------------


def test_never_relaxed_without_a_fallback() -> None:
    spec = star_spec(semi_sync=True, semi_sync_strict=True, semi_sync_fallback=None)
    state = settled(spec)
    for t in range(2, 200, 7):
        d = decide(spec, state, strict_obs(spec, 0, float(t), down=("db2", "db3")), float(t))
        state = d.state
        assert not any(isinstance(a, RelaxSemiSync) for a in d.actions)
    assert state.semi_sync_relaxed is None
    assert state.alert.startswith(ALERT) and "never relaxed" in state.alert
    assert state.node("db1").state is State.ACTIVE


def test_relaxed_after_the_fallback_then_restored() -> None:
    spec = star_spec(semi_sync=True, semi_sync_strict=True, semi_sync_fallback=2.0)
    state = settled(spec)
    down = ("db2", "db3")
    d = decide(spec, state, strict_obs(spec, 0, 10.0, down), 10.0)
    assert d.state.semi_sync_alone_since == 10.0 and d.state.semi_sync_relaxed is None
    d = decide(spec, d.state, strict_obs(spec, 0, 11.5, down), 11.5)
    assert d.state.semi_sync_relaxed is None
    assert not any(isinstance(a, RelaxSemiSync) for a in d.actions)
    d = decide(spec, d.state, strict_obs(spec, 0, 12.0, down), 12.0)
    assert d.state.semi_sync_relaxed == "db1"
    assert RelaxSemiSync("db1") in d.actions
    assert "RPO risk" in d.state.alert
    relaxed = [e for e in d.events if e.kind is EventKind.POOL and e.new == "relaxed"]
    assert relaxed and "RPO risk" in relaxed[0].reason
    # carried out: semi-sync primary off; nothing more is asked while it stays alone
    d = decide(spec, d.state, strict_obs(spec, 0, 13.0, down, semi_on=False), 13.0)
    assert d.actions == () and d.state.semi_sync_relaxed == "db1"
    # a replica is back: strict again (converge re-applies it), the alert is cleared
    back = strict_obs(spec, 1, 14.0, ("db3",), semi_on=False)
    d = decide(spec, d.state, back, 14.0)
    assert d.state.semi_sync_relaxed is None and d.state.semi_sync_alone_since is None
    assert d.state.alert == ""
    assert any(isinstance(a, Promote) and a.node == "db1" and a.semi_sync for a in d.actions)
    assert any(e.new == "strict" and "db2 acknowledge again" in e.reason for e in d.events)


def test_a_server_that_would_fall_back_by_itself_is_made_strict() -> None:
    spec = star_spec(semi_sync=True, semi_sync_strict=True)
    state = settled(spec)
    obs = strict_obs(spec, 2, 5.0)
    obs["db1"] = replace(obs["db1"], semi_sync_strict=False)  # e.g. a 1 s timeout by hand
    d = decide(spec, state, obs, 5.0)
    assert any(isinstance(a, Promote) and a.node == "db1" and a.semi_sync for a in d.actions)


def test_a_non_strict_pool_never_uses_the_new_state() -> None:
    spec = star_spec(semi_sync=True)
    state = settled(spec)
    obs = strict_obs(spec, 0, 5.0, ("db2", "db3"))
    obs["db1"] = replace(obs["db1"], semi_sync_strict=False)
    d = decide(spec, state, obs, 5.0)
    assert d.state.semi_sync_alone_since is None and d.state.semi_sync_relaxed is None
    assert not d.state.alert.startswith(ALERT)
    assert not any(isinstance(a, Promote | RelaxSemiSync) for a in d.actions)


# one poll: (seconds since the last, replicas down, the primary reachable)
Poll = tuple[float, int, bool]


@settings(max_examples=150, deadline=None)
@given(
    fallback=st.one_of(st.none(), st.sampled_from([0.0, 1.0, 2.5, 10.0])),
    polls=st.lists(
        st.tuples(st.sampled_from([0.5, 1.0, 2.0]), st.integers(0, 2), st.booleans()),
        min_size=1,
        max_size=25,
    ),
)
def test_fallback_rules(fallback: float | None, polls: list[Poll]) -> None:
    """Relaxed only with a fallback, only after the healthy primary has had no semi-sync
    replica for that long (counted from the first poll that saw it so), and strict again
    at the first poll that sees a replica streaming; never relaxed on another node."""
    spec = star_spec(semi_sync=True, semi_sync_strict=True, semi_sync_fallback=fallback)
    state = settled(spec)
    now = 1.0
    alone_since: float | None = None
    relaxed = False
    for dt, lost, reachable in polls:
        now += dt
        down = ("db2", "db3")[:lost]
        obs = strict_obs(spec, 2 - lost, now, down, semi_on=not relaxed)
        if not reachable:
            obs["db1"] = Observation("db1", now, reachable=False, error="2003 refused")
        d = decide(spec, state, obs, now)
        active = next(n.name for n in d.state.nodes if n.state is State.ACTIVE)
        if active != "db1":  # the primary failed over (unreachable, replicas lost it)
            assert d.state.semi_sync_relaxed is None  # a new primary starts strict
            return
        if reachable:
            if lost == 2:
                alone_since = now if alone_since is None else alone_since
                if fallback is not None and now - alone_since >= fallback:
                    relaxed = True
            else:
                alone_since, relaxed = None, False
        assert d.state.semi_sync_relaxed == ("db1" if relaxed else None)
        assert d.state.semi_sync_alone_since == alone_since
        asks = any(isinstance(a, RelaxSemiSync) for a in d.actions)
        assert asks == (relaxed and reachable and obs["db1"].semi_sync_primary is True)
        if fallback is None:
            assert not relaxed
        state = d.state


# -- the heartbeat row --------------------------------------------------------------------------


def hung(spec: PoolSpec, now: float, ages: dict[str, float | str | None]) -> dict[str, Observation]:
    """db1 not answering; each replica's heartbeat row `ages` seconds old at the probe (None:
    not read), or "lost": its IO thread lost db1 too (Connecting)."""
    lost = {n: "io_lost" for n, a in ages.items() if a == "lost"}
    obs = star(spec, {"db1": "offline", **lost}, at=now)
    for name, age in ages.items():
        if isinstance(age, float):
            obs[name] = replace(obs[name], heartbeat=now - age)
    return obs


ages = st.one_of(st.none(), st.just("lost"), st.floats(0.0, 10.0, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(age2=ages, age3=ages, fast_fail=st.booleans(), confirm=st.booleans())
def test_heartbeat_confirms_only_when_every_replica_lost_it(
    age2: float | str | None, age3: float | str | None, fast_fail: bool, confirm: bool
) -> None:
    """Never confirmed down while any connected replica still receives heartbeats (or
    cannot say); confirmed at once (fast_fail) when none did for two periods, as when every
    replica's IO thread lost it."""
    spec = star_spec(heartbeat=PERIOD, fast_fail=fast_fail, confirm_with_replicas=confirm)
    state = settled(spec)
    d = decide(spec, state, hung(spec, 5.0, {"db2": age2, "db3": age3}), 5.0)
    connected = [a for a in (age2, age3) if a != "lost"]
    hearing = [a for a in connected if a is None or (isinstance(a, float) and a <= 2 * PERIOD)]
    db1 = d.state.node("db1")
    if hearing and confirm:
        assert db1.state is State.ACTIVE and db1.req < spec.fail_point
        assert "still replicate from it (heartbeat: " in db1.message
    elif not hearing and fast_fail:
        assert db1.state.failed
        assert d.state.active and d.state.active[0].name in ("db2", "db3")
        why = "no replica received mpp's heartbeat" if connected else "every replica lost it"
        assert why in d.events[0].reason
    else:
        assert db1.state is State.ACTIVE  # the ladder decides, one step at a time
        assert db1.req == 1


def test_heartbeat_off_keeps_waiting_for_the_io_threads() -> None:
    spec = star_spec()
    state = settled(spec)
    d = decide(spec, state, hung(spec, 5.0, {"db2": 9.0, "db3": 9.0}), 5.0)
    assert d.state.node("db1").state is State.ACTIVE


def test_a_primary_answering_errors_is_not_confirmed_by_the_heartbeat() -> None:
    """1040 too many connections: mpp's writer may fail too while clients are served."""
    spec = star_spec(heartbeat=PERIOD)
    state = settled(spec)
    obs = hung(spec, 5.0, {"db2": 9.0, "db3": 9.0})
    obs["db1"] = Observation("db1", 5.0, reachable=True, error="1040 Too many connections")
    d = decide(spec, state, obs, 5.0)
    assert d.state.node("db1").state is State.ACTIVE


def test_heartbeat_target() -> None:
    spec = star_spec(heartbeat=PERIOD, semi_sync=True)
    state = settled(spec)
    obs = strict_obs(spec, 2, 3.0)
    assert heartbeat_target(spec, state, obs) == "db1"
    assert heartbeat_target(spec, state, strict_obs(spec, 0, 3.0, ("db2", "db3"))) is None
    assert heartbeat_target(spec, replace(state, promoting="db1"), obs) is None
    assert heartbeat_target(spec, replace(state, draining=("db1",)), obs) is None
    fenced = {**obs, "db1": replace(obs["db1"], read_only=True)}
    assert heartbeat_target(spec, state, fenced) is None
    assert heartbeat_target(star_spec(), state, obs) is None  # no heartbeat key
    assert heartbeat_target(spec, state, obs, [RelaxSemiSync("db1")]) is None


def test_hung_replicas_count_as_down_once_failed() -> None:
    """Replicas frozen (SIGSTOP) still count as the primary's semi-sync clients until their
    TCP connections time out; mpp's ladder failing them (FAILED_OFFLINE) is the other
    confirmation, and the fallback's clock starts then."""
    spec = star_spec(semi_sync=True, semi_sync_strict=True, semi_sync_fallback=2.0)
    state = settled(spec)
    t = 2.0
    while not state.node("db2").state.failed:
        obs = strict_obs(spec, 2, t)
        for name in ("db2", "db3"):
            obs[name] = Observation(name, t, reachable=False, error="no answer within 1.0s")
        state = decide(spec, state, obs, t).state
        assert state.semi_sync_alone_since is None or state.node("db3").state.failed
        t += 1.0
    assert state.semi_sync_alone_since == t - 1.0
    assert "writes wait" in state.alert
