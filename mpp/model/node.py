"""A node's remembered state and the scales it is measured on (MPP's states and status ladder)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class NodeType(enum.StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"

    @property
    def letter(self) -> str:
        return "P" if self is NodeType.PRIMARY else "S"


class State(enum.StrEnum):
    UNKNOWN = "UNKNOWN"
    ACTIVE = "ACTIVE"
    STANDBY = "STANDBY"
    FAILED_ONLINE = "FAILED_ONLINE"
    FAILED_OFFLINE = "FAILED_OFFLINE"

    @property
    def failed(self) -> bool:
        return self in (State.FAILED_ONLINE, State.FAILED_OFFLINE)


class Status(enum.IntEnum):
    """MPP's status ladder; the value is the display level used by checks and metrics."""

    OK = 0
    OK_INFO = 1
    OK_WARN = 2
    OK_CRIT = 3
    FAIL = 4

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")


class Verdict(enum.StrEnum):
    """What one poll says about a node, before the ladder turns it into a status.

    The kinds differ in what they may do to an ACTIVE node: a replication problem on the
    node that takes the writes does not stop it serving, the other failures do.
    """

    GOOD = "good"
    REPLICATION = "replication"  # reachable, serving, but its replication is unhealthy
    SERVICE = "service"  # reachable but cannot serve (query failed, in-depth probe failed)
    OFFLINE = "offline"  # cannot connect within the timeout


@dataclass(frozen=True)
class NodeState:
    """A node as the pool remembers it between cycles (MPP's per-node cache entry)."""

    name: str
    state: State = State.UNKNOWN
    req: int = 0  # consecutive bad polls
    last_request: float | None = None
    message: str = ""
    notice: bool = False  # the state changed this cycle: shown as OK INFO for one cycle
    reachable: bool | None = None
    lag: int | None = None
    gtid: str = ""
    latency_ms: float | None = None  # the last probe's round trip, for metrics
    # `mpp maintenance NODE on [--for D]`: mpp and the agent leave the node alone (no local
    # restarts, no failover to or from it, no fencing) from `since` until `until` (None:
    # until `mpp maintenance NODE off`)
    streak: int = 0  # consecutive good polls (the cluster logic's way back into service)
    agent: str = ""  # what only the node's agent sees (AgentReport.summary); '' if nothing
    # how the other mpp instances see it (quorum of views: "dc2 ok, dc3 down"); '' if none
    views: str = ""
    maintenance_since: float | None = None
    maintenance_until: float | None = None

    def in_maintenance(self, now: float) -> bool:
        if self.maintenance_since is None:
            return False
        return self.maintenance_until is None or now < self.maintenance_until
