"""The logic's view of the configuration: names, priorities and policies, no addresses'
secrets. Built by mpp.config from the TOML; each policy object groups the keys one part of
the logic reads, so a new logic or topology adds its own object instead of more flat fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from mpp.model.kinds import CrossSite, Promotion, Topology
from mpp.model.node import NodeType
from mpp.model.views import QuorumPolicy


@dataclass(frozen=True)
class NodeSpec:
    """The logic's view of a configured node: no addresses or credentials, only what decides."""

    name: str
    type: NodeType
    address: str = ""
    # what replicas of this node report as their source (the config's replication_address,
    # else `address`): a replica's source is matched against it, not against mpp's address
    replication_address: str = ""
    site: str = ""  # where it runs ("dc1"); "": not said (no site preference applies)
    promotion: Promotion = Promotion.NORMAL
    # mpp can reach it through an admin port (admin_address) when its main port refuses it
    admin_path: bool = False


@dataclass(frozen=True)
class FailoverPolicy:
    """What the failover logic may do with the ACTIVE node, in every topology."""

    hostile_takeover: bool = False  # a recovered higher-priority node takes over at once


@dataclass(frozen=True)
class ReplicationPolicy:
    """What mpp may do to replication in a primary-replica pool (failover, rejoin, waits)."""

    auto_failover: bool = True
    auto_rejoin: bool = True
    confirm_with_replicas: bool = True  # no failover while replicas still stream from it
    fast_fail: bool = True  # a primary every replica lost fails at once
    failover_block: float = 60.0  # anti-flapping: seconds after a failover
    catchup_timeout: float = 10.0
    semi_sync: bool = False
    # what mpp sets on the primary with semi_sync (also on one it finds running)
    semi_sync_timeout: float = 30.0
    # auto: a failover may promote a node of another site; manual: when no eligible node
    # is left in the failed primary's site, wait for the operator's `mpp takeover`
    cross_site: CrossSite = CrossSite.AUTO
    # semi_sync = "strict": the primary never falls back to asynchronous commits by itself
    # (server timeout at its maximum, wait-no-replica on); mpp relaxes it only after every
    # semi-sync replica has been down for semi_sync_fallback seconds (None: never)
    semi_sync_strict: bool = False
    semi_sync_fallback: float | None = None
    # seconds between the heartbeat rows mpp writes through the ACTIVE primary (0: none);
    # a primary mpp cannot reach whose row stopped arriving on every replica for two of
    # these is confirmed down although their IO threads still say Yes
    heartbeat: float = 0.0
    # master-master rings: close the ring around a failed member and put a returning one
    # back in its place (mpp.logic.failover.ring); off: MPP's ring, state only
    ring_repair: bool = False


@dataclass(frozen=True)
class Schedule:
    """A planned switchover at the times `cron` names (in `timezone`), to `to` (None: the
    best candidate), checked against the pool's health when it comes due."""

    cron: str
    to: str | None
    timeout: float
    timezone: str = "UTC"

    @property
    def label(self) -> str:
        return f"{self.cron!r} ({self.timezone}) -> {self.to or 'best candidate'}"


@dataclass(frozen=True)
class ClusterPolicy:
    """The cluster logic's keys: how many nodes must serve, how a node earns its way back."""

    min_nodes: int = 1  # never fewer in service: the last ones stay, and the pool is CRITICAL
    return_after: int = 2  # good polls in a row before a node out of service serves again


@dataclass(frozen=True)
class AgentPolicy:
    """How the logic weighs what node agents report (pools without agents never use it)."""

    # a primary whose write probe has been stalled or failing this long is failing, even
    # while it answers pings (disk full, a lock held on the probe table, binlog disk full)
    write_stall_grace: float = 10.0
    # added to a fence lease's TTL before mpp promotes past a primary whose agent stopped
    # renewing: the agent's own check period and the time its fence takes
    fence_margin: float = 2.0


@dataclass(frozen=True)
class PoolSpec:
    """The logic's view of a configured pool; nodes are in priority order.

    `fail_point` and `max_lag` are read by every logic (the ladder and health); the policies
    only by the logic or topology they belong to. `logic` names a registered logic
    (mpp.logic.registry): plug-ins add names, so it is not an enum."""

    name: str
    nodes: tuple[NodeSpec, ...]
    fail_point: int = 4
    max_lag: float = 10.0
    topology: Topology = Topology.MASTER_MASTER
    logic: str = "failover"
    failover: FailoverPolicy = field(default_factory=FailoverPolicy)
    replication: ReplicationPolicy = field(default_factory=ReplicationPolicy)
    agents: AgentPolicy = field(default_factory=AgentPolicy)
    cluster: ClusterPolicy = field(default_factory=ClusterPolicy)
    quorum: QuorumPolicy = field(default_factory=QuorumPolicy)
    schedules: tuple[Schedule, ...] = ()

    @property
    def primary_replica(self) -> bool:
        return self.topology is Topology.PRIMARY_REPLICA

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
        return {n.replication_address or n.address: n.name for n in self.nodes}

    @cached_property
    def _ranks(self) -> dict[str, int]:
        ordered = sorted(self.nodes, key=lambda n: n.type is not NodeType.PRIMARY)
        return {n.name: i for i, n in enumerate(ordered)}
