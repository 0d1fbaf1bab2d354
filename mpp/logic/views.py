"""The quorum of views (pure): whether the other mpp instances overrule the leader's own
probe of a node.

Rules of this module:
- Only `quorum = "majority"` pools use it; with "leader", or with no other instance's
  fresh view, the leader's probe decides alone, exactly as before.
- A node the leader's probe could not get an answer from (unreachable, or reachable but
  failing its queries) is counted as failing only when a strict majority of the voters
  agree, the voters being the leader itself and every fresh view (no older than two of its
  writer's intervals). Stale views do not vote on either side.
- The other way round never: a node the leader's probe saw answering is not failed because
  other sites cannot see it (their link is broken, the node is not); the issue's rule is
  "failed only when its own observation and a majority of fresh views agree".
- Overruling only keeps the node off the failure ladder; the leader still cannot act on a
  node it cannot reach (no candidate, no action needs it), and says so in the message.
"""

from __future__ import annotations

from mpp.model import Observation, PeerSight, PoolSpec, Quorum


def fresh(obs: Observation) -> tuple[PeerSight, ...]:
    return tuple(p for p in obs.peers if p.fresh)


def overruled(spec: PoolSpec, obs: Observation) -> tuple[PeerSight, ...] | None:
    """The fresh views that saw `obs.node` answering when a majority of the voters did,
    although the leader's own probe failed; None when the leader's verdict stands."""
    if spec.quorum.mode is not Quorum.MAJORITY:
        return None
    if obs.reachable and not obs.error:
        return None  # the leader saw it answering: nothing to overrule
    voters = fresh(obs)
    down = 1 + sum(1 for p in voters if not p.answered)
    if 2 * down > 1 + len(voters):
        return None  # a majority (the leader's probe included) agrees it is failing
    return tuple(p for p in voters if p.answered)


def who(sights: tuple[PeerSight, ...]) -> str:
    """'dc2 (mpp-b), dc3 (mpp-c)': the instances, by site where they have one."""
    return ", ".join(p.site or p.owner for p in sights)


def summary(obs: Observation) -> str:
    """How the other instances see the node, for status lines: 'dc2 ok, dc3 down (stale)'."""
    parts = []
    for p in sorted(obs.peers, key=lambda p: (p.site, p.owner)):
        seen = "ok" if p.answered else "down"
        parts.append(f"{p.site or p.owner} {seen}" + ("" if p.fresh else " (stale)"))
    return ", ".join(parts)
