"""AgentTracker: agent reports dated by mpp's own clock (mpp/run/agents.py), on a fake clock."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from mpp.model import AgentReport, Process
from mpp.run.agents import AgentTracker
from tests.builders import ring_spec


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def report(node: str = "db1", seq: int = 1, **changes: object) -> AgentReport:
    made = AgentReport(node, "main", seq, 6.0, Process.RUNNING, agent_pid=4242, sent_at=float(seq))
    return replace(made, **changes)  # type: ignore[arg-type]


def test_a_new_seq_starts_at_zero_and_the_same_seq_ages() -> None:
    clock = Clock()
    tracker = AgentTracker(ring_spec(), clock)
    first = report(seq=1)
    assert tracker.views({"db1": first})["db1"].age == 0.0
    clock.now += 2.5
    view = tracker.views({"db1": first})["db1"]
    assert view.report == first and view.age == 2.5
    assert view.lease_left == 3.5
    clock.now += 1.0
    second = report(seq=2)
    view = tracker.views({"db1": second})["db1"]
    assert view.report == second and view.age == 0.0, "a renewal resets the age"
    clock.now += 0.5
    assert tracker.views({"db1": second})["db1"].age == 0.5


def test_a_fresh_tracker_dates_what_it_finds_as_seen_now() -> None:
    """After an mpp restart a report may be minutes old: mpp cannot know, so it counts the
    lease from now (late, never early)."""
    clock = Clock()
    old = report(seq=7)
    AgentTracker(ring_spec(), clock).views({"db1": old})
    clock.now += 60.0
    restarted = AgentTracker(ring_spec(), clock)
    assert restarted.views({"db1": old})["db1"].age == 0.0


def test_reports_of_other_pools_and_unknown_nodes_are_ignored() -> None:
    tracker = AgentTracker(ring_spec(), Clock())
    views = tracker.views(
        {
            "db1": report("db1"),
            "db9": report("db9"),
            "db2": report("db2", pool="other"),
        }
    )
    assert set(views) == {"db1"}


def test_a_restarted_agent_counting_from_the_same_seq_is_a_new_report() -> None:
    clock = Clock()
    tracker = AgentTracker(ring_spec(), clock)
    tracker.views({"db1": report(seq=1)})
    clock.now += 5.0
    again = report(seq=1, agent_pid=5000, sent_at=99.0)  # its seq restarted at 1
    assert tracker.views({"db1": again})["db1"].age == 0.0


def test_a_vanished_report_is_forgotten_and_dated_afresh_if_it_returns() -> None:
    clock = Clock()
    tracker = AgentTracker(ring_spec(), clock)
    tracker.views({"db1": report(), "db2": report("db2")})
    clock.now += 3.0
    assert set(tracker.views({"db2": report("db2")})) == {"db2"}
    assert tracker.views({"db1": report(), "db2": report("db2")})["db1"].age == 0.0


def test_last_ages_the_last_read_while_the_store_is_unreadable() -> None:
    clock = Clock()
    tracker = AgentTracker(ring_spec(), clock)
    assert tracker.last() == {}
    tracker.views({"db1": report()})
    clock.now += 4.0
    view = tracker.last()["db1"]
    assert view.age == 4.0 and view.lease_left == 2.0


# a history of one agent and one mpp: steps of (gap before it in seconds, what happens)
_steps = st.lists(
    st.tuples(
        st.floats(0.0, 10.0, allow_nan=False),
        st.sampled_from(["write", "read", "restart"]),
    ),
    min_size=1,
    max_size=40,
)


@given(_steps)
def test_age_is_never_more_than_the_reports_true_age(steps: list[tuple[float, str]]) -> None:
    """Whatever the timing of writes, reads and mpp restarts, a view's age is at most the
    time since the agent really wrote the report (the lease is never thought over early),
    and at least the time since the first read that saw it (it does age)."""
    clock = Clock(0.0)
    tracker = AgentTracker(ring_spec(), clock)
    stored: AgentReport | None = None
    written_at = 0.0
    first_read: float | None = None  # by the current tracker
    seq = 0
    for gap, what in steps:
        clock.now += gap
        if what == "write":
            seq += 1
            stored, written_at, first_read = report(seq=seq), clock.now, None
        elif what == "restart":
            tracker, first_read = AgentTracker(ring_spec(), clock), None
        else:
            views = tracker.views({"db1": stored} if stored else {})
            if stored is None:
                assert views == {}
                continue
            first_read = clock.now if first_read is None else first_read
            age = views["db1"].age
            assert 0.0 <= age <= clock.now - written_at
            assert age == clock.now - first_read
