"""The failover logic: one ACTIVE node per pool (rules.py has the rules at the top).

cycle.py holds the steps every topology shares, primary_replica.py refines them for pools
where mpp rewires replication, converge.py turns the decided state into actions."""

from mpp.logic.failover.rules import (
    LOGIC,
    FailoverLogic,
    apply_command,
    complete,
    decide,
    initial_state,
    reconcile,
    veto,
)

__all__ = [
    "LOGIC",
    "FailoverLogic",
    "apply_command",
    "complete",
    "decide",
    "initial_state",
    "reconcile",
    "veto",
]
