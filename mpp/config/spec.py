"""Config -> spec: the logic's view of a pool, grouped into the policy objects of mpp.model.

Kept apart from the schema so that adding a policy (a new logic's or topology's keys) is one
function here and one dataclass in mpp.model.spec, and the logic never sees pydantic.
Hooks are not in the spec: running them is the loop's business (mpp.run), not the logic's.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

from mpp.model import (
    AgentPolicy,
    ClusterPolicy,
    CrossSite,
    FailoverPolicy,
    NodeSpec,
    NodeType,
    PoolSpec,
    Promotion,
    Quorum,
    QuorumPolicy,
    ReplicationPolicy,
    Schedule,
    Topology,
)

if TYPE_CHECKING:
    from mpp.config.pools import PoolConfig


def pool_spec(pool: PoolConfig) -> PoolSpec:
    return PoolSpec(
        name=pool.name,
        nodes=tuple(
            NodeSpec(
                n.name,
                NodeType(n.type),
                n.address,
                n.source,
                site=n.site or "",
                promotion=Promotion(n.promotion),
                admin_path=n.admin_address is not None,
            )
            for n in pool.node
        ),
        fail_point=pool.fail_point,
        max_lag=pool.max_lag,
        topology=Topology(pool.topology),
        logic=pool.logic,
        failover=FailoverPolicy(hostile_takeover=pool.hostile_takeover),
        replication=_replication(pool),
        schedules=tuple(
            Schedule(e.cron, e.switchover_to, e.timeout or pool.switchover_timeout, e.timezone)
            for e in pool.schedule
        ),
        cluster=ClusterPolicy(min_nodes=pool.min_nodes, return_after=pool.return_after),
        agents=AgentPolicy(**{f.name: getattr(pool, f.name) for f in fields(AgentPolicy)}),
        quorum=QuorumPolicy(Quorum(pool.quorum)),
    )


def _replication(pool: PoolConfig) -> ReplicationPolicy:
    """Every ReplicationPolicy field is the pool key of the same name, except semi_sync
    (true or "strict": on), semi_sync_strict (its "strict") and cross_site (an enum)."""
    derived: dict[str, Any] = {
        "semi_sync": pool.semi_sync is not False,
        "semi_sync_strict": pool.semi_sync == "strict",
        "cross_site": CrossSite(pool.cross_site),
    }
    return ReplicationPolicy(
        **{
            f.name: derived[f.name] if f.name in derived else getattr(pool, f.name)
            for f in fields(ReplicationPolicy)
        }
    )
