"""What the probes report: one Observation per node per cycle, replication already
normalised by the flavor module, so nothing past mpp.probe knows MySQL from MariaDB."""

from __future__ import annotations

from dataclasses import dataclass

from mpp.model.agent import AgentView
from mpp.model.views import PeerSight


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
    # MASTER_DELAY (SQL_Delay): a delayed replica by design; its lag includes this much
    sql_delay: int = 0

    @property
    def delayed(self) -> bool:
        return self.sql_delay > 0

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
    # the primary side's settings as the server has them (None/"": not read)
    semi_sync_timeout_ms: int | None = None
    semi_sync_wait_point: str = ""
    # a semi-sync primary that never falls back by itself (wait-no-replica on, the timeout
    # at its maximum), and how many semi-sync replicas it has connected (None: unknown)
    semi_sync_strict: bool | None = None
    semi_sync_clients: int | None = None
    # mpp's heartbeat row as this node holds it: mpp's clock when the ACTIVE primary wrote
    # it, replicated like any row (None: not read, or no row yet)
    heartbeat: float | None = None
    replication: Replication | None = None
    agent: AgentView | None = None  # the node agent's newest report (None: no agent)
    # the other mpp instances' sights of this node (quorum = "majority"; () otherwise)
    peers: tuple[PeerSight, ...] = ()

    @property
    def writable(self) -> bool:
        """A primary as far as clients can tell: reachable, answering, read_only off."""
        return self.reachable and not self.error and self.read_only is False
