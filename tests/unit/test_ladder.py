from hypothesis import given
from hypothesis import strategies as st

from mpp.logic.ladder import status_of, warn_cap
from mpp.model import Status


def test_mpp_default_ladder() -> None:
    assert [status_of(r, 4) for r in range(6)] == [
        Status.OK,
        Status.OK_INFO,
        Status.OK_WARN,
        Status.OK_CRIT,
        Status.FAIL,
        Status.FAIL,
    ]


def test_other_fail_points_spread_the_middle_levels() -> None:
    assert [status_of(r, 2) for r in range(3)] == [Status.OK, Status.OK_WARN, Status.FAIL]
    assert [status_of(r, 1) for r in range(2)] == [Status.OK, Status.FAIL]
    eight = [status_of(r, 8) for r in range(1, 8)]
    assert eight[0] is Status.OK_INFO and eight[-1] is Status.OK_CRIT
    assert set(eight) == {Status.OK_INFO, Status.OK_WARN, Status.OK_CRIT}


def test_state_change_notice_shows_ok_info_only_when_ok() -> None:
    assert status_of(0, 4, notice=True) is Status.OK_INFO
    assert status_of(2, 4, notice=True) is Status.OK_WARN


def test_warn_cap() -> None:
    assert warn_cap(4) == 2
    assert warn_cap(1) == 0
    assert status_of(warn_cap(10), 10) is Status.OK_WARN


@given(st.integers(1, 200), st.integers(0, 400))
def test_ladder_is_monotonic_and_fails_exactly_at_the_fail_point(fail_point: int, req: int) -> None:
    assert status_of(req, fail_point) <= status_of(req + 1, fail_point)
    assert (status_of(req, fail_point) is Status.FAIL) == (req >= fail_point)
