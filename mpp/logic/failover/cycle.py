"""The steps of one failover decision, shared by every topology (pure, no I/O).

See rules.py for the rules; this module holds the steps that apply them to one pool for
one cycle or one operator command, on the scratch object of scratch.py, with the agent and
maintenance rules of fencing.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from mpp.logic import agent, views
from mpp.logic.failover.fencing import AgentRules
from mpp.logic.health import classify
from mpp.logic.ladder import status_of, warn_cap
from mpp.model.command import CommandRefused
from mpp.model.event import Event
from mpp.model.kinds import ChangeKind, EventKind, Promotion
from mpp.model.node import NodeState, State, Verdict
from mpp.model.observation import Observation
from mpp.model.plan import Decision, Outcome
from mpp.model.pool import PoolState

FAILOVER = ChangeKind.FAILOVER


class Cycle(AgentRules):
    """The steps of one decision, on the scratch space (scratch.py) with the agent rules
    (fencing.py).

    The steps are methods so that a topology can refine one rule (which node may take over,
    what a failing ACTIVE means) without copying the rest; see primary_replica.py.
    """

    def run(self) -> None:
        """One poll cycle: the steps in the order the module docstring gives."""
        self.end_expired_maintenance()
        verdicts = self.health(self.obs)
        self.fail_standbys(verdicts)
        self.settle_failed(verdicts)
        self.choose_active(verdicts)
        self.standby_unknowns(verdicts)
        self.settle_fencing()

    # -- helpers ---------------------------------------------------------------------------

    def by_priority(self) -> list[NodeState]:
        return sorted(self.nodes.values(), key=lambda n: self.spec.priority(n.name))

    def move(
        self,
        name: str,
        state: State,
        reason: str,
        message: str | None = None,
        change: ChangeKind | None = None,
    ) -> None:
        """`change`: the move is part of a failover/switchover/takeover (for its history
        line, which counters and notifications recognise by it, never by its words)."""
        node = self.nodes[name]
        self.nodes[name] = replace(
            node, state=state, message=message if message is not None else reason
        )
        if node.state is not state:
            self.reasons[name] = reason
            if change is not None:
                self.changes[name] = change

    def failed_state(self, name: str, verdicts: Mapping[str, Verdict]) -> State:
        verdict = verdicts.get(name)
        offline = verdict is Verdict.OFFLINE or (verdict is None and not self.nodes[name].reachable)
        return State.FAILED_OFFLINE if offline else State.FAILED_ONLINE

    def failing(self, name: str) -> bool:
        return self.nodes[name].req >= self.spec.fail_point

    # -- 1. health -------------------------------------------------------------------------

    def health(self, observations: Mapping[str, Observation]) -> dict[str, Verdict]:
        verdicts: dict[str, Verdict] = {}
        for name, node in list(self.nodes.items()):
            obs = observations.get(name)
            if obs is None:
                continue  # not probed this cycle: nothing new is known about it
            verdict, message = classify(self.spec, self.base, name, observations)
            verdicts[name] = verdict
            view = obs.agent
            seconds = agent.stalled(view)
            if agent.gave_up(view) or (
                seconds is not None and seconds >= self.spec.agents.write_stall_grace
            ):
                self.confirmed.add(name)
            rep = obs.replication
            lag = rep.seconds_behind if rep is not None else None
            if verdict is Verdict.GOOD:
                req = 0
                if node.req > 0:
                    message = f"(recovering) {message}"
            else:
                req = node.req + 1
                if node.state is State.ACTIVE and verdict is Verdict.REPLICATION:
                    req = min(req, warn_cap(self.spec.fail_point))
                    message = f"{message} (ACTIVE node keeps serving)"
            if agent.gave_up(view):
                req = max(req, self.spec.fail_point)  # confirmed by the host: no more polls
            if self.resting(name):
                message = f"{message} (in maintenance: not failed, fenced or promoted)"
            self.nodes[name] = replace(
                node,
                req=req,
                agent=agent.summary(view),
                views=views.summary(obs),
                last_request=obs.at,
                message=message,
                reachable=obs.reachable,
                lag=lag,
                gtid=obs.gtid_executed or node.gtid,
                latency_ms=round(obs.latency_ms, 3) if obs.latency_ms is not None else None,
            )
        return verdicts

    # -- 2. failures -----------------------------------------------------------------------

    def fail_standbys(self, verdicts: Mapping[str, Verdict]) -> None:
        for name, node in self.nodes.items():
            if (
                node.state in (State.STANDBY, State.UNKNOWN)
                and self.failing(name)
                and not self.resting(name)
            ):
                self.move(name, self.failed_state(name, verdicts), f"FAIL: {node.message}")

    def settle_failed(self, verdicts: Mapping[str, Verdict]) -> None:
        """Keep FAILED_ONLINE/OFFLINE truthful about reachability; never leave FAILED here."""
        for name, node in self.nodes.items():
            if not node.state.failed or name not in verdicts or self.resting(name):
                continue
            if verdicts[name] is Verdict.OFFLINE:
                self.move(name, State.FAILED_OFFLINE, f"FAILED node is unreachable: {node.message}")
            elif verdicts[name] is Verdict.GOOD:
                self.move(
                    name,
                    State.FAILED_ONLINE,
                    "FAILED node is reporting recovery",
                    f"FAILED node is reporting recovery. Manual intervention required "
                    f"(mpp recover {name}).",
                )
            else:
                self.move(name, State.FAILED_ONLINE, f"FAILED node is reachable: {node.message}")

    # -- 3. the ACTIVE node ----------------------------------------------------------------

    def candidates(self, verdicts: Mapping[str, Verdict]) -> list[NodeState]:
        """Nodes that may take ACTIVE now: healthy this cycle and not failed, best first;
        never one with `promotion = "never"` (the operator's `activate` may name it)."""
        return [
            n
            for n in self.by_priority()
            if n.state in (State.STANDBY, State.UNKNOWN)
            and verdicts.get(n.name) is Verdict.GOOD
            and not self.resting(n.name)
            and self.spec.spec(n.name).promotion is not Promotion.NEVER
        ]

    def choose_active(self, verdicts: Mapping[str, Verdict]) -> None:
        actives = [n for n in self.by_priority() if n.state is State.ACTIVE]
        for extra in actives[1:]:  # only a damaged store can hold two; keep the preferred one
            self.move(extra.name, State.STANDBY, f"two ACTIVE nodes found; {actives[0].name} kept")
        current = actives[0] if actives else None
        candidates = self.candidates(verdicts)
        if current is None:
            if candidates:
                reason = (
                    "Elected ACTIVE: highest-priority healthy node."
                    if self.base.cycle == 0
                    else "FAILOVER: Taking over ACTIVE state (the pool had no ACTIVE node)."
                )
                self.elect(candidates[0].name, reason, None if self.base.cycle == 0 else FAILOVER)
            return
        if self.failing(current.name):
            if not self.hold_for_maintenance(current):
                self.fail_active(current, candidates, verdicts)
            return
        if not self.resting(current.name):
            self.maybe_yield(current, candidates)

    def elect(self, name: str, reason: str, change: ChangeKind | None = None) -> None:
        self.move(name, State.ACTIVE, reason, change=change)
        if self.pool.pinned is not None and self.pool.pinned != name:
            self.set_pool(pinned=None)

    def fail_active(
        self, current: NodeState, candidates: list[NodeState], verdicts: Mapping[str, Verdict]
    ) -> bool:
        """Hand ACTIVE to the best candidate; False when it is kept (no candidate, or its
        agent is still to fence it)."""
        if not candidates:
            self.say(
                current.name,
                f"Not failing from ACTIVE state because no other server is on standby: "
                f"{current.message}",
            )
            return False
        successor = candidates[0].name
        if self.hold_refusing(current.name, successor):
            return False
        if self.wait_for_fence(current.name, successor):
            return False
        self.move(
            current.name,
            self.failed_state(current.name, verdicts),
            f"FAIL: {current.message}; ACTIVE handed to {successor}",
        )
        self.elect(
            successor,
            f"FAILOVER: Taking over ACTIVE state from {current.name}."
            + self.released_note(current.name),
            FAILOVER,
        )
        return True

    def maybe_yield(self, current: NodeState, candidates: list[NodeState]) -> None:
        """A lower-priority ACTIVE gives way to a healthy higher-priority STANDBY."""
        if self.pool.pinned == current.name:
            return
        rank = self.spec.priority(current.name)
        better = [
            n for n in candidates if n.state is State.STANDBY and self.spec.priority(n.name) < rank
        ]
        if not better:
            return
        target = better[0].name
        if self.spec.failover.hostile_takeover or self.base.relinquish_to == target:
            self.move(
                current.name,
                State.STANDBY,
                f"Relinquishing ACTIVE state to {target}.",
            )
            self.elect(target, f"Reinstated to ACTIVE (higher priority than {current.name}).")
            return
        self.set_pool(relinquish_to=target)
        self.say(current.name, f"Ready to relinquish ACTIVE state to {target}.")
        self.say(target, f"Waiting for {current.name} to stand down before instatement to ACTIVE.")

    # -- 4. the rest -----------------------------------------------------------------------

    def standby_unknowns(self, verdicts: Mapping[str, Verdict]) -> None:
        for name, node in self.nodes.items():
            if node.state is State.UNKNOWN and verdicts.get(name) is Verdict.GOOD:
                self.move(name, State.STANDBY, f"healthy: {node.message}", node.message)

    # -- operator commands -----------------------------------------------------------------

    def recover(self, name: str) -> None:
        node = self.nodes[name]
        if not node.state.failed:
            raise CommandRefused(
                f"{name} is {node.state}, not FAILED_ONLINE/FAILED_OFFLINE: nothing to recover"
            )
        self.nodes[name] = replace(node, req=0)
        if name in self.pool.fencing:
            self.set_pool(fencing=tuple(n for n in self.pool.fencing if n != name))
        self.move(name, State.UNKNOWN, "Manual Recovery Initiated.")

    def fail_by_operator(self, name: str, force: bool) -> None:
        node = self.nodes[name]
        if node.state.failed:
            raise CommandRefused(f"{name} is already {node.state}")
        self.refuse_resting(name, "fail")
        failed = State.FAILED_OFFLINE if node.reachable is False else State.FAILED_ONLINE
        if node.state is State.ACTIVE:
            successors = [
                n
                for n in self.by_priority()
                if n.state is State.STANDBY
                and n.req == 0
                and n.reachable
                and not self.resting(n.name)
                and self.spec.spec(n.name).promotion is not Promotion.NEVER
            ]
            if not successors and not force:
                raise CommandRefused(
                    f"{name} is the ACTIVE node and no healthy STANDBY can take over; "
                    f"use --force to leave pool {self.spec.name} without an ACTIVE node"
                )
            self.move(name, failed, "Failed by operator.")
            if successors:
                reason = f"FAILOVER: Taking over ACTIVE state from {name}."
                self.elect(successors[0].name, reason, FAILOVER)
            return
        self.move(name, failed, "Failed by operator.")

    def activate(self, name: str) -> None:
        node = self.nodes[name]
        if node.state.failed:
            raise CommandRefused(f"{name} is {node.state}: run `mpp recover {name}` first")
        self.refuse_resting(name, "activate")
        for other in self.nodes.values():
            if other.state is State.ACTIVE and other.name != name:
                self.refuse_resting(other.name, "stand down")
        if node.req != 0 or not node.reachable:
            raise CommandRefused(
                f"{name} is not healthy (req={node.req}, last: {node.message!r}); "
                "only a node with status OK can be made ACTIVE"
            )
        top = self.by_priority()[0].name
        self.set_pool(pinned=None if name == top else name)
        for other in self.nodes.values():
            if other.state is State.ACTIVE and other.name != name:
                self.move(other.name, State.STANDBY, f"Operator made {name} ACTIVE.")
        if node.state is not State.ACTIVE:
            self.move(name, State.ACTIVE, "Made ACTIVE by operator.")

    # -- result ----------------------------------------------------------------------------

    def finish(self, prev: PoolState) -> Decision:
        events: list[Event] = []
        nodes: list[NodeState] = []
        for name in (n.name for n in self.spec.nodes):
            node = self.nodes[name]
            old = prev.node(name) if prev.has(name) else NodeState(name)
            changed = old.state is not node.state
            node = replace(node, notice=changed)
            nodes.append(node)
            if changed:
                event = self.event(name, self.kind, old.state, node.state, self.reasons[name])
                events.append(replace(event, change=self.changes.get(name)))
            old_status = status_of(old.req, self.spec.fail_point)
            new_status = status_of(node.req, self.spec.fail_point)
            if old_status is not new_status:
                events.append(
                    self.event(
                        name, EventKind.STATUS, old_status.label, new_status.label, node.message
                    )
                )
        state = replace(
            self.pool,
            name=self.spec.name,
            nodes=tuple(nodes),
            cycle=self.base.cycle + (1 if self.kind is EventKind.STATE else 0),
            updated_at=self.now,
        )
        return Decision(
            state=state,
            actions=tuple(self.actions),
            events=tuple(events + self.pool_events),
            change=self.change,
        )

    # -- after the executor ----------------------------------------------------------------

    def record_outcome(self, o: Outcome) -> None:
        """One history line per action carried out, with what it took."""
        took = f"{o.seconds * 1000:.0f} ms"
        event = self.event(
            o.action.node,
            EventKind.ACTION,
            o.action.describe(),
            "ok" if o.ok else "FAILED",
            f"{o.detail} ({took})" if o.detail else took,
        )
        self.pool_events.append(replace(event, action=o.action.action_kind))

    def outcomes_done(self, prev: PoolState, outcomes: Sequence[Outcome]) -> None:
        """What the outcomes complete; a ring's logic emits no actions, so nothing."""
