"""The loop that joins the stages: probe -> logic -> store -> publish, one task per pool.

Probes run in threads (the drivers block; mysqlclient releases the GIL while it waits) under
an asyncio deadline, all nodes of a pool at once, so one hung server costs its own probe a
timeout and delays nobody else. Each pool cycles on its own tick, the pools spread over the
interval (`phases`, `next_tick`). The decision
is committed with compare-and-set: if the CLI or another mpp changed the pool meanwhile,
the logic runs again on the fresh state with the same observations.

Several `mpp run` may share one store: only the holder of the store's leadership lease
decides and acts; the others follow (they publish the stored state, so their API, checks and
router tell the leader's truth) and take over when the lease expires.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from mpp.act.executor import Executor
from mpp.act.heartbeat import HeartbeatWriter
from mpp.act.hooks import run_hook, run_hook_later
from mpp.config import Config, PoolConfig
from mpp.logic import logic_for
from mpp.logic.failover.semisync import heartbeat_target
from mpp.logic.schedule import due
from mpp.model import (
    AgentReport,
    AgentView,
    Decision,
    Event,
    EventKind,
    Observation,
    PoolState,
    Quorum,
    Reach,
    Schedule,
)
from mpp.probe.connection import pool_targets
from mpp.probe.mysql import NodeProber
from mpp.publish.log import log_event
from mpp.run.agents import AgentTracker
from mpp.run.follow import FollowFeed
from mpp.run.leadership import Leadership
from mpp.run.reach import reach_event
from mpp.run.schedules import Scheduler
from mpp.run.shards import Shards
from mpp.run.transact import CycleWrite, Kept, transact, transact_cycle
from mpp.run.views import ViewTracker
from mpp.store import NotLeader, Store, StoreError

log = logging.getLogger("mpp")

Publisher = Callable[[PoolState, tuple[Event, ...]], None]


class PoolWorker:
    """Everything mpp does for one pool each cycle."""

    def __init__(
        self,
        config: Config,
        pool: PoolConfig,
        store: Store,
        probe_threads: ThreadPoolExecutor,
        publishers: tuple[Publisher, ...] = (),
        leadership: Leadership | None = None,
        store_threads: ThreadPoolExecutor | None = None,
        lock: asyncio.Lock | None = None,
        reports_to: Callable[[str, dict[str, AgentReport]], None] | None = None,
        feed: FollowFeed | None = None,
    ) -> None:
        self.config = config
        # the instance's one read of every followed pool (mpp.run.follow); None: this
        # worker reads its own pool (workers built outside make_workers: tests)
        self.feed = feed
        self.reports_to = reports_to  # the Hub's set_reports: the API and metrics show them
        self.leadership = leadership
        # store calls (a remote etcd may take seconds) and pre_* hooks run in these threads,
        # never in the event loop that also serves the router, the checks and the API
        self.store_threads = store_threads or probe_threads
        # commit + publish of this pool, shared with the API's operator commands, so the
        # Hub never ends up with an older state than the store
        self.lock = lock or asyncio.Lock()
        self.seen_at = time.time()  # follower: newest history event already published
        self.followed_version: int | None = None  # follower: the version last looked at
        # probes ran since this instance last led: a follower closes their sessions (pools
        # moving among instances would otherwise leave every instance a session per node)
        self.probed = False
        self.pool = pool
        self.spec = pool.spec()
        self.hooks = dict(pool.hooks.commands())  # hook name -> command
        self.logic = logic_for(self.spec.logic)
        self.store = store
        self.probe_threads = probe_threads
        self.publishers = publishers
        watch = pool.heartbeat > 0 or pool.semi_sync == "strict"
        self.probers = [
            NodeProber(t, heartbeat=pool.heartbeat > 0, clients=watch)
            for t in pool_targets(config, pool).values()
        ]
        self.prober = {p.target.node: p for p in self.probers}
        # carries out whatever actions the logic decides (a ring's logic decides none)
        self.executor = Executor(config, pool)
        # pool key heartbeat: mpp's row through the ACTIVE primary (`mpp run` only, aimed
        # after each committed decision; None: the pool has none)
        self.heartbeat = HeartbeatWriter(config, pool) if pool.heartbeat > 0 else None
        self.beating = False  # `mpp run` writes heartbeats; one `mpp poll` writes none
        self.deadline = probe_deadline(
            config.mpp.connect_timeout, config.query_timeout, config.mpp.interval
        )
        self.last_cycle_seconds = 0.0
        # a cycle that changed nothing but the clocks is not written (transact_cycle), but
        # the stored state is never older than this: followers' /v1/health calls a pool
        # stale after 3 intervals (+ deadlines), and they look once per interval
        self.restamp_after = 2 * config.mpp.interval
        # a cycle may build on the state it kept when the store saw that version as the
        # stored one at most this long ago (etcd: one read of every pool's version per fifth
        # of an interval, not a load per pool-cycle; the same age as a follower's view)
        self.current_within = config.mpp.interval / 5
        self.kept: Kept | None = None
        self.recorded_term = 0  # the leadership term already recorded in this pool's history
        self.agents = AgentTracker(self.spec)  # the node agents' reports, dated by this process
        # quorum = "majority": every instance probes, shares its view and reads the others'
        # (mpp/run/views.py); alone, or with quorum = "leader", nothing of it runs
        self.views = (
            ViewTracker(self.spec, leadership.owner)
            if leadership is not None and self.spec.quorum.mode is Quorum.MAJORITY
            else None
        )
        self.site = config.mpp.site or ""  # [mpp] site: how the others name this view
        self.views_error = ""  # the store's last error sharing or reading views
        self.reports_error = ""  # the store's last error reading them (logged once per change)
        # [[pool.schedule]]: planned switchovers when their cron slots come (leader only)
        self.scheduler = (
            Scheduler(self.spec.schedules, time.time()) if self.spec.schedules else None
        )

    async def decide_on(
        self, results: dict[str, Observation]
    ) -> tuple[dict[str, Observation], Decision]:
        """The probes' results with the agents' reports and the other instances' views
        attached (when the pool has them), and the decision on them, committed: all in one
        store-thread job, since at a thousand nodes every hand-off between the loop and a
        thread is a share of the cycle's cost. Called under the pool's lock (the reads are
        short)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.store_threads, self.attach_and_commit, results)

    async def attach(self, results: dict[str, Observation]) -> dict[str, Observation]:
        """The agents' reports and (when the pool has them) the other instances' views
        attached to the probes' results."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.store_threads, self.attached, results)

    async def observe(self) -> dict[str, Observation]:
        """One cycle's observations, attached but not decided on: for a caller that
        commits them itself (tests stepping a worker, a crash between commit and act)."""
        return await self.attach(await self.probe_all())

    def attached(self, probed: dict[str, Observation]) -> dict[str, Observation]:
        """`attach`, blocking (a store thread)."""
        observations = with_agents(probed, self.agent_views())
        if self.views is not None:
            observations = self.exchange(observations)
        return observations

    def attach_and_commit(
        self, probed: dict[str, Observation]
    ) -> tuple[dict[str, Observation], Decision]:
        """`attached`, then the commit (blocking: a store thread)."""
        observations = self.attached(probed)
        return observations, self.commit(observations, time.time())

    def share(self, observations: Mapping[str, Observation]) -> None:
        """Write this instance's view of the pool (blocking: a store thread). A view that
        cannot be written simply does not vote; the error is logged once per change."""
        assert self.views is not None
        try:
            self.store.put_view(self.views.mine(self.site, self.config.mpp.interval, observations))
        except StoreError as err:
            self._views_failed(f"cannot share this instance's view: {err}")

    def exchange(self, observations: Mapping[str, Observation]) -> dict[str, Observation]:
        """Share this instance's view, read the others' and attach them; on a store error
        the last views read go on ageing (stale ones stop voting)."""
        assert self.views is not None
        self.share(observations)
        try:
            self.views.read(self.store.views(self.spec.name))
            self._views_failed("")
        except StoreError as err:
            self._views_failed(f"cannot read the other instances' views: {err}")
        return self.views.attach(observations)

    def _views_failed(self, error: str) -> None:
        if error and error != self.views_error:
            log.warning("pool=%s %s", self.pool.name, error)
        self.views_error = error

    async def probe(self, probers: list[NodeProber]) -> list[Observation]:
        """The probes of `probers` at once, all under one deadline: one that has not answered
        by then is a bad poll for this cycle. A probe on a kept mysqlclient session is sent
        and read on the loop (NodeProber.start_on_loop: the thread hop cost as much as the
        probe) and dropped at the deadline; the others run in a thread (which runs on past
        the deadline; its prober skips the next cycle's probe while it still does). One
        timer and no task per probe."""
        loop = asyncio.get_running_loop()
        started = time.time()
        futures: list[asyncio.Future[Observation]] = []
        try:
            for p in probers:  # on the loop where the prober can (a kept mysqlclient session)
                futures.append(p.start(loop, self.probe_threads))
            done, _ = await asyncio.wait(futures, timeout=self.deadline)
        finally:  # also when cancelled or failed: no poll left waiting on the loop
            for prober, future in zip(probers, futures, strict=False):
                if not future.done():
                    try:
                        prober.abandon()
                    except Exception:  # the others must still be abandoned
                        node = prober.target.node
                        log.exception("pool=%s node=%s: abandoning its poll", self.pool.name, node)
        seen = []
        for prober, future in zip(probers, futures, strict=True):
            if future in done:
                seen.append(future.result())
                continue
            future.cancel()  # its answer, should it come, is dropped
            seen.append(
                Observation(
                    prober.target.node,
                    started,
                    reachable=False,
                    error=f"no answer within {self.deadline:.1f}s (server hung?)",
                )
            )
        return seen

    async def probe_all(self) -> dict[str, Observation]:
        """Every node, and a second look at those the logic asks for."""
        results = {o.node: o for o in await self.probe(self.probers)}
        again = self.logic.recheck(self.spec, results)
        if again:
            fresh = await self.probe([self.prober[n] for n in again])
            results.update((o.node, o) for o in fresh)
        return results

    def agent_views(self) -> dict[str, AgentView]:
        """The node agents' reports as mpp dates them (blocking: runs in a store thread).

        Read after the probes, so a report is never older than what they saw. A store that
        cannot be read costs the cycle its fresh reports, not its probes: mpp goes on with
        the last reports it read, still dated by when it first saw them (their leases only
        shorten), rather than with none (which would read as "no agent here" and let the
        logic promote past a primary whose agent may still hold its fence lease)."""
        try:
            reports = self.store.reports(self.spec.name)
        except StoreError as err:
            if str(err) != self.reports_error:
                # a warning, not an error: the cycle goes on with the last reports (safe,
                # see above) and commits; an etcd election longer than the call's timeout
                # does this once and loses no cycle
                log.warning("pool=%s agent reports not read: %s", self.pool.name, err)
                self.reports_error = str(err)
            return self.agents.last()
        if self.reports_error:
            log.warning("pool=%s agent reports read again", self.pool.name)
            self.reports_error = ""
        if self.reports_to is not None:
            self.reports_to(self.spec.name, reports)
        return self.agents.views(reports)

    def commit(self, observations: Mapping[str, Observation], now: float) -> Decision:
        leadership = self.leadership
        term = leadership.term if leadership else 0

        def took_events() -> tuple[Event, ...]:
            took = leadership.event(self.spec.name, now) if leadership else None
            return (took,) if took is not None and term != self.recorded_term else ()

        def step(prev: PoolState) -> Decision:
            # a cycle that began before this instance's checkpoints cut it off decides
            # nothing: a failover from an instance that cannot see the primary is a guess
            if leadership is not None and (barred := leadership.barred()):
                raise NotLeader(f"pool {self.spec.name}: nothing decided: mpp is {barred}")
            decision = self.logic.decide(self.spec, prev, observations, now)
            if took := took_events():
                decision = replace(decision, events=(*took, *decision.events))
            return decision

        def settle(prev: PoolState, decision: Decision) -> Decision:
            """The pre_* hooks, on a decision taken on the stored state (transact_cycle).
            They see the logic's decision without this process's leadership line (their
            MPP_REASON is the change's reasons, as it always was)."""
            took = took_events()
            why = self.pre_hook(replace(decision, events=decision.events[len(took) :]))
            if not why:
                return decision
            vetoed = self.logic.veto(self.spec, prev, decision, why, now)
            return replace(vetoed, events=(*took, *vetoed.events))

        write = CycleWrite(self.restamp_after, self.owner, self.scoped, self.current_within)
        done, self.kept = transact_cycle(self.store, self.spec, step, self.kept, write, settle)
        self.recorded_term = term
        return done

    @property
    def owner(self) -> str | None:
        return self.leadership.owner if self.leadership else None

    @property
    def scoped(self) -> bool:
        """The pool has a lease of its own (pools shared among instances)."""
        return self.leadership is not None and self.leadership.scope is not None

    @property
    def leading(self) -> bool:
        return self.leadership is None or self.leadership.held

    def pre_hook(self, decision: Decision) -> str:
        """Run pre_failover/pre_switchover; the reason to veto, or "" to go ahead."""
        if decision.change is None:
            return ""
        name = f"pre_{decision.change.kind.hook_family}"
        command = self.hooks.get(name)
        if command is None:
            return ""
        ok, detail = run_hook(name, command, self.hook_env(decision), self.pool.hooks.timeout)
        if ok or not self.pool.hooks.abort_on_failure:
            return ""
        return f"{decision.change.kind} aborted: {detail}"

    def hook_env(self, decision: Decision) -> dict[str, str]:
        change = decision.change
        return {
            "MPP_POOL": self.spec.name,
            "MPP_EVENT": change.kind.value if change else "",
            "MPP_OLD": change.old if change else "",
            "MPP_NEW": change.new if change else "",
            "MPP_REASON": "; ".join(
                e.reason for e in decision.events if e.kind is not EventKind.STATUS
            ),
        }

    async def execute(self, decision: Decision) -> Decision:
        """Carry out the decision's actions, then record their outcomes (and finish or roll
        back a switchover), publishing each commit. Returns the last committed decision."""
        loop = asyncio.get_running_loop()
        outcomes = []
        if decision.actions:
            if not self.leading:  # deposed since the commit: the new leader converges on it
                log.warning(
                    "pool=%s %d action(s) not carried out: no longer the leader",
                    self.pool.name,
                    len(decision.actions),
                )
                return decision
            outcomes = await loop.run_in_executor(
                self.probe_threads, self.executor.run, decision.actions
            )
        outcomes += self.executor.late_outcomes()
        if not outcomes and decision.state.switching is None:
            return decision
        async with self.lock:
            done = await loop.run_in_executor(
                self.store_threads,
                transact,
                self.store,
                self.spec,
                lambda prev: self.logic.complete(self.spec, prev, outcomes, time.time()),
                self.owner,
            )
            self.publish(done)
        if done.actions:  # a rollback
            return await self.execute(done)
        return done

    def publish(self, decision: Decision) -> None:
        for event in decision.events:
            log_event(event)
            self.seen_at = max(self.seen_at, event.at)
        for publish in self.publishers:
            publish(decision.state, decision.events)
        self.after_hooks(decision)

    def after_hooks(self, decision: Decision) -> None:
        """post_* once a change is done (a switchover: when its plan completed), and
        on_state_change for every state change."""
        hooks = self.pool.hooks
        if decision.change and decision.state.switching is None:
            name = f"post_{decision.change.kind.hook_family}"
            if command := self.hooks.get(name):
                run_hook_later(name, command, self.hook_env(decision), hooks.timeout)
        command = self.hooks.get("on_state_change")
        for e in decision.events:
            if command and e.kind not in (EventKind.STATUS, EventKind.ACTION):
                env = {
                    "MPP_POOL": e.pool,
                    "MPP_NODE": e.node,
                    "MPP_OLD": e.old,
                    "MPP_NEW": e.new,
                    "MPP_REASON": e.reason,
                    "MPP_EVENT": e.kind,
                }
                run_hook_later("on_state_change", command, env, hooks.timeout)

    async def cycle(self) -> Decision | None:
        """One poll, decision and execution; a follower only publishes the stored state."""
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        if not self.leading:
            if self.views is not None:  # the leader counts this instance's view
                seen = await self.probe_all()
                await loop.run_in_executor(self.store_threads, self.share, seen)
            elif self.probed:  # led until now: its sessions are the new leader's to hold
                self.probed = False
                # in a probe thread, not awaited: a prober waits for a hung probe to end
                loop.run_in_executor(self.probe_threads, self.close)
            if self.heartbeat is not None:
                self.heartbeat.aim(None)  # the leader writes it
            await loop.run_in_executor(self.store_threads, self.follow)
            if self.scheduler is not None:
                self.scheduler.restart(time.time())  # a follower's missed slots are not run
            self.last_cycle_seconds = time.perf_counter() - started
            return None
        self.probed = True
        probed = await self.probe_all()
        async with self.lock:
            observations, decision = await self.decide_on(probed)
            self.publish(decision)
        if self.heartbeat is not None and self.beating:
            # before the actions: a switchover or failover stops the row at once
            target = heartbeat_target(self.spec, decision.state, observations, decision.actions)
            self.heartbeat.aim(target)
        done = await self.execute(decision)
        if self.scheduler is not None:
            for schedule, slot in self.scheduler.due(time.time()):
                async with self.lock:
                    noted = await loop.run_in_executor(
                        self.store_threads, self.run_schedule, schedule, slot
                    )
                    self.publish(noted)
        self.last_cycle_seconds = time.perf_counter() - started
        return done

    async def note_reach(self, before: Reach, now: Reach) -> None:
        """This instance's checkpoints changed their verdict (mpp.run.reach): a line in the
        pool's history, published at once so the checks and the router follow it now.
        Written without the lease (an event, the state as stored, compare-and-set): a
        follower's cut is the operator's business too, and a cut-off leader has just given
        its lease up. An unreachable store costs the line its place in the history; the
        log keeps it."""
        event = reach_event(self.spec.name, self.config.mpp.name, before, now, time.time())
        loop = asyncio.get_running_loop()

        def step(prev: PoolState) -> Decision:
            return Decision(prev, events=(event,))

        async with self.lock:
            try:
                done = await loop.run_in_executor(
                    self.store_threads, transact, self.store, self.spec, step
                )
            except StoreError as err:
                log_event(event)
                log.error("pool=%s checkpoint verdict not recorded: %s", self.pool.name, err)
                return
            self.publish(done)

    def run_schedule(self, schedule: Schedule, slot: float) -> Decision:
        """A due slot through the logic (mpp.logic.schedule): the switchover is asked for,
        and the next cycle carries it out, or the pool records why it was skipped."""

        def step(prev: PoolState) -> Decision:
            return due(self.logic, self.spec, prev, schedule, slot, time.time())

        return transact(self.store, self.spec, step, self.owner, self.scoped)

    def follow(self) -> None:
        """The stored state and the history events committed since the last look (the
        leader's), for this instance's publishers (blocking: runs in a store thread)."""
        if self.feed is not None:
            self._follow_feed(self.feed)
            return
        snapshot = self.store.load(self.spec.name)
        if snapshot is None:
            return
        # events are only ever written with a save, which changes the version: the same
        # version has no new history (one store request per followed pool, not two)
        events: Sequence[Event] = ()
        if snapshot.version != self.followed_version:
            events = self.store.history(self.spec.name)
            self.followed_version = snapshot.version
        self._publish_followed(snapshot.state, events)

    def _follow_feed(self, feed: FollowFeed) -> None:
        got = feed.get()
        name = self.spec.name
        reports = dict(got.reports.get(name, {}))
        self.agents.views(reports)  # dated as the leader dates them (mpp.run.follow)
        if self.reports_to is not None:
            self.reports_to(name, reports)
        snapshot = got.states.get(name)
        if snapshot is not None:
            self._publish_followed(snapshot.state, feed.events(name))

    def _publish_followed(self, state: PoolState, events: Sequence[Event]) -> None:
        """The followed state to the publishers, with the events newer than any published."""
        fresh = tuple(e for e in events if e.at > self.seen_at)
        if fresh:
            self.seen_at = fresh[-1].at
        for publish in self.publishers:
            publish(state, fresh)

    async def run(self, stop: asyncio.Event, first: float | None = None) -> None:
        """Cycle on a fixed grid of ticks, `first` + k x interval (monotonic; default now).

        A late start (the loop was busy) does not shift the next tick, so a pool keeps its
        rate; a cycle that overran its next tick (a store that stalled) starts the next at
        once and rejoins the grid after it, the missed ticks are not made up. run_forever
        gives each pool its own phase, so a thousand pools do not all wake at the same
        instant (docs/benchmarks.md: with "sleep the rest" no driver was on time at 999
        nodes)."""
        interval = self.config.mpp.interval
        self.beating = True
        tick = time.monotonic() if first is None else first
        # one waiter on `stop` for the worker's life, not a task per cycle: at a thousand
        # nodes asyncio.wait_for(stop.wait(), delay) was a task, a timer and its cancel for
        # every pool-cycle; asyncio.wait on a standing future is a timer and a callback
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while True:
                delay = tick - time.monotonic()
                if delay > 0:
                    await asyncio.wait((stopped,), timeout=delay)
                if stop.is_set():
                    return
                started = time.monotonic()
                tick = next_tick(tick, started, interval)
                try:
                    await self.cycle()
                except NotLeader as err:  # deposed between two renewals: follow from now on
                    if self.leadership is not None:
                        self.leadership.lost()
                    log.warning("pool=%s not committed: %s", self.pool.name, err)
                except StoreError as err:  # keep polling: the next cycle may find it back
                    log.error("pool=%s store error: %s", self.pool.name, err)
        finally:
            stopped.cancel()

    def close(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.close()
        for prober in self.probers:
            prober.close()


# below it, the deadline is not cut to 0.8 x interval: a connect keeps up to its own timeout
_DEADLINE_FLOOR = 0.5


def probe_deadline(connect_timeout: float, query_timeout: float, interval: float) -> float:
    """How long a cycle waits for a node's probe: connect then the queries, and no longer
    than 0.8 of the interval, so that a pool with a hung node still cycles on time (the
    cycle's logic, store and publish get the rest). A probe cut here is a bad poll for the
    cycle; its thread may finish in the background and the next cycle skips it while it
    still runs. Not below min(connect_timeout, 0.5 s): with very short intervals a healthy
    but slow connect would otherwise read as a dead node."""
    return min(
        connect_timeout + 2 * query_timeout + 0.1,
        max(0.8 * interval, min(connect_timeout, _DEADLINE_FLOOR)),
    )


def next_tick(tick: float, started: float, interval: float) -> float:
    """The first tick of the grid `tick` + k x interval that comes after `started` (the
    start of the cycle planned for `tick`; a timer may wake it a hair before)."""
    return tick + interval * (math.floor(max(0.0, started - tick) / interval) + 1)


def phases(count: int, interval: float) -> list[float]:
    """Each pool's offset into the interval: pool j of n starts at j/n of it."""
    return [interval * j / count for j in range(count)]


def with_agents(
    observations: dict[str, Observation], views: Mapping[str, AgentView]
) -> dict[str, Observation]:
    """Each node's observation with its agent's view (`Observation.agent`); nodes without a
    report keep theirs as probed (agent None), so a pool without agents pays nothing more."""
    if not views:
        return observations
    return {
        node: replace(o, agent=views[node]) if node in views else o
        for node, o in observations.items()
    }


class Threads:
    """The probe threads and the store threads of a set of workers, shut down together."""

    def __init__(self, probes: int, store: int = 2) -> None:
        self.probes = ThreadPoolExecutor(max_workers=probes, thread_name_prefix="probe")
        self.store = ThreadPoolExecutor(max_workers=store, thread_name_prefix="store")

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self.probes.shutdown(wait=wait, cancel_futures=cancel_futures)
        self.store.shutdown(wait=wait, cancel_futures=cancel_futures)


def store_threads(store: Store, pools: list[PoolConfig]) -> int:
    """Store calls wait on the network (etcd: a few ms each, two or three per pool-cycle):
    with hundreds of pools two threads were the limit (3 instances x 333 pools on one etcd
    ran 0.15 cycles per pool per second at 25 % CPU each), so a thread per 16 pools, up to
    16. A store that serves one call at a time (SQLite) gets two: at 333 pools its 16
    threads queued on its lock, ~9 % of mpp's GIL samples (py-spy)."""
    if store.serves_at_once is not None:
        return max(2, store.serves_at_once)
    return max(2, min(16, -(-len(pools) // 16)))


def make_workers(
    config: Config,
    store: Store,
    pools: list[str] | None = None,
    publishers: tuple[Publisher, ...] = (),
    leadership: Leadership | None = None,
    locks: Callable[[str], asyncio.Lock] | None = None,
    reports_to: Callable[[str, dict[str, AgentReport]], None] | None = None,
    leases: Mapping[str, Leadership] | None = None,
) -> tuple[list[PoolWorker], Threads]:
    """`leases`: each pool's own Leadership (pools shared among instances), instead of the
    one `leadership` over all of them."""
    chosen = [config.get_pool(p) for p in pools] if pools else list(config.pool)
    threads = Threads(max(4, 2 * sum(len(p.node) for p in chosen)), store_threads(store, chosen))
    feed = FollowFeed(store, config.mpp.interval)
    workers = [
        PoolWorker(
            config,
            p,
            store,
            threads.probes,
            publishers,
            leases[p.name] if leases is not None else leadership,
            threads.store,
            locks(p.name) if locks else None,
            reports_to,
            feed,
        )
        for p in chosen
    ]
    return workers, threads


async def poll_once(workers: list[PoolWorker]) -> list[Decision | None]:
    """MPP's cron mode: one cycle of every pool, concurrently."""
    return list(await asyncio.gather(*(w.cycle() for w in workers)))


async def run_forever(
    workers: list[PoolWorker], stop: asyncio.Event, leadership: Leadership | Shards | None = None
) -> None:
    """Every pool's loop, and the lease renewal when several instances may share the store.
    The first renewal happens before the loops start, so a lone instance acts at once."""
    halt = None
    if leadership is not None:
        await asyncio.to_thread(leadership.renew)
        halt = leadership.start()
    try:
        now = time.monotonic()
        offsets = phases(len(workers), workers[0].config.mpp.interval) if workers else []
        await asyncio.gather(*(w.run(stop, now + o) for w, o in zip(workers, offsets, strict=True)))
    finally:
        if halt is not None:
            await asyncio.to_thread(halt)
