"""The daemon's pacing as pure functions: each pool on a fixed grid of ticks, the pools spread
over the interval, and a probe deadline below the interval (mpp/run/daemon.py)."""

from __future__ import annotations

import itertools
import math

from hypothesis import given
from hypothesis import strategies as st

from mpp.run.daemon import next_tick, phases, probe_deadline

intervals = st.floats(min_value=0.05, max_value=60.0)


@given(
    tick=st.floats(min_value=0.0, max_value=1e6),
    interval=intervals,
    late=st.floats(min_value=-0.01, max_value=10.0),
)
def test_the_next_tick_is_the_first_grid_point_after_the_start(
    tick: float, interval: float, late: float
) -> None:
    started = tick + late * interval
    after = next_tick(tick, started, interval)
    steps = (after - tick) / interval
    assert math.isclose(steps, round(steps), abs_tol=1e-6), "stays on the grid"
    assert after > started - 1e-9 or math.isclose(after, started), "never in the past"
    assert after - max(started, tick) <= interval * (1 + 1e-9), "no tick skipped needlessly"
    assert after > tick, "never the same tick twice (a timer that woke early)"


def test_a_late_start_keeps_the_rate_and_an_overrun_rejoins_the_grid() -> None:
    assert next_tick(10.0, 10.3, 1.0) == 11.0  # started 0.3 s late: the next tick is kept
    assert next_tick(10.0, 9.999, 1.0) == 11.0  # woke a hair early
    assert next_tick(10.0, 12.5, 1.0) == 13.0  # 2.5 ticks behind: 11 and 12 are dropped


@given(count=st.integers(min_value=1, max_value=2000), interval=intervals)
def test_pools_are_spread_evenly_over_the_interval(count: int, interval: float) -> None:
    offsets = phases(count, interval)
    assert len(offsets) == count and offsets[0] == 0.0
    assert all(0.0 <= o < interval for o in offsets)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert all(math.isclose(g, interval / count, rel_tol=1e-6) for g in gaps)


@given(
    connect=st.floats(min_value=0.01, max_value=30.0),
    query=st.floats(min_value=0.01, max_value=30.0),
    interval=intervals,
)
def test_the_deadline_leaves_the_cycle_room_unless_the_floor_says_otherwise(
    connect: float, query: float, interval: float
) -> None:
    deadline = probe_deadline(connect, query, interval)
    assert deadline <= connect + 2 * query + 0.1 + 1e-9
    floor = min(connect, 0.5)
    assert deadline <= max(0.8 * interval, floor) + 1e-9
    assert deadline >= min(connect + 2 * query + 0.1, floor) - 1e-9
