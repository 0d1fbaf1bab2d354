"""Primary-replica topology decisions (pure): who may be promoted, and which actions make
the servers match the pool state.

Rules of this module:
- The pool state says who is ACTIVE; this module turns the difference between that and what
  the probes saw into actions: the ACTIVE node must be a writable primary, every STANDBY a
  read-only replica of it, any other writable node is fenced. Doing it by convergence, every
  cycle, is what makes a crash mid-failover harmless: a restarted mpp sees the half-done
  topology and finishes it towards the ACTIVE node already recorded; it never picks another.
- Candidates are ordered by how much they have received (GTID), then, at equal data, a
  node in the failed primary's site before a remote one, `promotion = "prefer"` before
  "normal", then priority. A candidate that lacks transactions another reachable node has
  is never chosen unless the operator forces it (mpp takeover --force). Nodes with
  `promotion = "never"` and delayed replicas (MASTER_DELAY) are not candidates at all
  (primary_replica.py filters them before ordering).
- The ACTIVE node's semi-sync settings are mpp's (semi_sync_timeout, AFTER_SYNC) whoever
  set them: a primary found running with its own is given mpp's (a SemiSync action).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mpp.logic import gtid
from mpp.model import (
    Action,
    Detach,
    Fence,
    NodeState,
    Observation,
    PoolSpec,
    PoolState,
    Promote,
    RelaxSemiSync,
    Repoint,
    SemiSync,
    SetReadOnly,
    State,
)


def received(obs: Observation | None) -> gtid.Gtids:
    """Everything a node has or will have once its relay log is applied."""
    if obs is None or not obs.reachable:
        return gtid.Gtids()
    io_pos = obs.replication.gtid_io_pos if obs.replication else ""
    return gtid.union(gtid.parse(obs.gtid_executed), gtid.parse(io_pos))


def source_of(spec: PoolSpec, obs: Observation | None) -> str | None:
    if obs is None or obs.replication is None:
        return None
    return spec.name_at(obs.replication.source_address)


def is_primary(obs: Observation | None) -> bool:
    """Writable and replicating from nobody: what a primary looks like from outside."""
    return obs is not None and obs.writable and obs.replication is None


def replicas_of(
    spec: PoolSpec, name: str, observations: Mapping[str, Observation]
) -> list[tuple[str, Observation]]:
    return [
        (n, o)
        for n, o in observations.items()
        if n != name and o.reachable and not o.error and source_of(spec, o) == name
    ]


def second_look(spec: PoolSpec, observations: Mapping[str, Observation]) -> list[str]:
    """Replicas to probe again before deciding: they reported streaming from a node whose
    own probe failed in the same round.

    All probes start together, but a hung node's probe fails only at its deadline, up to a
    poll interval later; by then its replicas may have lost it too (slave_net_timeout).
    Their fresh answer lets a confirmed-dead primary fail in this cycle instead of the next
    one, about a second sooner with the defaults; a primary they still stream from is, as
    before, not failed over.
    """
    failed = {n for n, o in observations.items() if not o.reachable or o.error}
    return sorted(
        n
        for n, o in observations.items()
        if n not in failed
        and o.replication is not None
        and o.replication.io_running == "Yes"
        and source_of(spec, o) in failed
    )


def order(
    spec: PoolSpec,
    names: Sequence[str],
    observations: Mapping[str, Observation],
    site: str = "",
) -> list[str]:
    """Best candidate first: a running primary, then the most received, then (at equal
    data) a node in `site` (the failed primary's; "": no preference), then a preferred
    node (`promotion = "prefer"`), then priority."""

    def rank(name: str) -> tuple[int, int, int, int, int]:
        obs = observations.get(name)
        ahead = sum(
            1
            for other in names
            if other != name
            and gtid.contains(received(obs), received(observations.get(other)))
            and not gtid.contains(received(observations.get(other)), received(obs))
        )
        node = spec.spec(name)
        remote = 1 if site and node.site != site else 0
        return (
            0 if is_primary(obs) else 1,
            -ahead,
            remote,
            node.promotion.rank,
            spec.priority(name),
        )

    return sorted(names, key=rank)


def missing(
    name: str, others: Sequence[str], observations: Mapping[str, Observation]
) -> tuple[str, gtid.Gtids] | None:
    """A reachable node holding transactions `name` lacks, and what they are."""
    mine = received(observations.get(name))
    for other in others:
        if other == name:
            continue
        extra = gtid.beyond(received(observations.get(other)), mine)
        if not extra.empty:
            return other, extra
    return None


def errant(
    state: PoolState, active: str, obs: Observation, observations: Mapping[str, Observation]
) -> gtid.Gtids:
    """Transactions a returning node has that the ACTIVE node's history lacks, counted from
    the promotion that left it out (a later failover moved promoted_at past its writes).
    The ACTIVE node's own promotion point is history it holds too (gtid.errant's `held`)."""
    own = gtid.parse(obs.gtid_binlog or obs.gtid_executed)
    head = received(observations.get(active))
    since = dict(state.rejoin_base).get(obs.node) or state.promoted_at
    base = gtid.parse(since) if since else head
    held = (gtid.parse(state.promoted_at),) if state.promoted_at else ()
    return gtid.errant(own, base, head, *held)


def plan(
    spec: PoolSpec,
    prev: PoolState,
    state: PoolState,
    observations: Mapping[str, Observation],
) -> list[Action]:
    """Actions that bring the servers to the pool state, in the order they must run."""
    actives = state.active
    if not actives or state.switching is not None:
        return []
    active = actives[0].name
    fences: list[Action] = []
    repoints: list[Action] = []
    just_failed_over = prev.has(active) and prev.node(active).state is not State.ACTIVE
    old = next((n.name for n in prev.nodes if n.state is State.ACTIVE), None)
    detaches: list[Action] = [
        Detach(name, timeout=spec.replication.catchup_timeout)
        for name, obs in observations.items()
        if just_failed_over
        and old is not None
        and old != name
        and source_of(spec, obs) == old
        and obs.reachable
        and not obs.error
        and state.has(name)
        and not state.node(name).state.failed
    ]
    promote = _promote(
        spec, state.node(active), observations.get(active), state.semi_sync_relaxed == active
    )
    old_primaries = {n for n in (old, *dict(state.rejoin_base)) if n is not None}
    for node in state.nodes:
        obs = observations.get(node.name)
        if node.name == active:
            continue
        was_active = prev.has(node.name) and prev.node(node.name).state is State.ACTIVE
        if node.state.failed:
            if promote and node.name in old_primaries and _refuses_with_admin_path(spec, obs):
                # it refuses mpp but may take writes: fenced through its admin path, and
                # the Promote after it runs only if that Fence succeeded (hold_refusing)
                fences.append(Fence(node.name))
                continue
            fences += _fence_failed(node, obs, was_active and just_failed_over)
            repoints += _rejoin(spec, state, node, active, obs, observations)
        else:
            fences += _standby_read_only(node, obs)
            repoints += _repoint_standby(spec, node, active, obs)
    return fences + detaches + promote + repoints


def _promote(
    spec: PoolSpec, node: NodeState, obs: Observation | None, relaxed: bool = False
) -> list[Action]:
    if obs is None or not obs.reachable or obs.error:
        return []
    needs = obs.replication is not None or obs.read_only is not False
    policy = spec.replication
    if relaxed and not needs:
        # strict semi-sync let go (semi_sync_fallback): off until a replica is back
        return [RelaxSemiSync(node.name)] if obs.semi_sync_primary else []
    semi = policy.semi_sync and obs.semi_sync_primary is False
    # strict: also a primary whose server would fall back by itself (a restored strict
    # after relaxing, or settings changed by hand)
    semi = semi or (policy.semi_sync_strict and obs.semi_sync_strict is False)
    if needs or semi:
        return [
            Promote(
                node.name,
                timeout=spec.replication.catchup_timeout,
                semi_sync=policy.semi_sync and not relaxed,
            )
        ]
    if spec.replication.semi_sync and semi_sync_differs(spec, obs):
        return [SemiSync(node.name)]
    return []


WAIT_POINT = "AFTER_SYNC"  # a commit waits for the ACK before the engine commits


def semi_sync_differs(spec: PoolSpec, obs: Observation) -> str:
    """How a semi-sync primary's settings differ from mpp's ("" when they do not, or when
    the probe could not read them): a primary mpp did not promote keeps whatever it was
    started with (MariaDB's 10 s and AFTER_COMMIT by default)."""
    if obs.semi_sync_primary is not True:
        return ""
    wanted = int(spec.replication.semi_sync_timeout * 1000)  # as the executor sets it
    seen = []
    # strict: the timeout is the server's maximum, checked as obs.semi_sync_strict (_promote)
    strict = spec.replication.semi_sync_strict
    if not strict and obs.semi_sync_timeout_ms is not None and obs.semi_sync_timeout_ms != wanted:
        seen.append(f"timeout {obs.semi_sync_timeout_ms} ms, not {wanted}")
    point = obs.semi_sync_wait_point.upper()
    if point and point != WAIT_POINT:
        seen.append(f"wait point {point}, not {WAIT_POINT}")
    return "; ".join(seen)


def _refuses_with_admin_path(spec: PoolSpec, obs: Observation | None) -> bool:
    """Answers but refuses mpp (its read_only unknown), and has an admin_address."""
    return (
        obs is not None
        and obs.reachable
        and bool(obs.error)
        and obs.read_only is None
        and spec.spec(obs.node).admin_path
    )


def _fence_failed(node: NodeState, obs: Observation | None, just_demoted: bool) -> list[Action]:
    reachable = obs is not None and obs.reachable
    if reachable and obs is not None and obs.read_only is False:
        return [Fence(node.name)]
    if just_demoted and (not reachable or (obs is not None and obs.read_only is None)):
        # It may be hung rather than dead, or answer only errors (its read_only unknown):
        # try, in the background, so that it is fenced the moment it answers again; the
        # promotion does not wait for this (every replica confirmed it lost this node).
        return [Fence(node.name, best_effort=True)]
    return []


def _standby_read_only(node: NodeState, obs: Observation | None) -> list[Action]:
    if obs is not None and obs.reachable and not obs.error and obs.read_only is False:
        return [SetReadOnly(node.name)]
    return []


def _repoint_standby(
    spec: PoolSpec, node: NodeState, active: str, obs: Observation | None
) -> list[Action]:
    if obs is None or not obs.reachable or obs.error:
        return []
    wrong_source = source_of(spec, obs) != active
    semi = spec.replication.semi_sync and obs.semi_sync_replica is False
    if wrong_source or semi or stopped_cleanly(obs):
        return [Repoint(node.name, source=active, semi_sync=spec.replication.semi_sync)]
    return []


def stopped_cleanly(obs: Observation) -> bool:
    """Replication threads stopped without an error: a repoint cut short (mpp killed
    between its CHANGE MASTER and START SLAVE) or a STOP by hand. Converging starts them
    again; a thread stopped by an error is the operator's to look at, never restarted.

    Both threads stopped with no SQL error is a STOP, whatever the IO error says: an IO
    error stops the IO thread alone, and MariaDB keeps the last one (2003 from the dead old
    primary) through STOP SLAVE and CHANGE MASTER, so a repoint cut short before its START
    shows it (seen in the fault matrix's mpp-killed-mid-failover row; reproduced on 10.11)."""
    rep = obs.replication
    if rep is None or rep.last_sql_errno:
        return False
    if rep.io_running == "No" and not rep.sql_running:
        return True
    if rep.last_io_errno:
        return False
    return rep.io_running == "No" or not rep.sql_running


def _rejoin(
    spec: PoolSpec,
    state: PoolState,
    node: NodeState,
    active: str,
    obs: Observation | None,
    observations: Mapping[str, Observation],
) -> list[Action]:
    if not spec.replication.auto_rejoin or obs is None or not obs.reachable or obs.error:
        return []
    seen = observations.get(active)
    if seen is None or not seen.reachable:
        return []  # its GTIDs unknown: no errant check, so no rejoin this cycle
    if obs.read_only is not True:
        return []  # fence first (a writable node is fenced above)
    if source_of(spec, obs) == active and not stopped_cleanly(obs):
        return []  # already rejoined (or stopped by an error: the operator's)
    if not errant(state, active, obs, observations).empty:
        return []  # quarantined: the logic reports it, the operator decides
    return [Repoint(node.name, source=active, rejoin=True, semi_sync=spec.replication.semi_sync)]
