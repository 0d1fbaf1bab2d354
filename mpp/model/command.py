"""Operator commands, as values: the CLI and the API build them, a logic's apply_command
decides what they do to the stored state (or refuses them with a reason)."""

from __future__ import annotations

from dataclasses import dataclass


class CommandRefused(Exception):
    """An operator command that would break a rule; the message says which and what to do."""


@dataclass(frozen=True)
class Recover:
    """FAILED_* -> UNKNOWN: the operator has looked at the node."""

    node: str


@dataclass(frozen=True)
class Fail:
    node: str
    force: bool = False


@dataclass(frozen=True)
class Activate:
    node: str


@dataclass(frozen=True)
class Switchover:
    """Planned: the old primary stops writes, the target catches up, roles swap."""

    to: str | None = None
    timeout: float = 10.0
    id: str = ""


@dataclass(frozen=True)
class Takeover:
    """The old primary is gone (or cut off): promote `to` without it."""

    to: str
    force: bool = False
    id: str = ""


@dataclass(frozen=True)
class Acknowledge:
    """The operator has seen the last failover: lift the anti-flapping block and alert."""


@dataclass(frozen=True)
class Maintenance:
    """`mpp maintenance NODE on|off [--for D]`: mpp and the node's agent leave it alone."""

    node: str
    on: bool
    duration: float | None = None  # seconds; None: until turned off


Command = Recover | Fail | Activate | Switchover | Takeover | Acknowledge | Maintenance


def target(command: Command) -> str | None:
    """The node a command names, if any (checked against the pool before deciding)."""
    match command:
        case Recover(node) | Fail(node) | Activate(node) | Maintenance(node):
            return node
        case Switchover(to=to):
            return to
        case Takeover(to=to):
            return to
    return None
