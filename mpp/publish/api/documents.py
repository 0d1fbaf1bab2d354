"""The shapes the API answers with, for the OpenAPI description only.

The bodies themselves come from mpp.publish.view as they are (the same document as
`mpp status --json`); these models exist so that clients and the schemathesis fuzzing see
what a route returns. They allow extra fields where the view may grow one, so a new field in
the view never makes the description lie.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class MaintenanceDoc(BaseModel):
    since: str | None
    until: str | None  # null: until `mpp maintenance NODE off`


class AgentReportDoc(_Open):
    """A node agent's latest report (mpp.model.AgentReport), as the agent wrote it."""

    seq: int
    summary: str
    process: str  # running | restarting | gave_up | stopped
    pid: int | None
    restarts_used: int
    retry_limit: int
    last_exit: str
    message: str
    ping_ok: bool | None
    write: str  # unknown | ok | stalled | failed
    write_ms: float | None
    write_error: str
    stalled_for: float | None
    fenced: str  # why the agent made its server read-only; '' while it has not
    fence_ttl: float
    sent_at: str | None  # the agent host's clock
    # seconds from sent_at to this mpp's clock: two hosts' clocks, for display only
    age_by_agent_clock: float | None


class NodeDoc(_Open):
    name: str
    address: str
    type: str
    state: str
    status: str
    level: int
    requests: int
    last_request: str | None
    message: str
    reachable: bool | None
    lag: int | None
    gtid: str
    maintenance: MaintenanceDoc | None = None  # null: not in maintenance
    agent: str = ""  # what the node's agent reported, as the state keeps it; '' without one
    agent_report: AgentReportDoc | None = None  # null: no agent, or not read here
    site: str | None = None  # the node's site (docs/sites.md); null: not said
    promotion: str = "normal"  # prefer | normal | never: may mpp promote it by itself


class PoolDoc(_Open):
    name: str
    status: str
    logic: str
    topology: str
    cycle: int
    updated_at: str | None
    pinned: str | None
    nodes: list[NodeDoc]


class PoolsDoc(_Open):
    leader: str | None  # owner id of the `mpp run` that decides and acts
    pools: list[PoolDoc]


class CheckpointDoc(BaseModel):
    name: str
    kind: str  # internal, edge, external
    target: str
    status: str  # OK, OK WARN (failing, not counted yet), FAIL, UNKNOWN
    failures: int
    fail_after: int
    error: str
    checked_at: str | None
    ms: float | None


class ReachDoc(_Open):
    instance: str
    at: str | None
    age: float
    cut: str  # none, LAN, WAN, GLOBAL
    cut_off: bool
    reason: str
    warning: str
    checkpoints: list[CheckpointDoc]


class EventDoc(BaseModel):
    at: float
    pool: str
    node: str
    kind: str
    old: str
    new: str
    reason: str
    change: str | None = None  # failover | switchover | takeover: the line is part of one
    action: str | None = None  # on "action" lines: fence, promote, repoint, rejoin, ...


class RequestDoc(BaseModel):
    id: str
    kind: str
    to: str | None


class CommandDoc(BaseModel):
    pool: PoolDoc
    events: list[EventDoc]
    request: RequestDoc | None = None  # switchover/takeover: what the daemon will carry out


class PoolHealth(BaseModel):
    cycle: int | None
    seconds_since_cycle: float | None


class HealthDoc(BaseModel):
    status: str
    version: str
    role: str | None  # "leader": this mpp decides and acts; "follower": publishes the leader's
    leader: str | None
    pools: dict[str, PoolHealth]


class ErrorDoc(BaseModel):
    error: str


Responses = dict[int | str, dict[str, Any]]

TEXT = {"text/plain": {"schema": {"type": "string"}}}


def error_response(description: str) -> dict[str, Any]:
    """A JSON error response, spelt out: on the plain-text check routes FastAPI would
    otherwise document a `model` under text/plain."""
    return {
        "description": description,
        "content": {"application/json": {"schema": ErrorDoc.model_json_schema()}},
    }


NOT_FOUND: Responses = {404: error_response("no such pool or node")}
AUTH: Responses = {
    401: error_response("no token sent, or mutations disabled"),
    403: error_response("wrong token"),
}
CHECK: Responses = {
    200: {"description": "UP <reason>", "content": TEXT},
    503: {"description": "DOWN <reason>", "content": TEXT},
    **NOT_FOUND,
}
