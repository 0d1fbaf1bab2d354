"""Scheduled switchovers: the calendar (mpp.run.schedules, croniter) and what a due slot does
(mpp.logic.schedule, pure), and the configuration's errors."""

from __future__ import annotations

import datetime
import io
from dataclasses import replace
from pathlib import Path

import pytest

from mpp.config import ConfigError
from mpp.logic import logic_for
from mpp.logic.schedule import due, next_run, unready
from mpp.model import EventKind, PoolState, RequestKind, Schedule, State
from mpp.run.schedules import Scheduler
from tests.builders import config, config_doc, pool, pool_state, star_spec

UTC = datetime.UTC


def at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_next_run_follows_the_cron_expression_in_its_time_zone() -> None:
    weekdays = Schedule("0 8 * * 1-5", "db2", 10.0)
    # 2026-12-04 is a Friday: the next 08:00 UTC on a weekday is Monday the 7th
    assert next_run(weekdays, at("2026-12-04T09:00:00")) == at("2026-12-07T08:00:00")
    paris = replace(weekdays, timezone="Europe/Paris")  # UTC+1 in December
    assert next_run(paris, at("2026-12-04T06:00:00")) == at("2026-12-04T07:00:00")
    seconds = Schedule("* * * * * */5", None, 10.0)  # six fields: seconds last
    assert next_run(seconds, at("2026-12-01T10:00:01")) == at("2026-12-01T10:00:05")


def test_a_slot_is_due_once_and_missed_slots_run_once_not_late() -> None:
    every5 = Schedule("* * * * * */5", "db2", 10.0)
    s = Scheduler((every5,), at("2026-12-01T10:00:01"))
    assert s.due(at("2026-12-01T10:00:04")) == []
    assert s.due(at("2026-12-01T10:00:05")) == [(every5, at("2026-12-01T10:00:05"))]
    assert s.due(at("2026-12-01T10:00:06")) == []  # the same slot never twice
    # three slots passed between two looks: the latest runs, once
    assert s.due(at("2026-12-01T10:00:21")) == [(every5, at("2026-12-01T10:00:20"))]
    s.restart(at("2026-12-01T10:01:00"))  # was following: what passed meanwhile is not run
    assert s.due(at("2026-12-01T10:01:01")) == []


def healthy_pool() -> PoolState:
    return pool_state(
        ("db1", State.ACTIVE, None), ("db2", State.STANDBY, 0), ("db3", State.STANDBY, 0)
    )


def test_a_due_slot_on_a_healthy_pool_asks_for_the_switchover() -> None:
    spec = star_spec()
    sched = Schedule("0 8 * * *", "db2", 7.0)
    decision = due(logic_for("failover"), spec, healthy_pool(), sched, 100.0, 101.0)
    assert decision.state.request is not None
    assert decision.state.request.kind is RequestKind.SWITCHOVER
    assert (decision.state.request.to, decision.state.request.timeout) == ("db2", 7.0)
    assert decision.state.request.id == "schedule-100"
    assert decision.state.alert == ""


def test_a_due_slot_on_an_unhealthy_pool_is_skipped_with_an_event_and_an_alert() -> None:
    spec = star_spec()
    sick = healthy_pool().with_node(replace(healthy_pool().node("db3"), state=State.FAILED_OFFLINE))
    sched = Schedule("0 8 * * *", "db2", 7.0)
    assert unready(spec, sick, sched, 0.0) == "db3 is FAILED_OFFLINE"
    decision = due(logic_for("failover"), spec, sick, sched, 100.0, 101.0)
    assert decision.state.request is None
    (event,) = decision.events
    assert event.kind is EventKind.POOL and event.new == "skipped"
    assert "skipped: db3 is FAILED_OFFLINE" in event.reason
    assert decision.state.alert == event.reason
    slow = healthy_pool().with_node(replace(healthy_pool().node("db2"), req=1, message="lag"))
    assert "db2 is not OK" in unready(spec, slow, sched, 0.0)


def test_a_slot_whose_target_is_already_active_is_noted_without_alert() -> None:
    spec = star_spec()
    decision = due(
        logic_for("failover"), spec, healthy_pool(), Schedule("0 8 * * *", "db1", 7.0), 1.0, 1.0
    )
    assert decision.state.request is None and decision.state.alert == ""
    assert "already ACTIVE" in decision.events[0].reason
    assert decision.events[0].new == "unchanged"


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"cron": "every day"}, "is not a cron expression"),
        ({"cron": "0 8 * * 1-5", "switchover_to": "db9"}, "not a node of this pool"),
        ({"cron": "0 8 * * *", "timezone": "Mars/Olympus"}, "is not a time zone"),
    ],
)
def test_a_wrong_schedule_is_a_config_error_naming_the_key(
    entry: dict[str, str], words: str, tmp_path: Path
) -> None:
    doc = config_doc(pool(topology="primary-replica", schedule=[entry]))
    with pytest.raises(ConfigError) as err:
        config(doc, tmp_path / "mpp.toml")
    assert words in str(err.value) and "schedule" in str(err.value)


def test_a_schedule_needs_a_primary_replica_pool(tmp_path: Path) -> None:
    doc = config_doc(pool(schedule=[{"cron": "0 8 * * *"}]))
    with pytest.raises(ConfigError, match="primary-replica"):
        config(doc, tmp_path / "mpp.toml")


def test_status_shows_each_schedules_next_run(tmp_path: Path) -> None:
    from mpp.publish.view import pool_document, table

    entry = {"cron": "0 8 * * 1-5", "switchover_to": "db2", "timezone": "Europe/Paris"}
    cfg = config(
        config_doc(pool(topology="primary-replica", schedule=[entry], repl_password_env="X")),
        tmp_path / "mpp.toml",
    )
    doc = pool_document(cfg.pool[0], None, now=at("2026-12-04T09:00:00"))  # a Friday
    assert doc["schedule"] == [
        {
            "cron": "0 8 * * 1-5",
            "timezone": "Europe/Paris",
            "switchover_to": "db2",
            "next": datetime.datetime.fromtimestamp(at("2026-12-07T07:00:00"), UTC).isoformat(),
        }
    ]
    from rich.console import Console

    console = Console(width=300, record=True, file=io.StringIO())
    console.print(table({"pools": [doc], "leader": None}))
    text = console.export_text()
    assert "next-switchover=2026-12-07T07:00:00+00:00->db2" in text
