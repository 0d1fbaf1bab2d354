"""Whole histories of the failover logic written out line by line: every event with its
reason, every node's state, req and message, the alert, the actions and the change after
each step. What an operator reads (`mpp history`, `mpp status`) is part of what the logic
decides, so a mutant that changes a word, a count or an action fails here even where the
invariants and the other unit tests hold. When a message is changed on purpose, the trace
it appears in is changed with it."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest

from mpp.logic.failover import apply_command, complete, decide, initial_state
from mpp.model import (
    Acknowledge,
    Action,
    Activate,
    AgentReport,
    AgentView,
    CommandRefused,
    Decision,
    Fail,
    Maintenance,
    NodeState,
    Observation,
    Outcome,
    PoolSpec,
    PoolState,
    Process,
    Recover,
    State,
    Switchover,
    Takeover,
    WriteProbe,
)
from tests.builders import observe, ring_spec, star, star_spec

# ("poll", observations) | ("cmd", command) | ("done", outcomes of the last actions)
Step = tuple[str, Any]
Outcomes = Callable[[Sequence[Action]], list[Outcome]]


EMPTY = PoolState("main")


def lines(d: Decision) -> list[str]:
    out = [
        f"{e.node} {e.kind.value} {e.old} > {e.new}: {e.reason}"
        + (f" [{e.change.value}]" if e.change else "")
        + (f" [{e.action.value}]" if e.action else "")
        for e in d.events
    ]
    for n in d.state.nodes:
        out.append(f"  {n.name} {n.state.value} req={n.req}: {n.message}")
        if n.agent:
            out.append(f"    agent: {n.agent}")
        if n.maintenance_since is not None:
            out.append(f"    maintenance: {n.maintenance_since:g} to {n.maintenance_until}")
    if d.state.alert:
        out.append(f"  alert: {d.state.alert}")
    pool = {
        f.name: getattr(d.state, f.name)
        for f in fields(PoolState)
        if f.name not in ("name", "nodes", "alert", "updated_at")
        and getattr(d.state, f.name) != getattr(EMPTY, f.name)
    }
    if pool:
        out.append("  pool: " + ", ".join(f"{k}={v!r}" for k, v in pool.items()))
    out += [f"  action: {a}" for a in d.actions]
    if d.change:
        out.append(f"  change: {d.change.kind.value} {d.change.old or '-'} > {d.change.new}")
    return out


def trace(spec: PoolSpec, steps: Sequence[Step], state: PoolState | None = None) -> str:
    state = state or initial_state(spec)
    out: list[str] = []
    actions: Sequence[Action] = ()
    for t, (kind, arg) in enumerate(steps):
        now = float(t)
        if kind == "poll":
            d = decide(spec, state, arg, now)
        elif kind == "cmd":
            try:
                d = apply_command(spec, state, arg, now)
            except CommandRefused as e:
                out.append(f"-- {t} cmd refused: {e}")
                continue
        else:
            d = complete(spec, state, arg(actions), now)
        out.append(f"-- {t} {kind}")
        out += lines(d)
        state, actions = d.state, d.actions
    return "\n".join(out) + "\n"


def all_ok(actions: Sequence[Action]) -> list[Outcome]:
    return [Outcome(a, True, "", 0.25) for a in actions]


def fails_at(index: int, detail: str) -> Outcomes:
    def outcomes(actions: Sequence[Action]) -> list[Outcome]:
        done = [Outcome(a, True) for a in actions[:index]]
        return [*done, Outcome(actions[index], False, detail, 1.5)]

    return outcomes


RING = ring_spec()


def ring(kinds: dict[str, str]) -> dict[str, Observation]:
    return observe(RING, kinds)


RING_STEPS: list[Step] = [
    ("poll", ring({})),
    *[("poll", ring({"db1": "offline"}))] * 4,
    ("poll", ring({"db3": "sql_stopped", "db2": "io_down"})),
    ("cmd", Recover("db1")),
    ("poll", ring({})),
    ("poll", ring({})),
    ("poll", ring({})),
    ("cmd", Recover("db2")),
    ("cmd", Activate("db3")),
    ("poll", ring({"db1": "lag"})),
    ("cmd", Fail("db2", False)),
    ("cmd", Fail("db3", False)),
    ("cmd", Activate("db2")),
    ("cmd", Recover("db2")),
    ("poll", ring({"db3": "service"})),
    ("cmd", Fail("db1", True)),
    ("cmd", Fail("db3", True)),
    *[("poll", ring({"db1": "good", "db3": "offline"}))] * 2,
]

STAR = star_spec()
LOST = {"db1": "offline", "db2": "io_lost", "db3": "io_lost"}
DEAD2 = {"db1": "offline", "db2": "offline", "db3": "io_lost"}
BUSY = Observation("db1", 0.0, reachable=True, error="1040 Too many connections")

FAILOVER_STEPS: list[Step] = [
    ("poll", star(STAR, {})),
    ("poll", star(STAR, {"db1": "offline"})),
    ("poll", {**star(STAR, {}), "db1": BUSY}),
    ("poll", star(STAR, LOST)),
    ("done", fails_at(3, "cannot connect")),
    ("poll", star(STAR, {"db1": "offline", "db2": "fenced", "db3": "io_lost"})),
    ("done", all_ok),
    ("poll", star(STAR, {"db1": "primary"}, source="db2")),
    ("poll", star(STAR, {"db1": "fenced"}, source="db2")),
    ("poll", star(STAR, {}, source="db2")),
    ("poll", star(STAR, DEAD2, source="db2")),
    ("poll", star(STAR, DEAD2, source="db2")),
    ("cmd", Acknowledge()),
    ("poll", star(STAR, DEAD2, source="db2")),
    ("poll", star(STAR, {"db2": "fenced"}, source="db3", gtids={"db2": "0-2-11"})),
]

SWITCH_STEPS: list[Step] = [
    ("poll", star(STAR, {})),
    ("cmd", Switchover("db2", timeout=5.0, id="op-1")),
    ("cmd", Switchover("db3")),
    ("poll", star(STAR, {})),
    ("done", all_ok),
    ("poll", star(STAR, {}, source="db2")),
    ("cmd", Switchover("db1")),
    ("poll", star(STAR, {}, source="db2")),
    ("done", fails_at(1, "catch-up timed out")),
    ("cmd", Switchover(None)),
    ("poll", star(STAR, {"db3": "lagging"}, source="db2")),
    ("cmd", Switchover("db3")),
    ("poll", star(STAR, {"db2": "fenced"}, source="db3")),
    ("cmd", Switchover("db1")),
    ("poll", star(STAR, {"db3": "fenced"}, source="db3")),
    ("cmd", Switchover("db9")),
    ("poll", star(STAR, {}, source="db3")),
]

TAKEOVER_STEPS: list[Step] = [
    ("poll", star(STAR, {})),
    ("cmd", Takeover("db1")),
    ("poll", star(STAR, {})),
    ("cmd", Takeover("db2")),
    ("poll", star(STAR, {"db1": "offline"}, gtids={"db2": "0-1-8"})),
    ("cmd", Takeover("db2", force=True)),
    ("poll", star(STAR, {"db1": "offline"}, gtids={"db2": "0-1-8"})),
    ("cmd", Takeover("db3")),
    ("poll", star(STAR, {"db3": "sql_stopped"}, source="db2")),
    ("cmd", Takeover("db9")),
    ("poll", star(STAR, {}, source="db2")),
    ("cmd", Activate("db3")),
    ("cmd", Fail("db2", False)),
    ("cmd", Fail("db3", False)),
]

NO_ACTIVE = PoolState(
    "main",
    (
        NodeState("db1", State.FAILED_OFFLINE, req=9),
        NodeState("db2", State.STANDBY),
        NodeState("db3", State.STANDBY),
    ),
    cycle=5,
)

TAKEOVER_EDGE_STEPS: list[Step] = [
    ("cmd", Takeover("db3", id="op-7")),
    ("poll", star(STAR, {"db1": "offline", "db2": "io_lost", "db3": "io_lost"})),
    ("cmd", Takeover("db2")),
    ("poll", star(STAR, {"db1": "offline"}, source="db3")),
    ("poll", star(STAR, {"db1": "offline", "db2": "io_lost", "db3": "offline"}, source="db3")),
]

STORED_STEPS: list[Step] = [
    ("poll", star(STAR, {})),
    ("poll", star(STAR, {})),
]

SEMI = star_spec(semi_sync=True, catchup_timeout=2.5)
SEMI_STEPS: list[Step] = [
    ("poll", star(SEMI, {})),
    ("cmd", Switchover(None, timeout=3.0)),
    ("poll", star(SEMI, {"db2": "lagging", "db3": "lagging"})),
    ("cmd", Switchover(None)),
    ("poll", {**star(SEMI, {}), "db1": BUSY}),
    ("cmd", Switchover("db3")),
    ("poll", star(SEMI, {"db2": "offline"})),
    ("done", all_ok),
    ("poll", star(SEMI, {"db1": "offline", "db2": "io_lost", "db3": "fenced"}, source="db3")),
    ("poll", star(SEMI, {"db1": "offline", "db2": "io_lost"}, source="db3")),
]


def agent(
    obs: dict[str, Observation], node: str, age: float, **fields: Any
) -> dict[str, Observation]:
    """obs with `node` carrying its agent's report (fence_ttl 6 s), first seen age s ago."""
    report = AgentReport(
        node,
        "main",
        fields.pop("seq", 1),
        6.0,
        fields.pop("process", Process.RUNNING),
        retry_limit=2,
        **fields,
    )
    return {**obs, node: replace(obs[node], agent=AgentView(report, age))}


