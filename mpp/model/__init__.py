"""The values that flow between the stages: observations in, pool state and events out.

Everything here is an immutable value (frozen dataclasses, enums) with no behaviour that
touches the outside world, so the pure logic, the store and the publishers can share it
without owning each other. This package imports nothing else of mpp (checked by
import-linter in `make test`). One module per kind of value:

- kinds: every enum that names a kind (event, change, request, topology, action)
- node: MPP's states, status ladder and verdicts; a node's remembered state
- observation: what the probes saw
- pool: the pool's remembered state (the store's unit) and operator requests in it
- event: a history line
- plan: actions, outcomes, the change of writer, the decision
- spec: the logic's view of the configuration, with its policy objects
- command: operator commands
- agent: what a node agent reports, and mpp's view of it
- reach: MPP's checkpoints and the place of a cut
- views: how each mpp instance sees the nodes (the quorum of views)
"""

from mpp.model.agent import AgentReport, AgentView, Process, WriteProbe
from mpp.model.command import (
    Acknowledge,
    Activate,
    Command,
    CommandRefused,
    Fail,
    Maintenance,
    Recover,
    Switchover,
    Takeover,
)
from mpp.model.event import Event
from mpp.model.kinds import (
    ActionKind,
    ChangeKind,
    CrossSite,
    EventKind,
    Promotion,
    RequestKind,
    Topology,
)
from mpp.model.node import NodeState, NodeType, State, Status, Verdict
from mpp.model.observation import Observation, Replication
from mpp.model.plan import (
    Action,
    CatchUp,
    Change,
    Decision,
    Detach,
    Fence,
    Outcome,
    Promote,
    RelaxSemiSync,
    Repoint,
    SemiSync,
    SetReadOnly,
    Unfence,
)
from mpp.model.pool import PoolState, Request
from mpp.model.reach import (
    CheckpointKind,
    CheckpointSpec,
    CheckpointState,
    Cut,
    Reach,
    ReachReport,
)
from mpp.model.spec import (
    AgentPolicy,
    ClusterPolicy,
    FailoverPolicy,
    NodeSpec,
    PoolSpec,
    ReplicationPolicy,
    Schedule,
)
from mpp.model.views import NodeSight, PeerSight, Quorum, QuorumPolicy, SiteView

__all__ = [
    "Acknowledge",
    "Action",
    "ActionKind",
    "Activate",
    "AgentPolicy",
    "AgentReport",
    "AgentView",
    "CatchUp",
    "Change",
    "ChangeKind",
    "CheckpointKind",
    "CheckpointSpec",
    "CheckpointState",
    "ClusterPolicy",
    "Command",
    "CommandRefused",
    "CrossSite",
    "Cut",
    "Decision",
    "Detach",
    "Event",
    "EventKind",
    "Fail",
    "FailoverPolicy",
    "Fence",
    "Maintenance",
    "NodeSight",
    "NodeSpec",
    "NodeState",
    "NodeType",
    "Observation",
    "Outcome",
    "PeerSight",
    "PoolSpec",
    "PoolState",
    "Process",
    "Promote",
    "Promotion",
    "Quorum",
    "QuorumPolicy",
    "Reach",
    "ReachReport",
    "Recover",
    "RelaxSemiSync",
    "Replication",
    "ReplicationPolicy",
    "Repoint",
    "Request",
    "RequestKind",
    "Schedule",
    "SemiSync",
    "SetReadOnly",
    "SiteView",
    "State",
    "Status",
    "Switchover",
    "Takeover",
    "Topology",
    "Unfence",
    "Verdict",
    "WriteProbe",
]
