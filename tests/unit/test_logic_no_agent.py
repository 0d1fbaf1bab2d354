"""Pools without agents decide exactly as before the agent rules existed.

`logic_traces/no-agent-digests.txt` holds one digest per seeded random history (ring and
primary-replica pools, polls, operator commands, the executor's outcomes), written by the
logic of commit 188cbf2, before the agent, fence-lease and maintenance rules were added.
Every decision of every history goes into its digest (the stored state, actions, events,
change), so any difference a rule makes to a pool whose observations carry no agent view
and whose nodes are never put in maintenance fails here. `MPP_WRITE_TRACES=1` rewrites
the file: only ever for a change meant for pools without agents too.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import os
import random
from pathlib import Path

from mpp.logic.failover import apply_command, complete, decide, initial_state
from mpp.model import (
    Acknowledge,
    Activate,
    Command,
    CommandRefused,
    Decision,
    Fail,
    Observation,
    Outcome,
    PoolSpec,
    PoolState,
    Recover,
    Switchover,
    Takeover,
)
from tests.builders import observe, ring_spec, star, star_spec

DIGESTS = Path(__file__).parent / "logic_traces" / "no-agent-digests.txt"
HISTORIES = 400
RING_KINDS = ["good"] * 4 + ["offline", "service", "sql_stopped", "io_down", "lag"]
STAR_KINDS = ["replica"] * 4 + ["offline", "io_lost", "sql_stopped", "fenced", "lagging"]
POSITIONS = ["0-1-10", "0-1-10", "0-1-9", "0-1-11", "0-2-11", "0-1-10,1-2-1"]


def _spec(rnd: random.Random) -> PoolSpec:
    n = rnd.randint(2, 4)
    if rnd.random() < 0.4:
        return ring_spec(n, fail_point=rnd.randint(1, 4), hostile=rnd.random() < 0.5)
    return star_spec(
        n,
        fail_point=rnd.randint(1, 4),
        confirm_with_replicas=rnd.random() < 0.7,
        fast_fail=rnd.random() < 0.7,
        auto_failover=rnd.random() < 0.8,
        auto_rejoin=rnd.random() < 0.7,
        failover_block=rnd.choice([0.0, 60.0]),
        semi_sync=rnd.random() < 0.3,
    )


def _world(rnd: random.Random, spec: PoolSpec, writer: str, at: float) -> dict[str, Observation]:
    names = [n.name for n in spec.nodes]
    if not spec.primary_replica:
        return observe(spec, {m: rnd.choice(RING_KINDS) for m in names}, at)
    kinds = {m: rnd.choice(STAR_KINDS) for m in names if m != writer}
    kinds[writer] = rnd.choice(["primary"] * 4 + ["offline", "fenced"])
    gtids = {m: rnd.choice(POSITIONS) for m in names}
    return star(spec, kinds, source=writer, gtids=gtids, at=at)


def _command(rnd: random.Random, names: list[str]) -> Command:
    node = rnd.choice(names)
    commands: list[Command] = [
        Recover(node),
        Fail(node, rnd.random() < 0.5),
        Activate(node),
        Switchover(rnd.choice([None, node]), rnd.choice([1.0, 10.0])),
        Takeover(node, rnd.random() < 0.5),
        Acknowledge(),
    ]
    return rnd.choice(commands)


def _outcomes(rnd: random.Random, d: Decision) -> list[Outcome]:
    out: list[Outcome] = []
    for action in d.actions:
        if action.best_effort:
            continue
        ok = rnd.random() < 0.85
        out.append(Outcome(action, ok, "" if ok else "simulated failure", 0.01))
        if not ok:
            break
    return out


def canon(value: object) -> str:
    """A value with every dataclass field at its default left out, so that a field added
    later (a new policy, a new NodeState field) changes no digest while it keeps its
    default: only a different decision does."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        parts = []
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if f.default is not dataclasses.MISSING and v == f.default:
                continue
            if f.default_factory is not dataclasses.MISSING and v == f.default_factory():
                continue
            parts.append(f"{f.name}={canon(v)}")
        return f"{type(value).__name__}({', '.join(parts)})"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(canon(v) for v in value) + "]"
    if isinstance(value, enum.Enum):
        return repr(value.value)
    return repr(value)


def _line(d: Decision) -> str:
    return f"{canon(d.state)}|{canon(d.actions)}|{canon(d.events)}|{canon(d.change)}"


def history_digest(seed: int) -> str:
    """Every decision of one seeded random history, hashed."""
    rnd = random.Random(seed)
    spec = _spec(rnd)
    names = [n.name for n in spec.nodes]
    state: PoolState = initial_state(spec)
    writer = names[0]
    h = hashlib.sha256(canon(spec).encode())
    now = 0.0
    for _ in range(rnd.randint(5, 40)):
        now += rnd.choice([1.0, 1.0, 30.0])
        if rnd.random() < 0.2:
            try:
                d = apply_command(spec, state, _command(rnd, names), now)
            except CommandRefused as refused:
                h.update(f"refused {refused}".encode())
                continue
        else:
            if rnd.random() < 0.15:
                writer = rnd.choice(names)
            d = decide(spec, state, _world(rnd, spec, writer, now), now)
            h.update(_line(d).encode())
            state = d.state
            outcomes = _outcomes(rnd, d)
            if not outcomes and state.switching is None:
                continue
            now += 0.1
            d = complete(spec, state, outcomes, now)
        h.update(_line(d).encode())
        state = d.state
    return h.hexdigest()


def test_without_agents_every_decision_is_as_before() -> None:
    got = "".join(f"{seed} {history_digest(seed)}\n" for seed in range(HISTORIES))
    if os.environ.get("MPP_WRITE_TRACES") == "1":
        DIGESTS.write_text(got)
    want = DIGESTS.read_text().splitlines()
    differ = [line.split()[0] for line, w in zip(got.splitlines(), want, strict=True) if line != w]
    assert not differ, f"histories that decide differently without agents: seeds {differ}"
