"""Prints the fault matrix's table after the run (`make faults`, and in `make test`)."""

from __future__ import annotations

import pytest

from mpp.faults.runner import table


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.faults.test_matrix import ROWS

    if ROWS:
        terminalreporter.section("fault matrix")
        terminalreporter.write_line(table(ROWS))
