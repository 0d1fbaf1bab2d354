"""MPP's checkpoints on plain values: the reach verdict (mpp.logic.reach) under hypothesis,
the config's errors, the store codec, the status rows and the rw answer of a cut-off site."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpp.config import ConfigError
from mpp.logic.reach import judge, probed
from mpp.model import (
    CheckpointKind,
    CheckpointState,
    Cut,
    EventKind,
    NodeState,
    PoolState,
    Reach,
    ReachReport,
    State,
)
from mpp.publish.roles import Role, check_node, check_pool
from mpp.publish.view import document, table
from mpp.run.daemon import PoolWorker
from mpp.run.leadership import Leadership
from mpp.run.shards import Shards
from mpp.store import NotLeader, SqliteStore, codec
from tests.builders import Doc, config, config_doc, pool, ring_spec

KINDS = list(CheckpointKind)


@st.composite
def checkpoint(draw: st.DrawFn, index: int) -> CheckpointState:
    """A checkpoint in any state: never probed, answering, or failing k times of n."""
    kind = draw(st.sampled_from(KINDS))
    fail_after = draw(st.integers(1, 3))
    ok = draw(st.sampled_from([None, True, False]))
    failures = 0 if ok is not False else draw(st.integers(1, 5))
    return CheckpointState(f"c{index}", kind, f"tcp:10.0.0.{index}:22", fail_after, ok, failures)


points = st.integers(0, 7).flatmap(lambda n: st.tuples(*(checkpoint(i) for i in range(n))))


def _all_failed(cps: tuple[CheckpointState, ...], kind: CheckpointKind) -> bool:
    mine = [c for c in cps if c.kind is kind]
    return bool(mine) and all(c.failed for c in mine)


@given(points)
def test_the_cut_is_the_innermost_kind_that_fails_whole(cps: tuple[CheckpointState, ...]) -> None:
    verdict = judge(cps)
    if _all_failed(cps, CheckpointKind.INTERNAL):
        expected = Cut.LAN
    elif _all_failed(cps, CheckpointKind.EDGE):
        expected = Cut.WAN
    elif _all_failed(cps, CheckpointKind.EXTERNAL):
        expected = Cut.GLOBAL
    else:
        expected = Cut.NONE
    assert verdict.cut is expected
    assert verdict.cut_off == (expected in (Cut.LAN, Cut.WAN))
    assert bool(verdict.reason) == verdict.cut_off  # a cut-off instance always says why
    if expected is Cut.GLOBAL:
        assert "external" in verdict.warning


@given(points, st.data())
def test_failing_more_never_makes_a_cut_off_instance_reachable(
    cps: tuple[CheckpointState, ...], data: st.DataObject
) -> None:
    """Monotone: turning any checkpoint into a failed one never lifts a cut, and never
    moves it outwards (LAN stays LAN)."""
    if not cps:
        return
    i = data.draw(st.integers(0, len(cps) - 1))
    c = cps[i]
    worse = (*cps[:i], CheckpointState(c.name, c.kind, c.target, 1, False, 1), *cps[i + 1 :])
    before, after = judge(cps), judge(worse)
    order = [Cut.LAN, Cut.WAN, Cut.GLOBAL, Cut.NONE]
    assert order.index(after.cut) <= order.index(before.cut)
    assert after.cut_off or not before.cut_off


@given(points)
def test_no_cut_on_no_evidence(cps: tuple[CheckpointState, ...]) -> None:
    """Checkpoints never probed, or failing fewer than fail_after times, cut nothing."""
    fresh = tuple(
        CheckpointState(
            c.name,
            c.kind,
            c.target,
            c.fail_after,
            None if c.failed else c.ok,
            0 if c.failed else c.failures,
        )
        for c in cps
    )
    assert judge(fresh).cut is Cut.NONE
    assert judge(()) == Reach()


@given(st.integers(1, 4), st.lists(st.booleans(), max_size=12))
def test_probed_counts_consecutive_failures(fail_after: int, answers: list[bool]) -> None:
    c = CheckpointState("gw", CheckpointKind.INTERNAL, "tcp:10.0.0.1:22", fail_after)
    run = 0
    for at, ok in enumerate(answers):
        c = probed(c, ok, "" if ok else "timed out", float(at), 1.0 if ok else None)
        run = 0 if ok else run + 1
        assert c.failures == run and c.ok is ok
        assert c.failed == (run >= fail_after)
        assert (c.error == "timed out") == (not ok)


def _cp(name: str, kind: CheckpointKind, failed: bool) -> CheckpointState:
    return CheckpointState(
        name, kind, "tcp:10.0.0.1:22", 1, not failed, int(failed), "timed out" if failed else ""
    )


def test_the_table_of_docs_checkpoints_md() -> None:
    IN, E, X = CheckpointKind.INTERNAL, CheckpointKind.EDGE, CheckpointKind.EXTERNAL
    lan = judge([_cp("gw", IN, True), _cp("wan", E, False), _cp("dns", X, False)])
    assert (lan.cut, lan.cut_off) == (Cut.LAN, True) and "gw: timed out" in lan.reason
    wan = judge([_cp("gw", IN, False), _cp("wan", E, True), _cp("dns", X, True)])
    assert (wan.cut, wan.cut_off) == (Cut.WAN, True)
    world = judge([_cp("gw", IN, False), _cp("wan", E, False), _cp("dns", X, True)])
    assert (world.cut, world.cut_off, world.reason) == (Cut.GLOBAL, False, "")
    one = judge([_cp("gw", IN, True), _cp("sw", IN, False)])
    assert (one.cut, one.cut_off) == (Cut.NONE, False) and "1 of 2" in one.warning


def _doc(checkpoints: Sequence[Mapping[str, object]]) -> Doc:
    return config_doc(mpp={"name": "site-a"}, checkpoint=list(checkpoints))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "gw", "kind": "lan", "target": "tcp:10.0.0.1:22"}, "checkpoint[0] (gw).kind"),
        ({"name": "gw", "kind": "internal", "target": "tcp:10.0.0.1"}, "write HOST:PORT"),
        ({"name": "gw", "kind": "internal", "target": "udp:10.0.0.1:53"}, "not a checkpoint"),
        ({"name": "gw", "kind": "edge", "target": "https://x.com", "timeout": "1m"}, "timeout"),
        ({"name": "gw", "kind": "edge", "target": "mysql:h:3306", "fail_after": 0}, "fail_after"),
        ({"name": "g w", "kind": "edge", "target": "mysql:h:3306"}, "no spaces"),
    ],
)
def test_config_errors_name_the_entry_and_the_key(
    entry: dict[str, object], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as info:
        config(_doc([entry]), tmp_path / "mpp.toml")
    assert str(tmp_path / "mpp.toml") in str(info.value) and message in str(info.value)


def test_a_url_with_a_password_is_refused_without_repeating_it(tmp_path: Path) -> None:
    entry = {"name": "web", "kind": "external", "target": "https://u:hunter2@x.com/"}
    with pytest.raises(ConfigError) as info:
        config(_doc([entry]), tmp_path / "mpp.toml")
    assert "no user or password" in str(info.value) and "hunter2" not in str(info.value)


def test_names_are_unique_and_defaults_are_short(tmp_path: Path) -> None:
    same = {"name": "gw", "kind": "internal", "target": "tcp:10.0.0.1:22"}
    with pytest.raises(ConfigError, match="repeated: gw"):
        config(_doc([same, same]), tmp_path / "mpp.toml")
    good = config(_doc([same, {"name": "web", "kind": "external", "target": "http://x/y?z"}]))
    spec = good.checkpoint[0].spec()
    assert (spec.kind, spec.timeout, spec.fail_after) == (CheckpointKind.INTERNAL, 1.0, 2)


REPORT = ReachReport(
    "site-a",
    1000.0,
    Reach(Cut.LAN, True, "every internal checkpoint fails (gw: timed out): ...", ""),
    (
        CheckpointState(
            "gw", CheckpointKind.INTERNAL, "tcp:10.0.0.1:22", 2, False, 3, "timed out", 999.0
        ),
        CheckpointState(
            "web", CheckpointKind.EXTERNAL, "https://x.com/", 2, True, 0, "", 999.0, 12.5
        ),
    ),
)


def test_the_report_survives_the_store_codec() -> None:
    assert codec.reach_loads(codec.reach_dumps(REPORT)) == REPORT
    with pytest.raises((ValueError, KeyError)):
        codec.reach_loads(json.dumps({"instance": "x"}))


def test_status_shows_c_rows_and_a_cut_off_instance_fails_its_pools() -> None:
    cfg = config(_doc([{"name": "gw", "kind": "internal", "target": "tcp:10.0.0.1:22"}]))
    state = PoolState(
        "main", (NodeState("db1", State.ACTIVE), NodeState("db2", State.STANDBY)), cycle=3
    )
    doc = document(cfg, {"main": state}, reach={"site-a": REPORT}, now=1001.0)
    assert doc["pools"][0]["status"] == "FAIL" and doc["pools"][0]["cut"] == "LAN"
    [mine] = doc["checkpoints"]
    assert [c["status"] for c in mine["checkpoints"]] == ["FAIL", "OK"]
    from rich.console import Console

    out = Console(width=200, record=True)
    out.print(table(doc))
    text = out.export_text()
    rows = [line for line in text.splitlines() if line.startswith("C")]
    assert len(rows) == 3, text  # the verdict, then one row per checkpoint
    assert "cut off (LAN)" in rows[0]
    assert "gw (tcp:10.0.0.1:22)" in rows[1] and "FAIL" in rows[1] and "internal" in rows[1]
    assert "timed out" in rows[1] and "12.5 ms" in rows[2]
    # another instance's cut does not fail this instance's pools
    other = document(cfg, {"main": state}, reach={"site-b": REPORT}, now=1001.0)
    assert other["pools"][0]["status"] == "OK"


def test_rw_is_down_for_every_node_of_a_cut_off_site() -> None:
    spec = ring_spec(2)
    state = PoolState(
        "main", (NodeState("db1", State.ACTIVE), NodeState("db2", State.STANDBY)), cycle=3
    )
    assert check_node(spec, state, "db1", Role.RW)[0]
    why = "cut off (LAN): every internal checkpoint fails"
    for node in ("db1", "db2"):
        up, reason = check_node(spec, state, node, Role.RW, barred=why)
        assert not up and why in reason
    assert not check_pool(spec, state, Role.RW, barred=why)[0]
    assert check_node(spec, state, "db1", Role.OK, barred=why)[0]  # reads are not refused


def test_a_barred_instance_neither_takes_nor_keeps_the_lease(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    try:
        why = ""
        a = Leadership(store, "site-a", 10.0)
        a.barred = lambda: why
        assert a.renew() and a.held and store.leader() is not None
        why = "cut off (LAN): every internal checkpoint fails"
        assert not a.held, "barred: stops acting at once, before the next renewal"
        assert not a.renew() and store.leader() is None, "and gives the lease up"
        b = Leadership(store, "site-b", 10.0)
        assert b.renew(), "another instance takes it"
        assert not a.renew() and a.current == b.owner
        assert not a.renew(), "a barred instance does not campaign"
        why = ""
        b.resign()
        assert a.renew(), "healed, it may lead again"
    finally:
        store.close()


def test_a_barred_shard_member_leaves_its_pools_to_the_others(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    try:
        why = "cut off (WAN): every edge checkpoint fails"
        a = Shards(store, "site-a", 2.0, ["p1", "p2"])
        a.bar(lambda: why)
        a.look()
        assert store.members() == [] and store.leaders() == {}, "not a member while cut off"
        b = Shards(store, "site-b", 2.0, ["p1", "p2"])
        b.look()
        assert set(store.leaders()) == {"p1", "p2"} and all(
            o == b.owner for o in store.leaders().values()
        )
    finally:
        store.close()


def test_a_cycle_begun_before_the_cut_commits_nothing_and_the_verdict_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's commit refuses once the checkpoints bar the instance, even while the
    lease is still its own in the store; the verdict's line is written without the lease."""
    monkeypatch.setenv("MPP_UNUSED_PASSWORD", "x")
    cfg = config(
        config_doc(
            pool(count=2, password_env="MPP_UNUSED_PASSWORD"),
            mpp={"state": "sqlite://state.db", "interval": "10ms", "connect_timeout": "50ms"},
        ),
        tmp_path / "mpp.toml",
    )
    store = SqliteStore(cfg.state_path)
    lease = Leadership(store, "a", 5)
    why = ""
    lease.barred = lambda: why
    worker = PoolWorker(cfg, cfg.pool[0], store, ThreadPoolExecutor(4), (), lease)
    try:
        assert lease.renew() and asyncio.run(worker.cycle()) is not None
        saved = store.load("main")
        assert saved is not None
        observations = asyncio.run(worker.probe_all())  # probed before the cut
        why = "cut off (LAN): every internal checkpoint fails (gw: timed out)"
        assert store.leader() is not None, "the lease is still a's in the store"
        with pytest.raises(NotLeader, match="nothing decided"):
            worker.commit(observations, time.time())
        after = store.load("main")
        assert after is not None and after.version == saved.version
        cut = Reach(Cut.LAN, True, "every internal checkpoint fails (gw: timed out)")
        asyncio.run(worker.note_reach(Reach(), cut))
        [line] = [e for e in store.history("main") if e.kind is EventKind.POOL]
        assert (line.old, line.new) == ("reachable", "cut off (LAN)")
        assert "gw: timed out" in line.reason and "resigns its lease" in line.reason
    finally:
        worker.close()
        store.close()


def test_after_a_cut_rw_stays_down_until_every_pool_decided_afresh() -> None:
    """A state published before the cut ended may name as ACTIVE a primary that died or was
    fenced meanwhile (the checkpoints-cut row caught rw UP for a restarted, read-only one)."""
    from types import SimpleNamespace
    from typing import cast

    from mpp.model import PoolState
    from mpp.run.reach import ReachMonitor, writes_barred

    monitor = SimpleNamespace(barred=lambda: "", healed_at=None)
    states: dict[str, PoolState | None] = {"a": PoolState("a", (), updated_at=5.0), "b": None}
    barred = writes_barred(cast(ReachMonitor, monitor), states.values)
    assert barred() == ""  # no cut
    monitor.barred = lambda: "cut off (LAN): ..."
    assert barred().startswith("cut off")
    monitor.barred, monitor.healed_at = (lambda: ""), 10.0
    assert "back from a cut" in barred()  # a's state is from before the end
    states["a"] = PoolState("a", (), updated_at=10.5)
    assert barred() == "" and monitor.healed_at is None
