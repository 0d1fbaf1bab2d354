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
    gtid_executed: str = ""  # everything applied (MariaDB gtid_current_pos, MySQL gtid_executed)
    gtid_binlog: str = ""  # what its own binlog holds (MariaDB gtid_binlog_pos): errant checks
    semi_sync_primary: bool | None = None
    semi_sync_replica: bool | None = None
    replication: Replication | None = None

    @property
    def writable(self) -> bool:
        """A primary as far as clients can tell: reachable, answering, read_only off."""
        return self.reachable and not self.error and self.read_only is False


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
class Request:
    """A planned switchover or a takeover asked for by the operator (CLI or API)."""

    kind: str  # "switchover" or "takeover"
    to: str | None  # target node; None: the best candidate
    at: float  # when it was asked for
    timeout: float = 10.0  # switchover: how long writes may stay blocked waiting for catch-up
    force: bool = False  # takeover: promote even a candidate that is not the most advanced
    id: str = ""


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
    request: Request | None = None  # an operator's switchover/takeover, waiting for the daemon
    switching: Request | None = None  # a switchover being carried out (crash: resolved next cycle)
    last_failover_at: float | None = None  # anti-flapping: automatic failovers blocked for a while
    failover_acknowledged: bool = True  # the operator lifted the block (`mpp acknowledge`)
    promoted_at: str = ""  # GTID position the ACTIVE node was promoted at: errant-check base
    alert: str = ""  # why the pool needs the operator (e.g. auto_failover off, unsafe candidate)
    promoting: str | None = None  # ACTIVE by decision, not yet writable: rw waits for it

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
    """A change the executor must make on a server, in the order the logic lists them.

    Master-master pools (MPP's ring) only keep state, so their logic emits none. A failed
    action stops the rest of the plan unless it is `best_effort` (fencing a primary that may
    be dead must not stop the promotion of its successor).
    """

    node: str
    best_effort: bool = False

    def describe(self) -> str:
        return f"{type(self).__name__.lower()} {self.node}"


@dataclass(frozen=True)
class Fence(Action):
    """read_only on, semi-sync primary off, client connections killed: no more writes."""


@dataclass(frozen=True)
class Unfence(Action):
    """Undo a switchover's fence: the old primary takes writes again (rollback)."""


@dataclass(frozen=True)
class Promote(Action):
    """Apply the relay log (bounded wait), stop replicating, forget the source, writable."""

    timeout: float = 10.0
    semi_sync: bool = False


@dataclass(frozen=True)
class Detach(Action):
    """Stop receiving from a primary that is gone. All replicas at once, before promoting:
    on a semi-sync replica of a hung primary this alone takes about a second."""

    timeout: float = 10.0


@dataclass(frozen=True)
class CatchUp(Action):
    """Wait until `node` has applied everything `source` has written (switchover)."""

    source: str = ""
    timeout: float = 10.0


@dataclass(frozen=True)
class Repoint(Action):
    """Make `node` a read-only GTID replica of `source` (auto-positioned)."""

    source: str = ""
    rejoin: bool = False  # an old primary: start from its own binlog position
    semi_sync: bool = False

    def describe(self) -> str:
        verb = "rejoin" if self.rejoin else "repoint"
        return f"{verb} {self.node} to {self.source}"


@dataclass(frozen=True)
class SetReadOnly(Action):
    """Enforce read_only on a replica that was found writable."""


@dataclass(frozen=True)
class RunHook(Action):
    """An operator's hook command; `node` is the node it concerns."""

    hook: str = ""
    env: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        return f"hook {self.hook}"


@dataclass(frozen=True)
class Outcome:
    """What happened when the executor carried out one action."""

    action: Action
    ok: bool
    detail: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Decision:
    state: PoolState
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = field(default=())
    change: tuple[str, str, str] | None = None  # (failover|switchover|takeover, old, new)


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
    auto_failover: bool = True
    auto_rejoin: bool = True
    confirm_with_replicas: bool = True
    fast_fail: bool = True
    failover_block: float = 60.0
    catchup_timeout: float = 10.0
    semi_sync: bool = False
    hooks: tuple[tuple[str, str], ...] = ()  # (hook name, command)
    abort_on_hook_failure: bool = True

    @property
    def primary_replica(self) -> bool:
        return self.topology == "primary-replica"

    def hook(self, name: str) -> str | None:
        return dict(self.hooks).get(name)

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