KILL = "killed by signal 9 (SIGKILL)"
AGENT_STEPS: list[Step] = [
    ("poll", star(STAR, {})),
    # the primary cut off from mpp and its replicas; its agent still renews: wait, ask
    ("poll", agent(star(STAR, LOST), "db1", 1.0)),
    ("poll", agent(star(STAR, LOST), "db1", 3.0)),
    # its agent fenced it: promoted in that cycle
    ("poll", agent(star(STAR, LOST), "db1", 0.0, seq=2, fenced="lease not renewed; no majority")),
    ("done", all_ok),
    ("cmd", Recover("db1")),
    # db3 cannot commit: a warning under the grace, then a SERVICE failure
    (
        "poll",
        agent(
            star(STAR, {"db1": "fenced"}, source="db2"),
            "db3",
            0.0,
            write=WriteProbe.STALLED,
            stalled_for=4.0,
        ),
    ),
    (
        "poll",
        agent(
            star(STAR, {"db1": "fenced"}, source="db2"),
            "db3",
            0.0,
            write=WriteProbe.STALLED,
            stalled_for=11.0,
        ),
    ),
    ("cmd", Maintenance("db3", True, 3.0)),
    ("cmd", Takeover("db3")),
    (
        "poll",
        agent(
            star(STAR, {"db1": "offline", "db3": "offline"}, source="db2"),
            "db3",
            0.0,
            process=Process.RESTARTING,
            last_exit=KILL,
            restarts_used=1,
        ),
    ),
    ("cmd", Maintenance("db2", True)),
    # the ACTIVE node gives up while in maintenance: held
    (
        "poll",
        agent(
            star(STAR, {"db2": "offline"}, source="db2"),
            "db2",
            0.0,
            process=Process.GAVE_UP,
            last_exit=KILL,
            restarts_used=2,
        ),
    ),
    ("cmd", Maintenance("db2", False)),
    ("cmd", Acknowledge()),
    # and once maintenance is off: failed at once, with the agent's words
    (
        "poll",
        agent(
            star(STAR, {"db2": "offline", "db3": "io_lost"}, source="db2"),
            "db2",
            1.0,
            seq=3,
            process=Process.GAVE_UP,
            last_exit=KILL,
            restarts_used=2,
        ),
    ),
]

