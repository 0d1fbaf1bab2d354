"""The values that flow between the stages: observations in, pool state and events out.

Everything here is an immutable value with no behaviour that touches the outside world, so
the pure logic, the store and the publishers can share it without owning each other.
The pool state is also the unit of persistence: whatever the logic needs to make its next
decision lives in it, which is what makes a restart invisible.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from functools import cached_property


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
class Replication:
    """One row of SHOW SLAVE/REPLICA STATUS, already normalised by the flavor module."""

    source_host: str
    source_port: int
    io_running: str  # "Yes", "No" or "Connecting"
    sql_running: bool
    last_io_errno: int = 0
    last_io_error: str = ""
    last_sql_errno: int = 0
    last_sql_error: str = ""
    seconds_behind: int | None = None
    relay_pending_bytes: int | None = 0  # read but unexecuted bytes; None: not comparable
    using_gtid: str = ""
    gtid_io_pos: str = ""

    @property
    def source_address(self) -> str:
        return f"{self.source_host}:{self.source_port}"


@dataclass(frozen=True)
class Observation:
    """What one probe saw on one node in one cycle."""

    node: str
    at: float
    reachable: bool
    error: str = ""  # connect error when unreachable, query error when reachable
    latency_ms: float | None = None
    version: str = ""
    flavor: str = ""
    read_only: bool | None = None
    gtid_executed: str = ""
    replication: Replication | None = None


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


@dataclass(frozen=True)
class PoolState:
    """A pool's whole remembered state; the logic's input and output, the store's unit."""

    name: str
    nodes: tuple[NodeState, ...] = ()
    cycle: int = 0
    updated_at: float | None = None
    pinned: str | None = None  # an operator chose this ACTIVE node: no automatic failback
    relinquish_to: str | None = None  # graceful handover announced last cycle, done this one
    draining: tuple[str, ...] = ()  # nodes being switched away from: finish sessions, take none

    def node(self, name: str) -> NodeState:
        return self._by_name[name]

    def has(self, name: str) -> bool:
        return name in self._by_name

    @cached_property
    def _by_name(self) -> dict[str, NodeState]:
        return {n.name: n for n in self.nodes}

    @property
    def active(self) -> tuple[NodeState, ...]:
        return tuple(n for n in self.nodes if n.state is State.ACTIVE)

    def with_node(self, new: NodeState) -> PoolState:
        return replace(self, nodes=tuple(new if n.name == new.name else n for n in self.nodes))


@dataclass(frozen=True)
class Event:
    """One line of the append-only history: what changed, from what to what, and why."""

    at: float
    pool: str
    node: str
    kind: str  # "state", "status", "operator", "pool"
    old: str
    new: str
    reason: str


@dataclass(frozen=True)
class Action:
    """A change the executor must make on a server.

    Master-master pools (MPP's ring) only keep state, so their logic emits none; the
    primary-replica topology adds promote / fence / repoint actions as subclasses.
    """

    node: str


@dataclass(frozen=True)
class Decision:
    state: PoolState
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = field(default=())


@dataclass(frozen=True)
class NodeSpec:
    """The logic's view of a configured node: no addresses or credentials, only what decides."""

    name: str
    type: NodeType
    address: str = ""


@dataclass(frozen=True)
class PoolSpec:
    """The logic's view of a configured pool; nodes are in priority order."""

    name: str
    nodes: tuple[NodeSpec, ...]
    fail_point: int = 4
    max_lag: float = 10.0
    hostile_takeover: bool = False
    topology: str = "master-master"
    logic: str = "failover"

    def spec(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def priority(self, name: str) -> int:
        """Lower is preferred: the primary first, then secondaries as listed."""
        return self._ranks[name]

    def name_at(self, address: str) -> str | None:
        """The node configured at HOST:PORT, if any (to map a replica's source to a node)."""
        return self._addresses.get(address)

    @cached_property
    def _addresses(self) -> dict[str, str]:
        return {n.address: n.name for n in self.nodes}

    @cached_property
    def _ranks(self) -> dict[str, int]:
        ordered = sorted(self.nodes, key=lambda n: n.type is not NodeType.PRIMARY)
        return {n.name: i for i, n in enumerate(ordered)}
