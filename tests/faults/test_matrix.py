"""The fault matrix: every scenario of scenarios.toml on real servers (mpp.faults.runner).

One test per scenario; its row (RTO, lost, max writable, what mpp recorded) goes into the
table printed at the end of the run (tests/faults/conftest.py), which `make faults` shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mpp.faults.runner import INJECTORS, PORTS_PER_SCENARIO, Row, run_scenario
from mpp.faults.scenario import Scenario, load
from tests.ports import Ports

SCENARIOS = load(Path(__file__).with_name("scenarios.toml"), set(INJECTORS), {"db1", "db2", "db3"})
ROWS: list[Row] = []


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario: Scenario, tmp_path: Path, ports: Ports) -> None:
    row = run_scenario(scenario, tmp_path, ports.block(PORTS_PER_SCENARIO))
    ROWS.append(row)
    assert row.passed, "\n".join(row.problems) + f"\nmpp recorded: {row.recorded}"
