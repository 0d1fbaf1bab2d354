"""Pluggable pool logics (MPP's "brain"): pure functions from state + observations to decisions.

A logic is any module with `initial_state`, `decide` and `apply_command`; `failover` (one
ACTIVE node) is the first, `cluster` (every healthy node serves) will sit beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Protocol, cast

from mpp.logic import failover
from mpp.logic.failover import (
    Acknowledge,
    Activate,
    Command,
    CommandRefused,
    Fail,
    Recover,
    Switchover,
    Takeover,
)
from mpp.model import Decision, Observation, Outcome, PoolSpec, PoolState


class Logic(Protocol):
    def initial_state(self, spec: PoolSpec) -> PoolState: ...

    def decide(
        self,
        spec: PoolSpec,
        prev: PoolState,
        observations: Mapping[str, Observation],
        now: float,
    ) -> Decision: ...

    def apply_command(
        self, spec: PoolSpec, prev: PoolState, command: Command, now: float
    ) -> Decision: ...

    def veto(
        self, spec: PoolSpec, prev: PoolState, decision: Decision, why: str, now: float
    ) -> Decision: ...

    def complete(
        self, spec: PoolSpec, prev: PoolState, outcomes: Sequence[Outcome], now: float
    ) -> Decision: ...


_LOGICS: dict[str, ModuleType] = {"failover": failover}
NAMES = tuple(_LOGICS)


def logic_for(name: str) -> Logic:
    return cast(Logic, _LOGICS[name])


__all__ = [
    "NAMES",
    "Acknowledge",
    "Activate",
    "Command",
    "CommandRefused",
    "Fail",
    "Logic",
    "Recover",
    "Switchover",
    "Takeover",
    "logic_for",
]
