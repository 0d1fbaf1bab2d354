"""The agent rules of the failover logic: maintenance, and the fence lease before
promoting past an old primary mpp cannot fence itself (docs/fencing.md). Pure, no I/O; the
steps of cycle.py call these where their rule applies."""

from __future__ import annotations

from dataclasses import replace

from mpp.logic import agent
from mpp.logic.failover.scratch import Scratch
from mpp.model.command import CommandRefused
from mpp.model.node import NodeState, State
from mpp.model.observation import Observation

HELD = "failover held: "  # the pool alert while a failing ACTIVE node is in maintenance


class AgentRules(Scratch):
    """What maintenance and node agents change in a decision."""

    # -- maintenance -----------------------------------------------------------------------

    def resting(self, name: str) -> bool:
        """In maintenance: never promoted, fenced, rewired or failed by mpp."""
        return self.nodes[name].in_maintenance(self.now)

    def end_expired_maintenance(self) -> None:
        for name, node in self.nodes.items():
            if node.maintenance_since is not None and not node.in_maintenance(self.now):
                self.nodes[name] = replace(node, maintenance_since=None, maintenance_until=None)
                self.pool_event("maintenance", "-", f"maintenance of {name} ended (expired)", name)

    def maintenance(self, name: str, on: bool, duration: float | None) -> None:
        """`mpp maintenance NODE on|off [--for D]`."""
        node = self.nodes[name]
        if not on:
            if not self.resting(name):
                raise CommandRefused(f"{name} is not in maintenance: nothing to end")
            self.nodes[name] = replace(node, maintenance_since=None, maintenance_until=None)
            self.pool_event("maintenance", "-", f"maintenance of {name} ended by operator", name)
            if self.pool.alert == self.held_text(name):
                self.set_pool(alert="")  # the next cycle fails it over if it still fails
            return
        if duration is not None and not (0 < duration < float("inf")):
            raise CommandRefused(
                f"maintenance duration must be a positive number of seconds, not {duration!r} "
                f"(omit --for to keep {name} in maintenance until `mpp maintenance {name} off`)"
            )
        pending = self.pool.switching or self.pool.request
        if pending is not None and name in (pending.to, *(n.name for n in self.base.active)):
            raise CommandRefused(
                f"a {pending.kind} involving {name} is in progress in pool {self.spec.name}: "
                "put it in maintenance once it has finished"
            )
        since = node.maintenance_since if self.resting(name) else self.now
        until = self.now + duration if duration is not None else None
        self.nodes[name] = replace(node, maintenance_since=since, maintenance_until=until)
        self.set_pool(fencing=tuple(n for n in self.pool.fencing if n != name))
        span = (
            f"for {duration:g} s" if duration is not None else f"until `mpp maintenance {name} off`"
        )
        self.pool_event(
            "maintenance" if node.in_maintenance(self.now) else "-",
            "maintenance",
            f"maintenance of {name} {span}: no failover to or from it, no fencing, "
            "no restarts by its agent",
            name,
        )

    def hold_for_maintenance(self, current: NodeState) -> bool:
        """A failing ACTIVE node in maintenance is kept: the operator is working on it."""
        if not self.resting(current.name):
            return False
        self.held = True
        self.alert(current.name, self.held_text(current.name))
        return True

    def held_text(self, name: str) -> str:
        return f"{HELD}{name} is in maintenance"

    # -- the fence lease -------------------------------------------------------------------

    def hold_refusing(self, old: str, new: str) -> bool:
        """Keep a failing ACTIVE node that answers but refuses mpp, when nothing can fence
        it (primary-replica pools: PrimaryReplicaCycle); a ring runs no actions."""
        return False

    def fences_itself(self, obs: Observation) -> bool:
        """mpp's own Fence, which must succeed before the promotion, will stop its writes.
        A ring's logic runs no actions: only the node's agent can fence it."""
        return False

    def wait_for_fence(self, old: str, new: str) -> bool:
        """Before promoting `new` past `old`, which mpp cannot fence itself and which may
        still take writes from clients mpp cannot see: while old's agent still renews its
        fence lease (plus fence_margin), and reports neither fenced nor mysqld down, ask it
        to fence (PoolState.fencing) and do not promote this cycle. Without an agent view
        nothing waits (mpp alone cannot know more)."""
        obs = self.obs.get(old)
        if obs is None:  # not probed this cycle: what it said last still stands
            if old in self.base.fencing:
                self.waiting.add(old)
                return True
            return False
        view = obs.agent
        if view is None or self.fences_itself(obs):
            return False
        if obs.reachable and not obs.error and obs.read_only is True:
            return False  # mpp sees it read-only: it takes no writes
        margin = self.spec.agents.fence_margin
        wait = agent.fence_wait(view, margin)
        if wait <= 0:
            self.released[old] = agent.released_by(old, view, margin)
            if not view.report.fenced:
                self.left.add(old)  # its agent fences it the moment it reads the store
            return False
        self.waiting.add(old)
        text = agent.wait_text(old, wait)
        self.say(old, f"{self.nodes[old].message}; {text} before promoting {new}")
        self.set_pool(alert=text)
        if old not in self.base.fencing:
            self.pool_event(
                "-",
                "fencing",
                f"{text}: {new} is promoted as soon as it reports fenced or mysqld down, "
                "or the lease has run out",
                old,
            )
        return True

    def released_note(self, old: str) -> str:
        why = self.released.get(old)
        return f" ({why})" if why else ""

    def settle_fencing(self) -> None:
        """PoolState.fencing: the old primaries whose agents must fence them. A node stays
        while it is waited on, or while it is FAILED and its agent has not said it fenced
        (it fences the moment it can read the store again); it leaves once recovered,
        rejoined, in maintenance, or kept ACTIVE (not being failed over any more)."""
        kept: list[str] = []
        for name in (n.name for n in self.spec.nodes):
            if name in self.waiting or (name in self.left and self.nodes[name].state.failed):
                kept.append(name)
                continue
            if name not in self.pool.fencing:
                continue
            node = self.nodes[name]
            obs = self.obs.get(name)
            fenced = obs is not None and obs.agent is not None and bool(obs.agent.report.fenced)
            if node.state.failed and not fenced and not self.resting(name):
                kept.append(name)
            elif node.state is State.ACTIVE:
                self.pool_event(
                    "fencing",
                    "-",
                    f"{name} is kept ACTIVE: its agent is no longer asked to fence it",
                    name,
                )
        if tuple(kept) != self.pool.fencing:
            self.set_pool(fencing=tuple(kept))
        if not self.waiting and self.pool.alert.startswith(agent.FENCE_WAIT):
            self.set_pool(alert="")
        if not self.held and self.pool.alert.startswith(HELD):
            self.set_pool(alert="")

    def refuse_resting(self, name: str, verb: str) -> None:
        if self.resting(name):
            raise CommandRefused(
                f"{name} is in maintenance: mpp does not {verb} it; "
                f"`mpp maintenance {name} off` first"
            )
