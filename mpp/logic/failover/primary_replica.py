"""The failover logic's rules for primary-replica pools (pure, no I/O).

MPP's ladder and states stay as in cycle.py; what changes when the ACTIVE node is the one
writable primary and mpp rewires replication itself:
- Detection asks the replicas (as orchestrator does): a primary that only mpp cannot reach
  while replicas still stream from it is not failed over; one that every replica lost as
  well is confirmed dead and fails at once instead of climbing the whole ladder.
- The successor is the candidate that received the most (GTID), then, at equal data, one
  in the failed primary's site, a `promotion = "prefer"` one, then priority; a candidate
  lacking transactions another reachable node has is refused (operator: takeover --force).
  Nodes with `promotion = "never"` and delayed replicas (MASTER_DELAY) are never chosen by
  mpp itself; with `cross_site = "manual"` a failover that would have to leave the
  primary's site waits, with an alert, for the operator's `mpp takeover` (docs/sites.md).
- No automatic failback: handing ACTIVE back to a higher-priority node is a switchover,
  which only the operator starts. auto_failover = false and the failover_block
  (anti-flapping) leave a failing primary in place with an alert for the operator.
- Switchovers and takeovers are operator requests carried out here as explicit plans; the
  rest of the topology converges every cycle (mpp.logic.failover.converge.plan).
- A FAILED old primary that returns is fenced, then rejoined automatically when it holds no
  errant transactions (auto_rejoin), else quarantined with the errant GTIDs in its message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from mpp.logic.failover import converge, semisync
from mpp.logic.failover.cycle import Cycle
from mpp.logic.failover.fencing import HELD
from mpp.model import (
    Action,
    CatchUp,
    Change,
    ChangeKind,
    CrossSite,
    Decision,
    EventKind,
    Fence,
    NodeState,
    NodeType,
    Observation,
    Outcome,
    PoolState,
    Promote,
    Promotion,
    Repoint,
    Request,
    RequestKind,
    State,
    Unfence,
    Verdict,
)


class PrimaryReplicaCycle(Cycle):
    def run(self) -> None:
        self.end_expired_maintenance()
        verdicts = self.health(self.obs)
        self.confirm_active(verdicts)
        self.fail_standbys(verdicts)
        self.settle_failed(verdicts)
        if self.pool.switching is not None:
            self.resolve_interrupted_switchover()
        if self.pool.request is not None:
            self.handle_request(verdicts)
        self.choose_active(verdicts)
        self.standby_unknowns(verdicts)
        self.rejoin_or_quarantine(verdicts)
        if self.spec.replication.semi_sync_strict:
            self.strict_semi_sync(verdicts)
        self.settle_promotion()
        self.forget_returned()
        self.settle_fencing()

    def hold_refusing(self, old: str, new: str) -> bool:
        """A primary that answers but refuses mpp (1040 too many connections, access
        denied, a failing query) is still a running server that may take writes from the
        clients it already has, and mpp's fence would be refused like its probe. So it is
        failed over only when something can still fence it: its admin path (admin_address:
        MariaDB extra_port, MySQL admin_address), which converge.plan fences first, the
        Promote running only if that Fence succeeded; or its node agent (wait_for_fence).
        Otherwise the failover is held, with the alert, until the server lets mpp in
        again, the operator forces a takeover, or it stops answering altogether."""
        obs = self.obs.get(old)
        if obs is None or not obs.reachable or not obs.error or obs.read_only is True:
            return False
        if self.spec.spec(old).admin_path or obs.agent is not None:
            return False
        self.held = True
        self.alert(
            old,
            f"{HELD}{old} answers but refuses mpp ({obs.error[:60]}): it may still take "
            "writes from its clients and mpp cannot fence it; give it an admin_address "
            "(MariaDB extra_port, MySQL admin_address) or a node agent, or force "
            f"`mpp takeover {self.spec.name} {new} --force`",
        )
        return True

    def fences_itself(self, obs: Observation) -> bool:
        """Reachable and writable: converge.plan fences it first, and that Fence must
        succeed before the successor's Promote runs."""
        return obs.reachable and obs.read_only is False

    def forget_returned(self) -> None:
        """An old primary that is no longer FAILED (rejoined, recovered) needs no base."""
        kept = tuple(
            (n, b)
            for n, b in self.pool.rejoin_base
            if n in self.nodes and self.nodes[n].state.failed
        )
        if kept != self.pool.rejoin_base:
            self.set_pool(rejoin_base=kept)

    def settle_promotion(self) -> None:
        """The new ACTIVE node is writable as soon as a poll sees it as a primary (or it
        is no longer ACTIVE): clients may be sent to it from then on.

        The other way round too: an ACTIVE node that a poll sees read-only or replicating
        (restarted with read_only = ON, as production servers start, or set read-only by
        hand) takes no writes, whatever its state says. It is promoted again this cycle
        (converge), and rw waits for that, as after a failover: a load balancer told "UP"
        would send writes that the server refuses."""
        name = self.pool.promoting
        if name is None:
            if self.pool.switching is not None:
                return  # the switchover's plan owns the roles until it ends
            for node in self.nodes.values():
                obs = self.obs.get(node.name)
                if (
                    node.state is State.ACTIVE
                    and obs is not None
                    and obs.reachable
                    and not obs.error
                    and not converge.is_primary(obs)
                ):
                    self.set_pool(promoting=node.name)
            return
        if self.nodes[name].state is not State.ACTIVE or converge.is_primary(self.obs.get(name)):
            self.set_pool(promoting=None)

    def promoted(self, name: str) -> None:
        """The executor promoted `name`: writable now."""
        if self.pool.promoting == name:
            self.set_pool(promoting=None)

    def outcomes_done(self, prev: PoolState, outcomes: Sequence[Outcome]) -> None:
        """A successful Promote makes its node writable; a switchover in flight is
        finished or rolled back by what its plan came to."""
        for o in outcomes:
            if isinstance(o.action, Promote) and o.ok:
                self.promoted(o.action.node)
        if prev.switching is not None:
            self.finish_switchover(outcomes)

    # -- detection -------------------------------------------------------------------------

    def confirm_active(self, verdicts: Mapping[str, Verdict]) -> None:
        """Ask the replicas before failing the ACTIVE node over.

        An ACTIVE node that mpp cannot reach (OFFLINE) or that answers mpp only with errors
        (SERVICE: "Too many connections", a failing query) is alive as long as a replica
        still streams from it: with confirm_with_replicas it is not failed over then (its
        clients may still be writing to it, and mpp could not fence it), only held one step
        below the fail point with the reason. One that every replica lost as well is
        confirmed dead when it is OFFLINE (fast_fail: at once, not after the whole ladder);
        a SERVICE one climbs the ladder. Without confirm_with_replicas the ladder alone
        decides, and fast_fail still needs every replica to have lost it.
        """
        for name, node in self.nodes.items():
            verdict = verdicts.get(name)
            if node.state is not State.ACTIVE or verdict not in (Verdict.OFFLINE, Verdict.SERVICE):
                continue
            if name in self.confirmed:
                # its agent says mysqld is down for good, or that it cannot commit: what
                # the replicas still receive does not make it a primary that serves
                continue
            replicas = converge.replicas_of(self.spec, name, self.obs)
            connected = [
                n for n, o in replicas if o.replication and o.replication.io_running == "Yes"
            ]
            limit = self.spec.fail_point
            policy = self.spec.replication
            streaming = connected
            if verdict is Verdict.OFFLINE and policy.heartbeat > 0:
                # a hung primary keeps its replicas connected until slave_net_timeout; mpp's
                # heartbeat row stops arriving at once (mpp.logic.failover.semisync)
                streaming = [
                    n for n in connected if semisync.heartbeat_fresh(self.spec, self.obs[n])
                ]
            if connected and not streaming and policy.fast_fail and node.req < limit:
                ages = [semisync.heartbeat_age(self.obs[n]) or 0.0 for n in connected]
                self.nodes[name] = replace(
                    node,
                    req=limit,
                    message=f"confirmed hung: {node.message}; no replica received mpp's "
                    f"heartbeat for {min(ages):.1f}s ({', '.join(connected)} still connected)",
                )
            elif streaming and policy.confirm_with_replicas:
                beats = policy.heartbeat > 0 and verdict is Verdict.OFFLINE
                heard = semisync.heard(self.obs, streaming) if beats else ""
                self.nodes[name] = replace(
                    node,
                    req=min(node.req, limit - 1),
                    message=f"{node.message}; not failing over: {', '.join(streaming)} "
                    f"still replicate from it{heard}",
                )
            elif (
                verdict is Verdict.OFFLINE
                and replicas
                and not streaming
                and policy.fast_fail
                and node.req < limit
            ):
                self.nodes[name] = replace(
                    node,
                    req=limit,
                    message=f"confirmed dead: {node.message}; every replica lost it too",
                )

    # -- strict semi-sync ------------------------------------------------------------------

    def strict_semi_sync(self, verdicts: Mapping[str, Verdict]) -> None:
        """Hold strict semi-sync, or relax it as the pool allows (semi_sync_fallback), by the
        rules of mpp.logic.failover.semisync; converge carries it out on the server."""
        active = next((n.name for n in self.nodes.values() if n.state is State.ACTIVE), None)
        if self.pool.semi_sync_relaxed is not None and self.pool.semi_sync_relaxed != active:
            # relaxed on a node that no longer takes the writes: its successor starts strict
            self.set_pool(semi_sync_relaxed=None, semi_sync_alone_since=None)
        if active is None or verdicts.get(active) is not Verdict.GOOD:
            return  # healthy primaries only: the clock neither starts nor ends
        if self.pool.switching is not None or self.pool.promoting == active:
            return
        relaxed = semisync.relaxed_on(self.pool, active)
        fallback = self.spec.replication.semi_sync_fallback
        if semisync.alone(self.spec, self.nodes.values(), active, self.obs):
            since = self.pool.semi_sync_alone_since
            if since is None:
                since = self.now
                self.set_pool(semi_sync_alone_since=since)
            if relaxed:
                self.alert(active, semisync.relaxed_text(active, fallback or 0.0))
            elif fallback is not None and self.now - since >= fallback:
                text = semisync.relaxed_text(active, fallback)
                self.set_pool(semi_sync_relaxed=active)
                self.pool_event("strict", "relaxed", text, active)
                self.alert(active, text)
            else:
                self.alert(active, semisync.waiting_text(active, fallback))
            return
        if self.pool.semi_sync_alone_since is not None:
            self.set_pool(semi_sync_alone_since=None)
        back = semisync.semi_sync_streaming(self.spec, active, self.obs)
        if relaxed:
            self.set_pool(semi_sync_relaxed=None)
            why = f"strict semi-sync restored on {active}: {', '.join(back)} acknowledge again"
            self.pool_event("relaxed", "strict", why, active)
        if self.pool.alert.startswith(semisync.ALERT):
            self.pool_event(self.pool.alert, "-", f"{', '.join(back)} acknowledge again", active)
            self.set_pool(alert="")

    # -- choosing the ACTIVE node ----------------------------------------------------------

    def candidates(
        self, verdicts: Mapping[str, Verdict], automatic: bool = True
    ) -> list[NodeState]:
        """Healthy nodes that may take ACTIVE, best first. `automatic`: mpp's own choice,
        which leaves out what `unpromotable` names (an operator's switchover may name
        them)."""
        names = [
            n.name
            for n in self.nodes.values()
            if n.state in (State.STANDBY, State.UNKNOWN)
            and verdicts.get(n.name) is Verdict.GOOD
            and not self.resting(n.name)
            and not (automatic and self.unpromotable(n.name))
            and self.answers(n.name)
        ]
        ordered = converge.order(self.spec, names, self.obs, self.home_site())
        return [self.nodes[n] for n in ordered]

    def unpromotable(self, name: str) -> str:
        """Why mpp must not promote `name` by itself ("" when it may). A node already
        running as the primary is recognised, not promoted: it is never left out (electing
        another would fence the server its clients write to)."""
        obs = self.obs.get(name)
        if converge.is_primary(obs):
            return ""
        if self.spec.spec(name).promotion is Promotion.NEVER:
            return 'promotion = "never"'
        return self.delay(name)

    def delay(self, name: str) -> str:
        """A delayed replica applies what it receives only after MASTER_DELAY: promoted,
        it would first have to apply that much, or lose it."""
        obs = self.obs.get(name)
        rep = obs.replication if obs is not None else None
        if rep is not None and rep.delayed:
            return f"a delayed replica (MASTER_DELAY {rep.sql_delay}s)"
        return ""

    def say_unpromotable(self, failing: str, verdicts: Mapping[str, Verdict]) -> None:
        """A failing primary kept because every healthy standby is one mpp may not promote
        by itself (`promotion = "never"`, delayed): the operator's to decide."""
        held = [
            f"{n.name} ({why})"
            for n in self.candidates(verdicts, automatic=False)
            if (why := self.unpromotable(n.name))
        ]
        if held:
            self.alert(
                failing,
                f"no candidate mpp may promote by itself: {', '.join(held)}; "
                f"`mpp takeover {self.spec.name} --to NODE` if one should take over",
            )

    def home_site(self) -> str:
        """The failed primary's site: the ACTIVE node's, else the configured primary's
        ("" when it has none: no site preference)."""
        names = {n.name for n in self.spec.nodes}
        active = [n.name for n in self.base.nodes if n.state is State.ACTIVE and n.name in names]
        primary = [n.name for n in self.spec.nodes if n.type is NodeType.PRIMARY]
        home = (active or primary or [""])[0]
        return self.spec.spec(home).site if home else ""

    def within_site(self, candidates: list[NodeState], failing: str | None) -> list[NodeState]:
        """With cross_site = "manual", only candidates in the failed primary's site; none
        there while others are elsewhere: an alert, and the operator's takeover decides
        (a whole site lost looks, from the other side, like a cut link)."""
        if self.spec.replication.cross_site is not CrossSite.MANUAL or not candidates:
            return candidates
        if converge.is_primary(self.obs.get(candidates[0].name)):
            return candidates  # the running primary, recognised: nothing is moved
        home = self.home_site()
        local = [c for c in candidates if self.spec.spec(c.name).site == home]
        if not local:
            remote = ", ".join(f"{c.name} ({self.spec.spec(c.name).site})" for c in candidates)
            self.alert(
                failing or candidates[0].name,
                f"no eligible node left in site {home} and cross_site = manual: not "
                f"promoting {remote} by itself; `mpp takeover {self.spec.name} --to NODE` "
                "moves the writes to another site",
            )
        return local

    def answers(self, name: str) -> bool:
        """The leader's own probe got an answer: a node that other instances see healthy
        (the quorum of views) but this one cannot reach cannot be promoted from here."""
        obs = self.obs.get(name)
        return obs is not None and obs.reachable and not obs.error

    def contenders(self, exclude: str | None) -> list[str]:
        """Reachable, non-failed nodes whose data a successor must not lack."""
        return [
            n.name
            for n in self.nodes.values()
            if n.name != exclude and not n.state.failed and n.reachable
        ]

    def choose_active(self, verdicts: Mapping[str, Verdict]) -> None:
        actives = [n for n in self.by_priority() if n.state is State.ACTIVE]
        for extra in actives[1:]:
            self.move(extra.name, State.STANDBY, f"two ACTIVE nodes found; {actives[0].name} kept")
        current = actives[0] if actives else None
        candidates = self.candidates(verdicts)
        if current is None:
            if self.hold_for_resting_primary():
                return
            candidates = self.within_site(candidates, None)
            if candidates and self.safe(candidates[0].name, None):
                first = self.base.cycle == 0
                reason = (
                    "Elected ACTIVE: the running primary, else the most advanced healthy node."
                    if first
                    else "FAILOVER: Taking over ACTIVE state (the pool had no ACTIVE node)."
                )
                self.elect(candidates[0].name, reason, None if first else ChangeKind.FAILOVER)
                if not first:
                    self.note_failover("", candidates[0].name)
            return
        if not self.failing(current.name) or self.hold_for_maintenance(current):
            return
        if not candidates:
            self.fail_active(current, candidates, verdicts)  # keeps it, says why
            self.say_unpromotable(current.name, verdicts)
            return
        blocked = self.blocked_reason()
        if blocked:
            self.alert(current.name, blocked)
            return
        candidates = self.within_site(candidates, current.name)
        if not candidates:
            return
        if not self.safe(candidates[0].name, current.name):
            return
        if self.fail_active(current, candidates, verdicts):
            self.note_failover(current.name, candidates[0].name)

    def hold_for_resting_primary(self) -> bool:
        """No election while a node in maintenance runs as a primary: promoting another
        would leave two writable servers, and mpp does not touch the one in maintenance."""
        for name in self.nodes:
            if self.resting(name) and converge.is_primary(self.obs.get(name)):
                self.held = True
                self.alert(name, f"{HELD}{name} is in maintenance and writable: none elected")
                return True
        return False

    def blocked_reason(self) -> str:
        if not self.spec.replication.auto_failover:
            return (
                "automatic failover is off (auto_failover = false): "
                f"run `mpp takeover {self.spec.name} --to NODE`"
            )
        last = self.pool.last_failover_at
        if (
            last is not None
            and not self.pool.failover_acknowledged
            and self.now < last + self.spec.replication.failover_block
        ):
            # the same words every cycle: an alert event is recorded when the text changes
            return (
                f"automatic failover blocked for {self.spec.replication.failover_block:g}s after "
                f"the last one (failover_block); `mpp acknowledge {self.spec.name}` lifts it"
            )
        return ""

    def safe(self, candidate: str, failing: str | None) -> bool:
        """Refuse a successor that lacks transactions another reachable node has."""
        gap = converge.missing(candidate, self.contenders(failing), self.obs)
        if gap is None:
            return True
        holder, extra = gap
        text = (
            f"refusing to promote {candidate}: {holder} has {extra} that it lacks; "
            f"`mpp takeover {self.spec.name} --to {holder}` or --force"
        )
        self.alert(failing or candidate, text)
        return False

    def note_failover(self, old: str, new: str) -> None:
        self.took_writes(new, acknowledged=False, left_out=old)
        self.change = Change(ChangeKind.FAILOVER, old, new)

    def took_writes(self, new: str, acknowledged: bool, left_out: str = "") -> None:
        """`new` takes the writes without a switchover's plan: the anti-flapping clock
        starts (an operator's takeover counts as acknowledged), the errant-check base is
        its position now (kept for `left_out`, the old primary, until it returns), and rw
        waits until it is writable."""
        point = str(converge.received(self.obs.get(new)))
        if left_out:
            kept = tuple((n, b) for n, b in self.pool.rejoin_base if n != left_out)
            self.set_pool(rejoin_base=(*kept, (left_out, point)))
        self.set_pool(
            last_failover_at=self.now,
            failover_acknowledged=acknowledged,
            promoted_at=point,
            alert="",
            pinned=None,
            promoting=None if converge.is_primary(self.obs.get(new)) else new,
        )

    # -- operator requests -----------------------------------------------------------------

    def handle_request(self, verdicts: Mapping[str, Verdict]) -> None:
        request = self.pool.request
        assert request is not None
        self.set_pool(request=None)
        if request.kind is RequestKind.TAKEOVER:
            self.takeover(request, verdicts)
        else:
            self.switchover(request, verdicts)

    def refuse(self, request: Request, why: str) -> None:
        self.pool_event(request.kind, "refused", why, request.to or "-")

    def takeover(self, request: Request, verdicts: Mapping[str, Verdict]) -> None:
        target = request.to
        if target is None or target not in self.nodes:
            self.refuse(request, f"no node {target!r} in pool {self.spec.name}")
            return
        if self.nodes[target].state.failed or verdicts.get(target) is not Verdict.GOOD:
            self.refuse(request, f"{target} is not healthy ({self.nodes[target].message})")
            return
        if self.delay(target):
            self.refuse(request, self.delayed_text(target))
            return
        current = next((n for n in self.nodes.values() if n.state is State.ACTIVE), None)
        if current is not None and current.name == target:
            # not a change: recording one would move promoted_at, the errant-check base,
            # and let a returning old primary's errant transactions rejoin unnoticed
            self.refuse(request, f"{target} is already the ACTIVE node")
            return
        for name in (target, current.name if current is not None else None):
            if name is not None and self.resting(name):
                self.refuse(
                    request, f"{name} is in maintenance: `mpp maintenance {name} off` first"
                )
                return
        others = [n for n in self.contenders(target) if current is None or n != current.name]
        gap = converge.missing(target, others, self.obs)
        if gap is not None and not request.force:
            holder, extra = gap
            self.refuse(request, f"{holder} has {extra} that {target} lacks; use --force")
            return
        loss = f"; may lose {gap[1]} (only on {gap[0]})" if gap else ""
        if current is not None and self.wait_for_fence(current.name, target):
            # force overrides the data checks, never the fence lease: kept for next cycle
            self.set_pool(request=request)
            return
        released = self.released_note(current.name) if current is not None else ""
        if current is not None and current.name != target:
            failed = State.FAILED_ONLINE if current.reachable else State.FAILED_OFFLINE
            why = f"taken over by operator: {target} is ACTIVE{loss}"
            self.move(current.name, failed, why, change=ChangeKind.TAKEOVER)
        self.move(
            target,
            State.ACTIVE,
            f"TAKEOVER by operator{loss}{released}",
            change=ChangeKind.TAKEOVER,
        )
        left = current.name if current is not None and current.name != target else ""
        self.took_writes(target, acknowledged=True, left_out=left)
        self.change = Change(ChangeKind.TAKEOVER, current.name if current else "", target)

    def switchover(self, request: Request, verdicts: Mapping[str, Verdict]) -> None:
        current = next((n for n in self.nodes.values() if n.state is State.ACTIVE), None)
        if current is None or verdicts.get(current.name) is not Verdict.GOOD:
            self.refuse(request, "no healthy ACTIVE node to switch over from; use takeover")
            return
        for name in (current.name, request.to):
            if name is not None and name in self.nodes and self.resting(name):
                self.refuse(
                    request, f"{name} is in maintenance: `mpp maintenance {name} off` first"
                )
                return
        standing = [
            n.name
            for n in self.candidates(verdicts, automatic=False)
            if n.state is State.STANDBY
            and converge.source_of(self.spec, self.obs.get(n.name)) == current.name
        ]
        if request.to in standing and self.delay(request.to):
            self.refuse(request, self.delayed_text(request.to))
            return
        # the operator may name a `promotion = "never"` node; mpp's own pick never is one
        ready = [n for n in standing if not self.delay(n)]
        chosen = [n for n in ready if not self.unpromotable(n)]
        target = request.to or (chosen[0] if chosen else None)
        if target is None or target not in ready:
            why = (
                f"{target} is not a healthy STANDBY replicating from {current.name} "
                f"({self.nodes[target].message})"
                if target in self.nodes
                else f"no node {target!r}"
                if target
                else "no healthy STANDBY to switch over to"
            )
            self.refuse(request, why)
            return
        old = current.name
        others = [n for n in self.nodes.values() if n.name not in (old, target)]
        self.actions = [
            Fence(old),
            CatchUp(target, source=old, timeout=request.timeout),
            Promote(target, timeout=request.timeout, semi_sync=self.spec.replication.semi_sync),
            *[
                Repoint(n.name, source=target, semi_sync=self.spec.replication.semi_sync)
                for n in others
                if not n.state.failed and n.reachable
            ],
            Repoint(old, source=target, rejoin=True, semi_sync=self.spec.replication.semi_sync),
        ]
        self.set_pool(
            switching=Request(
                RequestKind.SWITCHOVER, target, request.at, request.timeout, id=request.id
            ),
            draining=(old,),
        )
        self.change = Change(ChangeKind.SWITCHOVER, old, target)

    def delayed_text(self, name: str) -> str:
        return (
            f"{name} is {self.delay(name)}: it applies what it receives only after the "
            "delay; remove it first (CHANGE MASTER TO MASTER_DELAY = 0)"
        )

    def finish_switchover(self, outcomes: Sequence[Outcome]) -> None:
        """After the executor ran the plan: commit the new ACTIVE, or roll back."""
        switching = self.pool.switching
        assert switching is not None and switching.to is not None
        target = switching.to
        old = next((n.name for n in self.nodes.values() if n.state is State.ACTIVE), "")
        promoted = any(
            isinstance(o.action, Promote) and o.action.node == target and o.ok for o in outcomes
        )
        self.set_pool(switching=None, draining=())
        if promoted:
            switch = ChangeKind.SWITCHOVER
            self.move(old, State.STANDBY, f"SWITCHOVER: {target} is ACTIVE", change=switch)
            self.move(target, State.ACTIVE, f"SWITCHOVER from {old}", change=switch)
            self.set_pool(promoted_at="", pinned=None, alert="")
            self.change = Change(ChangeKind.SWITCHOVER, old, target)
            return
        failure = next((o for o in outcomes if not o.ok), None)
        why = f"{failure.action.describe()}: {failure.detail}" if failure else "not promoted"
        self.pool_event("switchover", "rolled back", f"{why}; {old} stays ACTIVE", target)
        self.actions = [Unfence(old)]

    def resolve_interrupted_switchover(self) -> None:
        """A switchover that an mpp crash interrupted: finish it or roll it back, by what
        the servers say, never by guessing."""
        switching = self.pool.switching
        assert switching is not None and switching.to is not None
        target = switching.to
        old = next((n.name for n in self.nodes.values() if n.state is State.ACTIVE), "")
        self.set_pool(switching=None, draining=())
        if converge.is_primary(self.obs.get(target)):
            if old:
                why = f"interrupted SWITCHOVER completed: {target} ACTIVE"
                self.move(old, State.STANDBY, why, change=ChangeKind.SWITCHOVER)
            why = f"interrupted SWITCHOVER from {old} completed"
            self.move(target, State.ACTIVE, why, change=ChangeKind.SWITCHOVER)
            # this cycle's poll judged it as a STANDBY, which must replicate; as the primary
            # it answers, writable, replicating from nobody: a good poll, not one step
            # towards failing the node that has just taken the writes
            self.nodes[target] = replace(self.nodes[target], req=0)
            return
        self.pool_event(
            "switchover", "rolled back", f"interrupted before {target} was promoted", target
        )

    # -- returning nodes -------------------------------------------------------------------

    def rejoin_or_quarantine(self, verdicts: Mapping[str, Verdict]) -> None:
        active = next((n.name for n in self.nodes.values() if n.state is State.ACTIVE), None)
        if active is None:
            return
        seen = self.obs.get(active)
        if seen is None or not seen.reachable:
            # what the ACTIVE node holds is unknown this cycle: against that empty set every
            # transaction of a returning node would look errant, and a healthy replica
            # would be reported for a rebuild; the verdict waits for a cycle that sees it
            return
        for name, node in list(self.nodes.items()):
            obs = self.obs.get(name)
            if (
                node.state is not State.FAILED_ONLINE
                or obs is None
                or not obs.reachable
                or self.resting(name)
            ):
                continue
            extra = converge.errant(self.pool, active, obs, self.obs)
            if not extra.empty:
                fenced = "quarantined read-only" if obs.read_only else "being fenced"
                self.say(
                    name,
                    f"errant transactions {extra} (not on {active}): {fenced}; "
                    "inspect, then rebuild or `mpp recover` it",
                )
                continue
            replicating = converge.source_of(self.spec, obs) == active
            if (
                self.spec.replication.auto_rejoin
                and replicating
                and verdicts.get(name) is Verdict.GOOD
            ):
                self.move(name, State.STANDBY, f"auto-rejoined as a replica of {active}")

    # -- result ----------------------------------------------------------------------------

    def finish(self, prev: PoolState) -> Decision:
        decision = super().finish(prev)
        if self.kind is not EventKind.STATE or self.actions:
            return replace(decision, actions=self.leave_resting(decision.actions))
        actions = converge.plan(self.spec, self.base, decision.state, self.obs)
        return Decision(
            decision.state, self.leave_resting(actions), decision.events, decision.change
        )

    def leave_resting(self, actions: Sequence[Action]) -> tuple[Action, ...]:
        """No action touches a node in maintenance (switchovers from or to one are refused
        before they are planned; the other replicas' repoints are left for later)."""
        return tuple(a for a in actions if not self.resting(a.node))
