"""The loop reads the node agents' reports (store.reports) each cycle and hands them to the
logic as Observation.agent, dated by when this mpp first saw them (mpp/run/agents.py), on a
real sandbox and a real SQLite store written by a second connection, as an agent would."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from mpp.logic import Logic
from mpp.model import (
    AgentReport,
    Decision,
    Observation,
    PoolSpec,
    PoolState,
    Process,
    WriteProbe,
)
from mpp.run.daemon import PoolWorker
from mpp.store import SqliteStore
from tests.conftest import Cluster
from tests.driver import Driver

pytestmark = pytest.mark.integration


def report(seq: int, node: str = "db1", **changes: Any) -> AgentReport:
    base: dict[str, Any] = {
        "fence_ttl": 6.0,
        "process": Process.RUNNING,
        "pid": 1234,
        "write": WriteProbe.OK,
        "write_ms": 3.5,
        "ping_ok": True,
        "sent_at": 1000.0 + seq,
        "agent_pid": 777,
    }
    return AgentReport(node, "main", seq, **{**base, **changes})


def observe(worker: PoolWorker) -> dict[str, Observation]:
    return asyncio.run(worker.observe())


class DecideSpy:
    """The pool's logic, keeping the observations each decision was made from."""

    def __init__(self, logic: Logic) -> None:
        self.logic = logic
        self.seen: list[Mapping[str, Observation]] = []

    def decide(
        self, spec: PoolSpec, prev: PoolState, observations: Mapping[str, Observation], now: float
    ) -> Decision:
        self.seen.append(observations)
        return self.logic.decide(spec, prev, observations, now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.logic, name)


def test_each_cycle_hands_the_agents_reports_to_the_logic_with_their_age(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster()
    config = cluster.config()
    agent_side = SqliteStore(config.state_path)  # the agent's own connection to the file
    with Driver(config) as drive:
        worker = drive.workers[0]
        spy = DecideSpy(worker.logic)
        worker.logic = spy
        drive.cycle()
        assert all(o.agent is None for o in spy.seen[-1].values()), "no agent: no view"

        first = report(1)
        agent_side.put_report(first)
        agent_side.put_report(report(1, node="db9"))  # not a node of this pool
        drive.cycle()
        seen = spy.seen[-1]
        view = seen["db1"].agent
        assert view is not None and view.report == first
        assert 0.0 <= view.age < 1.0
        assert seen["db1"].reachable and seen["db1"].read_only is False, "the probe is intact"
        assert seen["db2"].agent is None and "db9" not in seen

        time.sleep(0.6)
        agent_side.put_report(first)  # the same seq again: not a renewal
        aged = observe(worker)["db1"].agent
        assert aged is not None and aged.report == first
        assert aged.age >= view.age + 0.6, "the same seq keeps its first-seen time"

        renewed = report(2)
        agent_side.put_report(renewed)
        fresh = observe(worker)["db1"].agent
        assert fresh is not None and fresh.report == renewed and fresh.age < 0.5
    agent_side.close()


def test_an_unreadable_report_costs_the_fresh_reports_not_the_probes(
    make_cluster: Callable[..., Cluster], caplog: pytest.LogCaptureFixture
) -> None:
    """A store error while reading reports: the cycle goes on with its probes and with the
    last reports read, still aging (their leases only shorten), and says so once."""
    cluster = make_cluster()
    config = cluster.config()
    agent_side = SqliteStore(config.state_path)
    with Driver(config) as drive:
        worker = drive.workers[0]
        agent_side.put_report(report(1))
        before = observe(worker)["db1"].agent
        assert before is not None
        damage = sqlite3.connect(config.state_path)
        with damage:
            damage.execute("UPDATE agent_report SET report = '[]' WHERE node = 'db1'")
        caplog.set_level(logging.WARNING, logger="mpp")
        time.sleep(0.3)
        views = []
        for _ in range(3):
            seen = observe(worker)
            assert all(o.reachable for o in seen.values()), "probes kept"
            views.append(seen["db1"].agent)
        assert all(v is not None and v.report == report(1) for v in views)
        ages = [v.age for v in views if v is not None]
        assert ages == sorted(ages) and ages[0] >= before.age + 0.3
        errors = [r for r in caplog.records if "agent reports not read" in r.getMessage()]
        assert len(errors) == 1, "one line per change, not one per cycle"
        assert str(config.state_path) in errors[0].getMessage()
        state = drive.cycle()  # the whole cycle still decides and commits
        assert state.node("db1").state.value == "ACTIVE"

        agent_side.put_report(report(2))
        back = observe(worker)["db1"].agent
        assert back is not None and back.report == report(2) and back.age < 0.5
        assert any("agent reports read again" in r.getMessage() for r in caplog.records)
        damage.close()
    agent_side.close()
