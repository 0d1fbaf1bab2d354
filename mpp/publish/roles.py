"""Which node is UP for which role: the one answer every load balancer and monitor asks for.

Pure: a pool's remembered state and spec in, (up, reason) out. The HTTP checks, the HAProxy
agent port, `mpp check` and the tests all call these functions, so a node cannot be UP on
one surface and DOWN on another for the same state.

Roles:
- `rw`: the node that takes writes, as the pool's logic says (Logic.writer): for the
  failover logic only the ACTIVE node, never one being drained or not yet promoted.
- `ro`: a node for reads. UP for a STANDBY that is healthy and whose replication lag is
  known and within the limit; when no STANDBY qualifies, the ACTIVE node is UP instead, so
  an application's read-only address keeps working (MPP's fallback).
- `ok`: a healthy node (the two-site set-up where smart DNS picks the site).

`barred`: this instance's checkpoints say it is cut off (mpp.run.reach): `rw` is DOWN for
every node and for the pool, whatever the state says, so no load balancer of this site
sends writes anywhere. `ro` and `ok` are left as the state says.

"Healthy" is `req == 0`: no bad poll since the last good one. That is status OK, and also
the OK INFO shown for one cycle after a state change (a notice, not a problem). The OK INFO
of a first bad poll (req 1) is not healthy: a check should let go of a node on its first
failed poll, while the load balancer's own rise/fall counts smooth a single blip.
"""

from __future__ import annotations

import enum

from mpp.logic import Answer, logic_for
from mpp.logic.ladder import status_of
from mpp.model import NodeState, PoolSpec, PoolState, State


class Role(enum.StrEnum):
    RW = "rw"
    RO = "ro"
    OK = "ok"


def healthy(node: NodeState) -> bool:
    return node.req <= 0 and node.state in (State.ACTIVE, State.STANDBY)


def draining(state: PoolState | None, node: str) -> bool:
    """A node being switched away from: finish its sessions, send it no new ones."""
    return state is not None and node in state.draining


def _lag_limit(spec: PoolSpec, max_lag: float | None) -> float:
    return spec.max_lag if max_lag is None else max_lag


def _readable(spec: PoolSpec, node: NodeState, limit: float) -> Answer:
    """Can this STANDBY serve reads? The reason names the first thing that stops it."""
    if node.state is not State.STANDBY:
        return False, f"{node.name} is {node.state.value}"
    if node.req > 0:
        status = status_of(node.req, spec.fail_point, node.notice)
        return False, f"{node.name} status is {status.label} ({node.req} bad polls)"
    if node.lag is None:
        return False, f"{node.name} replication lag is unknown"
    if node.lag > limit:
        return False, f"{node.name} lag {node.lag}s > {limit:g}s"
    return True, f"{node.name} is STANDBY, status OK, lag {node.lag}s <= {limit:g}s"


def _known(state: PoolState | None, spec: PoolSpec, node: str) -> NodeState | str:
    if state is None:
        return f"no state yet: mpp has not polled pool {spec.name}"
    if not state.has(node):
        return f"{node} has no state yet in pool {spec.name}"
    return state.node(node)


def check_node(
    spec: PoolSpec,
    state: PoolState | None,
    node: str,
    role: Role,
    max_lag: float | None = None,
    barred: str = "",
) -> Answer:
    """Is `node` UP for `role`? `max_lag` (seconds) overrides the pool's for `ro`."""
    if barred and role is Role.RW:
        return False, f"no writes from this site: mpp is {barred}"
    found = _known(state, spec, node)
    if isinstance(found, str):
        return False, found
    assert state is not None
    n = found
    if role is Role.RW:
        return logic_for(spec.logic).writer(spec, state, n)
    if role is Role.OK:
        if healthy(n):
            return True, f"{n.name} status OK ({n.state.value})"
        if n.state not in (State.ACTIVE, State.STANDBY):
            return False, f"{n.name} is {n.state.value}"
        status = status_of(n.req, spec.fail_point, n.notice)
        return False, f"{n.name} status is {status.label} ({n.req} bad polls)"
    limit = _lag_limit(spec, max_lag)
    if n.state is State.STANDBY:
        return _readable(spec, n, limit)
    if n.state is State.ACTIVE:
        readers = [s.name for s in state.nodes if _readable(spec, s, limit)[0]]
        if readers:
            return False, f"{n.name} is ACTIVE; reads go to {', '.join(readers)}"
        return True, f"{n.name} is ACTIVE and no STANDBY can serve reads (fallback)"
    return False, f"{n.name} is {n.state.value}"


def check_pool(
    spec: PoolSpec,
    state: PoolState | None,
    role: Role,
    max_lag: float | None = None,
    barred: str = "",
) -> Answer:
    """Pool level: `rw` asks whether this site has a writable ACTIVE node (smart DNS, F5
    wide IPs); `ro`/`ok` whether any node is UP for that role."""
    if barred and role is Role.RW:
        return False, f"pool {spec.name}: no writes from this site: mpp is {barred}"
    if state is None:
        return False, f"no state yet: mpp has not polled pool {spec.name}"
    if role is Role.RW:
        return logic_for(spec.logic).writers(spec, state)
    up = [n.name for n in state.nodes if check_node(spec, state, n.name, role, max_lag)[0]]
    if up:
        return True, f"pool {spec.name}: {role.value} on {', '.join(up)}"
    return False, f"pool {spec.name}: no node is UP for {role.value}"
