"""Turning one cycle's raw observations into a verdict per node (pure, no I/O).

The probe reports facts (threads, errors, lag); whether a fact is a problem depends on the
node's role and on the other nodes, which only the logic knows. Kept apart from the state
machine so both can be read, and tested, on their own.

MPP's flaw fixed here: a replica whose IO thread cannot reach a source that is itself down
is not counted as unhealthy. Otherwise the node that should take over after a primary dies
fails at the same moment (its IO thread is "Connecting" to the dead primary) and the pool
fails over to the wrong node, or to none.
"""

from __future__ import annotations

from collections.abc import Mapping

from mpp.logic import agent, views
from mpp.model import Observation, PoolSpec, PoolState, Replication, State, Verdict

Observations = Mapping[str, Observation]  # this cycle's, by node name


def classify(
    spec: PoolSpec, prev: PoolState, name: str, observations: Observations
) -> tuple[Verdict, str]:
    """The verdict for node `name` this cycle and the message that explains it: what mpp's
    probe saw, then what the node's agent adds (mpp/logic/agent.py)."""
    verdict, message = _probed(spec, prev, name, observations)
    verdict, message = _with_views(spec, observations[name], verdict, message)
    return _with_agent(spec, observations[name], verdict, message)


def _with_views(
    spec: PoolSpec, obs: Observation, verdict: Verdict, message: str
) -> tuple[Verdict, str]:
    """The quorum of views (mpp/logic/views.py): a node the leader cannot get an answer
    from, but which a majority of the instances' fresh views sees answering, is not counted
    against it: one site's broken link does not fail it for every site."""
    seen_by = views.overruled(spec, obs)
    if seen_by is None:
        return verdict, message
    return Verdict.GOOD, (
        f"not answering this instance ({message}) but answering {views.who(seen_by)}: "
        "not counted against it (quorum of views)"
    )


def _with_agent(
    spec: PoolSpec, obs: Observation, verdict: Verdict, message: str
) -> tuple[Verdict, str]:
    """An agent's fresh facts: mysqld down for good fails the node (OFFLINE when mpp cannot
    reach it either, else SERVICE: whatever answers is not the mysqld the agent ran); a
    write that cannot commit past write_stall_grace is a SERVICE failure even while pings
    answer; in a ring, where every node must take writes, a server its agent fenced cannot
    serve. A restart under way is only said: the ladder gives it the time it needs."""
    view = obs.agent
    if view is None:
        return verdict, message
    said = view.report.summary
    if agent.gave_up(view):
        down = Verdict.OFFLINE if not obs.reachable else Verdict.SERVICE
        return down, f"agent: {said}; {message}"
    if agent.restarting(view):
        message = f"{message}; agent: {said}"
    seconds = agent.stalled(view)
    if seconds is not None:
        text = agent.stall_text(view, seconds)
        grace = spec.agents.write_stall_grace
        if seconds < grace:
            message = f"{message}; warning: {text} (grace {grace:g} s)"
        elif verdict in (Verdict.GOOD, Verdict.REPLICATION):
            return Verdict.SERVICE, f"cannot commit: {text}; {message}"
        else:
            message = f"{message}; cannot commit: {text}"
    if (
        not spec.primary_replica
        and agent.fresh(view)
        and view.report.fenced
        and verdict is not Verdict.OFFLINE
    ):
        return Verdict.SERVICE, f"read-only: fenced by its agent ({view.report.fenced})"
    return verdict, message


def _probed(
    spec: PoolSpec, prev: PoolState, name: str, observations: Observations
) -> tuple[Verdict, str]:
    obs = observations[name]
    if not obs.reachable:
        return Verdict.OFFLINE, obs.error or "cannot connect"
    if obs.error:
        return Verdict.SERVICE, obs.error
    if not _must_replicate(spec, prev, name):
        return Verdict.GOOD, _serving_message(obs)
    if obs.replication is None:
        return Verdict.REPLICATION, "not replicating: SHOW SLAVE STATUS returned no row"
    return _replication_verdict(spec, prev, obs.replication, observations)


def _must_replicate(spec: PoolSpec, prev: PoolState, name: str) -> bool:
    """Every node of MPP's ring replicates. In primary-replica the ACTIVE node does not, nor
    does a node not yet placed (UNKNOWN): it may be the running primary mpp is meeting."""
    if not spec.primary_replica:
        return True
    state = prev.node(name).state if prev.has(name) else State.UNKNOWN
    return state not in (State.ACTIVE, State.UNKNOWN)


def _serving_message(obs: Observation) -> str:
    mode = "read-only" if obs.read_only else "writable"
    return f"serving, {mode}"


def _replication_verdict(
    spec: PoolSpec, prev: PoolState, rep: Replication, observations: Observations
) -> tuple[Verdict, str]:
    source = _source_name(spec, rep)
    label = source or rep.source_address
    if not rep.sql_running:
        detail = f": {rep.last_sql_errno} {rep.last_sql_error}" if rep.last_sql_errno else ""
        return Verdict.REPLICATION, f"replication SQL thread stopped{detail}"
    if rep.io_running != "Yes":
        if source is not None and _source_down(prev, source, observations):
            return Verdict.GOOD, f"replication source {source} is down; not counted against it"
        if spec.primary_replica and source is not None and _source_refuses(source, observations):
            return Verdict.GOOD, (
                f"replication source {source} refuses connections "
                f"({observations[source].error[:60]}); not counted against it"
            )
        detail = f": {rep.last_io_errno} {rep.last_io_error}" if rep.last_io_errno else ""
        return Verdict.REPLICATION, f"replication IO thread {rep.io_running} to {label}{detail}"
    if rep.seconds_behind is None:
        return Verdict.REPLICATION, f"replication lag from {label} unknown"
    # a delayed replica (MASTER_DELAY) is behind by design: only what it lags past its
    # delay counts against max_lag
    late = rep.seconds_behind - rep.sql_delay if rep.delayed else rep.seconds_behind
    delay = f" (MASTER_DELAY {rep.sql_delay}s by design)" if rep.delayed else ""
    if late > spec.max_lag:
        past = f", {late}s past its MASTER_DELAY {rep.sql_delay}s," if rep.delayed else ""
        return (
            Verdict.REPLICATION,
            f"replication lag {rep.seconds_behind}s{past} over max_lag {spec.max_lag:g}s",
        )
    if rep.relay_pending_bytes == 0:
        applied = "relay log applied"
    elif rep.relay_pending_bytes is None:
        applied = "relay log being applied"
    else:
        applied = f"{rep.relay_pending_bytes} bytes of relay log to apply"
    return (
        Verdict.GOOD,
        f"replicating from {label}, lag {rep.seconds_behind}s{delay}, {applied}",
    )


def _source_name(spec: PoolSpec, rep: Replication) -> str | None:
    return spec.name_at(rep.source_address)


def _source_refuses(source: str, observations: Mapping[str, Observation]) -> bool:
    """The source answers mpp only with an error (1040 too many connections, access
    denied): a replica that cannot connect to it either is not the one at fault, and it
    must stay a candidate should the source be failed over (PrimaryReplicaCycle.
    hold_refusing says when it may be)."""
    obs = observations.get(source)
    return obs is not None and obs.reachable and bool(obs.error)


def _source_down(prev: PoolState, source: str, observations: Mapping[str, Observation]) -> bool:
    obs = observations.get(source)
    if obs is not None and not obs.reachable:
        return True
    return prev.has(source) and prev.node(source).state is State.FAILED_OFFLINE
