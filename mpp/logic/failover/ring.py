"""The failover logic's rules for a self-repairing master-master ring (pure, no I/O).

With `ring_repair = true` a master-master pool is MPP's ring that mends itself. The ACTIVE
node is chosen exactly as in cycle.py; what is added is who replicates from whom:
- The ring's order is the configuration's: each member replicates from the member listed
  before it (the first from the last). Members are the nodes that are ACTIVE or STANDBY;
  a FAILED node is out of the ring, and an UNKNOWN one is not in it yet.
- Closing: a member whose source is not the member before it (the node in between failed)
  is repointed there with GTID, its read_only left as it was. Not while its new source
  still lacks transactions the member has (the new source receives them round the ring
  first: the repoint waits for that), and never when each lacks transactions the other
  has (they diverged): the pool alert says so and an operator decides.
- Re-inserting: a FAILED member that returns reachable and healthy is put back in its place
  when it holds no errant transactions (`auto_rejoin`): nothing in its own binlog that no
  member has. The members around it are then repointed to close the ring through it again.
  A returning member with errant transactions is quarantined: it stays FAILED, with the
  GTIDs in its message, until `mpp recover`.
- Two members at least: a ring of one has nobody to replicate from and is left alone.
"""

from __future__ import annotations

from dataclasses import replace

from mpp.logic import gtid
from mpp.logic.failover.converge import source_of
from mpp.logic.failover.cycle import Cycle
from mpp.model import Decision, EventKind, PoolState, Repoint, State, Verdict


class RingCycle(Cycle):
    def run(self) -> None:
        verdicts = self.health(self.obs)
        self.fail_standbys(verdicts)
        self.settle_failed(verdicts)
        self.choose_active(verdicts)
        self.standby_unknowns(verdicts)
        self.reinsert(verdicts)

    def members(self) -> list[str]:
        """The ring as it should be now, in the configuration's order."""
        return [
            n.name
            for n in self.spec.nodes
            if self.nodes[n.name].state in (State.ACTIVE, State.STANDBY)
        ]

    def reinsert(self, verdicts: dict[str, Verdict]) -> None:
        """A returning FAILED member: back in its place, or quarantined."""
        if not self.spec.replication.auto_rejoin:
            return
        members = self.members()
        held = gtid.union(
            *(gtid.parse(self.obs[m].gtid_executed) for m in members if m in self.obs)
        )
        seen = [m for m in members if m in self.obs and self.obs[m].reachable]
        if not seen:
            return  # what the ring holds is unknown this cycle: judge next time
        for name, node in list(self.nodes.items()):
            obs = self.obs.get(name)
            if node.state is not State.FAILED_ONLINE or obs is None or not obs.reachable:
                continue
            if verdicts.get(name) is not Verdict.GOOD:
                continue
            extra = gtid.beyond(gtid.parse(obs.gtid_binlog), held)
            if not extra.empty:
                self.say(
                    name,
                    f"errant transactions {extra} (on no ring member): quarantined out of "
                    f"the ring; inspect, then rebuild or `mpp recover {name}`",
                )
                continue
            self.move(name, State.STANDBY, "auto-rejoined: back in its place in the ring")

    def finish(self, prev: PoolState) -> Decision:
        decision = super().finish(prev)
        if self.kind is not EventKind.STATE:
            return decision
        actions, alert = self.close(decision.state)
        state = decision.state
        if alert != state.alert and (alert or state.alert.startswith("ring")):
            state = replace(state, alert=alert)
        return Decision(state, (*decision.actions, *actions), decision.events, decision.change)

    def close(self, state: PoolState) -> tuple[list[Repoint], str]:
        """Repoints that make every member replicate from the member before it."""
        members = [n.name for n in self.spec.nodes if state.node(n.name).state
                   in (State.ACTIVE, State.STANDBY)]  # fmt: skip
        if len(members) < 2:
            return [], ""
        repoints: list[Repoint] = []
        for i, name in enumerate(members):
            source = members[i - 1]
            obs, upstream = self.obs.get(name), self.obs.get(source)
            if obs is None or upstream is None or not obs.reachable or not upstream.reachable:
                continue
            if obs.error or upstream.error or source_of(self.spec, obs) == source:
                continue
            mine = gtid.parse(obs.gtid_executed)
            theirs = gtid.parse(upstream.gtid_executed)
            missing, ahead = gtid.beyond(theirs, mine), gtid.beyond(mine, theirs)
            if not missing.empty and not ahead.empty:
                return [], (
                    f"ring not closed: {name} and {source} lack each other's transactions "
                    f"({name} has {ahead}, {source} has {missing}); repair by hand"
                )
            if not ahead.empty:
                continue  # the source gets them round the ring first; repoint after
            repoints.append(Repoint(name, source=source, keep_writable=True))
        return repoints, ""
