"""bench/drivers.py: a missing optional driver is a message, never a traceback, and the bench's
probe deadline is the daemon's."""

from __future__ import annotations

import pytest

from bench import drivers


def test_a_missing_driver_is_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(drivers.NEEDS, "asyncmy-multi", "no_such_driver_module")
    why = drivers.missing("asyncmy-multi")
    assert why is not None and "not installed" in why and ".[bench]" in why
    assert drivers.missing("pymysql-mpp") is None  # PyMySQL is a core dependency


@pytest.mark.parametrize(
    ("connect", "query", "interval", "expected"),
    # 0.8 x interval, not below min(connect_timeout, 0.5 s), never past connect + 2 x query
    [
        (1.0, 1.0, 1.0, 0.8),
        (1.0, 1.0, 10.0, 3.1),
        (2.0, 1.0, 1.0, 0.8),
        (0.5, 0.5, 0.2, 0.5),
        (0.25, 0.25, 0.25, 0.25),
        (0.1, 0.1, 0.1, 0.1),
    ],
)
def test_deadline_is_the_daemons(
    connect: float, query: float, interval: float, expected: float
) -> None:
    assert drivers.deadline_of(connect, query, interval) == pytest.approx(expected)


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        drivers.make("no-such-variant", [], 1.0)
