"""The agent's reports through mpp's store: each one renews its fence lease.

A thread of its own, so that a store that hangs (etcd cut off, a locked SQLite file) never
holds up the supervision of mysqld. It puts a report every `fence_ttl / 3`, and at once
when something a reader cares about changed (the process, restarts, the probes' status,
the fence, maintenance). After each put it reads the pool's state: maintenance of its node,
and whether mpp asks it to fence (`PoolState.fencing`).

The lease is measured on this host's monotonic clock from when a successful put STARTED:
the write lands at some moment during the call, and mpp dates a report by when it first
sees its seq (never before it landed), so the agent's lease never outlives mpp's estimate
of it. A put that raised (StoreError) renews nothing, even if it did land: the agent then
fences earlier than mpp expects, never later. Every put has a new seq, so a report that
landed late is never mistaken for a later one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mpp.model import AgentReport, NodeState, PoolState, Process, WriteProbe
from mpp.store import Store, StoreError

log = logging.getLogger("mpp.agent")


@dataclass(frozen=True)
class Seen:
    """What the agent read back from the store, for the supervisor and the guard. The
    maintenance window is kept, not a yes/no: one with an end stops holding the node at
    that end even while the store cannot be read."""

    maintenance_since: float | None = None
    maintenance_until: float | None = None
    asked: str = ""  # "mpp asked: ..." while the node is in the pool state's fencing

    def in_maintenance(self, now: float) -> bool:
        since, until = self.maintenance_since, self.maintenance_until
        return NodeState("", maintenance_since=since, maintenance_until=until).in_maintenance(now)


def seen_in(state: PoolState | None, node: str, now: float) -> Seen:
    """The pool's state as it concerns this node (an unknown pool or node: nothing)."""
    if state is None:
        return Seen()
    asked = ""
    if node in state.fencing:
        asked = f"mpp asked: {node} is in pool {state.name}'s fencing list"
    if not state.has(node) or not state.node(node).in_maintenance(now):
        return Seen(asked=asked)  # none, or one that is over already
    n = state.node(node)
    return Seen(n.maintenance_since, n.maintenance_until, asked)


def significant(report: AgentReport) -> tuple[object, ...]:
    """The fields whose change is sent at once (latencies and counters of time are not)."""
    return (
        report.process,
        report.pid,
        report.restarts_used,
        report.last_exit,
        report.message,
        report.ping_ok,
        report.write,
        report.write_error,
        report.fenced,
    )


class Lease:
    """The renewal thread's writes, the guard's and supervisor's reads (one lock)."""

    def __init__(self, now: float) -> None:
        self._lock = threading.Lock()
        self._renewed = now  # before the first renewal: the agent's start
        self._seen = Seen()
        self.renewals = 0

    def renewed(self, at: float) -> None:
        with self._lock:
            self._renewed = max(self._renewed, at)
            self.renewals += 1

    def age(self, now: float) -> float:
        with self._lock:
            return now - self._renewed

    @property
    def seen(self) -> Seen:
        with self._lock:
            return self._seen

    def see(self, seen: Seen) -> None:
        with self._lock:
            self._seen = seen


class Renewer:
    def __init__(
        self,
        store: Store,
        pool: str,
        node: str,
        fence_ttl: float,
        build: Callable[[int], AgentReport],
        lease: Lease,
        stop: threading.Event,
    ) -> None:
        self.store = store
        self.pool = pool
        self.node = node
        self.period = fence_ttl / 3
        self.build = build  # the supervisor's report with this seq
        self.lease = lease
        self.stop = stop
        self.poke = threading.Event()  # something changed: send now
        self.on_seen: Callable[[Seen], None] = lambda seen: None
        self.seq = _first_seq()
        self._errors: dict[str, str] = {}  # per operation, the error last logged

    @property
    def taking(self) -> bool:
        """The last put went through (or none was tried yet)."""
        return "put" not in self._errors

    def start_seq_after(self) -> None:
        """Continue above the stored report's seq (an agent restarted on a fast clock)."""
        try:
            old = self.store.reports(self.pool).get(self.node)
        except Exception as err:  # the store's trouble, whatever its type: reported
            self._failed("read", err)
            return
        if old is not None:
            self.seq = max(self.seq, old.seq)

    def run(self) -> None:
        last: tuple[object, ...] | None = None
        due = 0.0
        while not self.stop.is_set():
            self.poke.wait(max(0.0, due - time.monotonic()))
            self.poke.clear()
            if self.stop.is_set():
                break
            report = self.build(self.seq + 1)
            if time.monotonic() < due and significant(report) == last:
                continue
            started = self.put(report)
            due = started + self.period
            last = significant(report)
            self.read()

    def put(self, report: AgentReport) -> float:
        """One renewal; when it started (monotonic)."""
        self.seq = report.seq
        started = time.monotonic()
        try:
            self.store.put_report(report)
        except Exception as err:  # StoreError, or a backend's own error: not renewed
            self._failed("put", err)
            return started
        self.lease.renewed(started)
        self._ok("put")
        return started

    def read(self) -> None:
        try:
            snapshot = self.store.load(self.pool)
        except Exception as err:  # StoreError, or a backend's own error: keep what we knew
            self._failed("load", err)
            return
        self._ok("load")
        seen = seen_in(snapshot.state if snapshot else None, self.node, time.time())
        if seen != self.lease.seen:
            log.info(
                "agent node=%s pool state: maintenance %s%s",
                self.node,
                "on" if seen.in_maintenance(time.time()) else "off",
                f"; {seen.asked}" if seen.asked else "",
            )
            self.lease.see(seen)
            self.on_seen(seen)

    def _failed(self, what: str, err: Exception) -> None:
        text = str(err) if isinstance(err, StoreError) else f"{type(err).__name__}: {err}"
        if self._errors.get(what) != text:  # each new error once, not every renewal
            log.warning("agent node=%s store %s failed: %s", self.node, what, text)
            self._errors[what] = text

    def _ok(self, what: str) -> None:
        if self._errors.pop(what, None) is not None:
            log.info("agent node=%s store %s works again", self.node, what)


def _first_seq() -> int:
    """Milliseconds of the wall clock: above any seq an earlier run of this agent sent,
    unless the clock went back (then the stored seq is continued, start_seq_after)."""
    return int(time.time() * 1000)


def process_of(
    running: bool, gave_up: bool, held: bool, stopped: bool, answering: bool = True
) -> Process:
    """The report's process field from what the supervisor knows. A restarted mysqld is
    still `restarting` until it answers a ping (`answering`): a process that runs is not
    yet a server that serves."""
    if running:
        return Process.RUNNING if answering else Process.RESTARTING
    if gave_up:
        return Process.GAVE_UP
    if stopped or held:  # the agent stopped it, or maintenance keeps it down
        return Process.STOPPED
    return Process.RESTARTING


def write_probe(status: str) -> WriteProbe:
    try:
        return WriteProbe(status)
    except ValueError:
        return WriteProbe.UNKNOWN
