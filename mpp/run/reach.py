"""The instance's checkpoints, probed every interval beside the pools' cycles.

A round probes every `[[checkpoint]]` at once in threads of its own, each under an asyncio
deadline (its timeout plus a margin: a name lookup is not bounded by the socket timeout),
so a silent checkpoint costs its own probe a timeout and nothing else: not the event loop
that serves the checks and the router, not a pool's cycle. A probe still running from the
last round counts as failed again instead of queueing a second one.

The verdict (mpp.logic.reach) is read by the lease (mpp.run.leadership: a cut-off instance
neither takes nor keeps it), by the pool workers (no decision while cut off), by the Hub's
surfaces (rw DOWN for every node) and is written to the store for `mpp status` and
`mpp check` (`Store.put_reach`). A change of verdict is handed to the listeners (the pool
workers record it in each pool's history).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from mpp.config import Config
from mpp.logic.reach import judge, probed
from mpp.model import (
    CheckpointSpec,
    CheckpointState,
    Cut,
    Event,
    EventKind,
    PoolState,
    Reach,
    ReachReport,
)
from mpp.probe.checkpoint import Result, probe
from mpp.store import Store, StoreError

log = logging.getLogger("mpp")

_MARGIN = 0.5  # over a checkpoint's timeout, for the name lookup and the thread's start

Listener = Callable[[Reach, Reach], Awaitable[None]]


class ReachMonitor:
    def __init__(
        self,
        config: Config,
        store: Store | None = None,
        store_threads: ThreadPoolExecutor | None = None,
    ) -> None:
        self.specs: list[CheckpointSpec] = [c.spec() for c in config.checkpoint]
        self.instance = config.mpp.name
        self.interval = config.mpp.interval
        self.source = config.mpp.source_address
        self.store = store
        self.store_threads = store_threads
        self.threads = ThreadPoolExecutor(
            max_workers=max(1, len(self.specs)), thread_name_prefix="checkpoint"
        )
        self.states = {
            s.name: CheckpointState(s.name, s.kind, s.target, s.fail_after) for s in self.specs
        }
        self.verdict = Reach()
        self.at = 0.0  # when the verdict was made (0: no round yet)
        self.listeners: list[Listener] = []
        self._running: dict[str, Future[Result]] = {}
        self._store_error = ""
        # when the last cut ended (None: no cut, or every pool decided afresh since): the
        # states this instance publishes date from before it; until a pool's state is newer
        # its rw stays DOWN (writes_barred): a primary killed or fenced during the cut must
        # not be told UP from a state that never saw it
        self.healed_at: float | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.specs)

    def barred(self) -> str:
        """Why this instance may not lead nor send writes ("" when it may). Read from the
        lease thread and the event loop: the verdict is one frozen value, replaced whole."""
        verdict = self.verdict
        return f"cut off ({verdict.cut.value}): {verdict.reason}" if verdict.cut_off else ""

    def report(self) -> ReachReport:
        return ReachReport(
            self.instance, self.at or time.time(), self.verdict, tuple(self.states.values())
        )

    async def _one(self, spec: CheckpointSpec) -> Result:
        running = self._running.get(spec.name)
        if running is not None and not running.done():
            return False, "the last probe is still running (no answer)", 0.0
        future = self.threads.submit(probe, spec, self.source)
        self._running[spec.name] = future
        try:
            return await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(future)), spec.timeout + _MARGIN
            )
        except TimeoutError:
            return False, f"no answer within {spec.timeout + _MARGIN:g}s", 0.0

    async def round(self) -> Reach:
        """Probe every checkpoint once, judge, tell the listeners of a change, and write
        the report to the store (in a store thread)."""
        if not self.enabled:
            return self.verdict
        results = await asyncio.gather(*(self._one(s) for s in self.specs))
        now = time.time()
        for spec, (ok, why, ms) in zip(self.specs, results, strict=True):
            self.states[spec.name] = probed(self.states[spec.name], ok, why, now, ms or None)
        before, self.verdict, self.at = self.verdict, judge(list(self.states.values())), now
        if before.cut_off and not self.verdict.cut_off:
            self.healed_at = now
        if (before.cut, before.cut_off) != (self.verdict.cut, self.verdict.cut_off):
            self._log(before, self.verdict)
            for listener in self.listeners:
                try:
                    await listener(before, self.verdict)
                except Exception:  # one pool's failure must not keep the lease from going
                    log.exception("checkpoints: a listener of the verdict failed")
        if self.store is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.store_threads, self._put, self.report())
        return self.verdict

    async def settle(self) -> Reach:
        """Rounds back to back until no checkpoint is failing without yet counting as
        failed (at most the largest `fail_after`): the verdict a start or `mpp poll` acts
        on, so an instance that starts cut off never takes the lease for a moment."""
        verdict = await self.round()
        for _ in range(max((s.fail_after for s in self.specs), default=1) - 1):
            if not any(c.ok is False and not c.failed for c in self.states.values()):
                break
            verdict = await self.round()
        return verdict

    def _put(self, report: ReachReport) -> None:
        assert self.store is not None
        try:
            self.store.put_reach(report)
        except StoreError as err:  # cut off from the store too, often: said once
            if str(err) != self._store_error:
                log.warning("checkpoints: report not stored: %s", err)
                self._store_error = str(err)
            return
        self._store_error = ""

    def _log(self, before: Reach, now: Reach) -> None:
        if now.cut_off:
            log.error(
                "checkpoints: %s is %s; it gives up its lease, decides nothing and sends "
                "no writes from this site",
                self.instance,
                self.barred(),
            )
        elif now.cut is Cut.GLOBAL:
            log.warning("checkpoints: %s: %s", self.instance, now.warning)
        else:
            log.warning("checkpoints: %s: the checkpoints answer again", self.instance)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.round()
            except Exception:  # a bug here must not end the checkpoints' loop silently
                log.exception("checkpoints: round failed")
            delay = max(0.0, self.interval - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def close(self) -> None:
        self.threads.shutdown(wait=False, cancel_futures=True)


def writes_barred(
    monitor: ReachMonitor, states: Callable[[], Iterable[PoolState | None]]
) -> Callable[[], str]:
    """What the checks and the router ask before answering rw: the cut itself, then, after
    it ended, until every pool's published state was decided after the end (a state from
    before it may name as ACTIVE a primary that died or was fenced meanwhile)."""

    def barred() -> str:
        why = monitor.barred()
        healed = monitor.healed_at
        if why or healed is None:
            return why
        # a pool with no state yet answers DOWN by itself (roles: nothing known)
        if all(s is None or (s.updated_at or 0.0) >= healed for s in states()):
            monitor.healed_at = None
            return ""
        return "back from a cut: no writes until this instance has decided afresh"

    return barred


def reach_event(pool: str, instance: str, before: Reach, now: Reach, at: float) -> Event:
    """The pool's history line for a change of verdict: who, where the cut is, and what
    it means for this pool (no failover from an instance cut off)."""
    old = before.cut.value if before.cut_off or before.cut is Cut.GLOBAL else "reachable"
    if now.cut_off:
        new = f"cut off ({now.cut.value})"
        why = (
            f"mpp {instance} is cut off ({now.cut.value}): {now.reason}; it resigns its "
            "lease, fails over nothing it cannot see, and its checks send no writes"
        )
    elif now.cut is Cut.GLOBAL:
        new = "GLOBAL (warning)"
        why = f"mpp {instance}: {now.warning}"
    else:
        new = "reachable"
        why = f"mpp {instance}: the checkpoints answer again; it may lead and send writes"
    return Event(at, pool, "-", EventKind.POOL, old, new, why)