RING_AGENT_STEPS: list[Step] = [
    ("poll", ring({})),
    ("poll", agent(ring({"db1": "offline"}), "db1", 1.0)),
    ("poll", agent(ring({"db1": "offline"}), "db1", 3.0)),
    ("poll", agent(ring({"db1": "offline"}), "db1", 8.5)),
    ("poll", agent(ring({"db1": "offline"}), "db1", 9.5)),
    ("poll", agent(ring({}), "db3", 0.0, fenced="asked by mpp")),
]

TRACES = Path(__file__).parent / "logic_traces"
SCENARIOS: dict[str, tuple[PoolSpec, list[Step]]] = {
    "ring": (RING, RING_STEPS),
    "failover": (STAR, FAILOVER_STEPS),
    "switchover": (STAR, SWITCH_STEPS),
    "takeover": (STAR, TAKEOVER_STEPS),
    "takeover-edges": (STAR, TAKEOVER_EDGE_STEPS),
    "semi-sync-switchover": (SEMI, SEMI_STEPS),
    "agent": (STAR, AGENT_STEPS),
    "agent-ring": (replace(RING, fail_point=2), RING_AGENT_STEPS),
}
STATES: dict[str, PoolState] = {"takeover-edges": NO_ACTIVE}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_history_reads_as_written(name: str) -> None:
    """tests/unit/logic_traces/NAME.txt holds the trace; `MPP_WRITE_TRACES=1` rewrites the
    files from the logic (then read the diff: every changed line is a changed decision)."""
    spec, steps = SCENARIOS[name]
    got = trace(spec, steps, STATES.get(name))
    path = TRACES / f"{name}.txt"
    if os.environ.get("MPP_WRITE_TRACES") == "1":
        path.write_text(got)
    assert got == path.read_text()
