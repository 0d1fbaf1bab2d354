"""Strict semi-sync and mpp's heartbeat row: the pure rules (no I/O, `now` passed in).

Strict semi-sync (`semi_sync = "strict"`): the primary's server never turns asynchronous by
itself, so a write it acknowledges is on a replica too, and a primary cut off from its
replicas acknowledges nothing. The price is availability: with every semi-sync replica
down, its commits wait. mpp lets go of strict only when the pool says so
(`semi_sync_fallback`), only while it sees the primary healthy and every semi-sync replica
down, and only after that has lasted `semi_sync_fallback` seconds; the relaxing is an
event and the pool's alert (from then on a failover may lose acknowledged writes). A
semi-sync replica streaming again ends it: strict is restored (converge re-applies it).

The heartbeat row: mpp writes its own clock into a row through the ACTIVE primary every
`heartbeat` seconds, and each replica's probe reads its replicated copy. A hung primary
(SIGSTOP, a kernel stall) keeps its replicas' TCP connections open, so their IO threads say
"Yes" until slave_net_timeout (60 s by default); the row stops moving at once. A primary
mpp cannot reach is confirmed down through the replicas when no replica has received a
heartbeat for two periods. A replica whose row is fresh, or that cannot say (no row read),
still counts as receiving: the rule never confirms a primary down while any replica may
still hear from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from mpp.logic.failover import converge
from mpp.model import Action, NodeState, Observation, PoolSpec, PoolState, State

# the pool alert's first words when mpp holds or relaxes strict semi-sync: cleared only
# by this module (a restored replica), never confused with another rule's alert
ALERT = "strict semi-sync: "


def heartbeat_fresh(spec: PoolSpec, obs: Observation) -> bool:
    """This replica still hears from its source, as far as the heartbeat row tells: the row
    is younger than two heartbeat periods at the probe, or was not read (no verdict)."""
    period = spec.replication.heartbeat
    if period <= 0 or obs.heartbeat is None:
        return True
    return obs.at - obs.heartbeat <= 2 * period


def heard(observations: Mapping[str, Observation], names: list[str]) -> str:
    """What the heartbeat rows of `names` say, for the held primary's message."""
    parts = []
    for n in names:
        age = heartbeat_age(observations[n])
        parts.append(f"{n} no row read" if age is None else f"{n} {age:.1f}s ago")
    return f" (heartbeat: {', '.join(parts)})"


def heartbeat_age(obs: Observation) -> float | None:
    return None if obs.heartbeat is None else max(0.0, obs.at - obs.heartbeat)


def semi_sync_streaming(
    spec: PoolSpec, active: str, observations: Mapping[str, Observation]
) -> list[str]:
    """Replicas mpp sees streaming from `active` with their semi-sync side on (or unknown):
    the ones that can acknowledge its commits."""
    return [
        n
        for n, o in converge.replicas_of(spec, active, observations)
        if o.replication is not None
        and o.replication.io_running == "Yes"
        and o.semi_sync_replica is not False
    ]


def alone(
    spec: PoolSpec,
    nodes: Iterable[NodeState],
    active: str,
    observations: Mapping[str, Observation],
) -> bool:
    """The ACTIVE primary, seen healthy, has no semi-sync replica that could acknowledge a
    commit: none streams from it as mpp sees them, and either the primary itself counts no
    semi-sync client or every other node is FAILED (confirmed down by the ladder)."""
    obs = observations.get(active)
    if obs is None or not converge.is_primary(obs):
        return False
    if semi_sync_streaming(spec, active, observations):
        return False
    if obs.semi_sync_clients == 0:
        return True
    others = [n for n in nodes if n.name != active]
    return bool(others) and all(n.state.failed for n in others)


def relaxed_on(state: PoolState, active: str | None) -> bool:
    """mpp relaxed semi-sync on the node that is ACTIVE now (a new primary starts strict)."""
    return active is not None and state.semi_sync_relaxed == active


def active_name(state: PoolState) -> str | None:
    return next((n.name for n in state.nodes if n.state is State.ACTIVE), None)


def waiting_text(active: str, fallback: float | None) -> str:
    then = (
        "never relaxed (semi_sync_fallback = never)"
        if fallback is None
        else f"relaxed after {fallback:g}s (semi_sync_fallback)"
    )
    return f"{ALERT}no replica acknowledges {active}'s commits: writes wait; {then}"


def relaxed_text(active: str, seconds: float) -> str:
    return (
        f"{ALERT}relaxed on {active} after {seconds:g}s with no replica: writes are "
        "acknowledged without a replica's copy; a failover now may lose them (RPO risk)"
    )


def heartbeat_target(
    spec: PoolSpec,
    state: PoolState,
    observations: Mapping[str, Observation],
    actions: Sequence[Action] = (),
) -> str | None:
    """The node mpp's heartbeat row is written through, or None: the ACTIVE node once a
    poll saw it as a writable primary (not while it is being promoted or switched away
    from), and, with semi-sync on, only while it has a semi-sync replica connected (a
    commit would wait for an acknowledgement otherwise: under strict, for ever). Not in a
    cycle whose decision changes the topology (`actions`): what this poll saw is about to
    change (a Promote turns semi-sync on before its replicas are semi-sync; a heartbeat
    commit, or the table's DDL, would then wait for an acknowledgement, and a DDL waiting
    so was seen to hold up the primary's probes too)."""
    if spec.replication.heartbeat <= 0 or state.switching is not None or actions:
        return None
    active = active_name(state)
    if active is None or state.promoting == active or active in state.draining:
        return None
    obs = observations.get(active)
    if obs is None or not converge.is_primary(obs):
        return None
    if obs.semi_sync_primary and obs.semi_sync_clients == 0:
        return None
    return active
