"""The agent's first duty: keep mysqld running, under the retry limit, and say what it saw.

A loop around `wait_exit`: a death is answered by the restart policy (mpp.agent.restarts),
unless the node is in maintenance (then the agent waits), and every change goes into the
report (`report_file`, JSON, replaced atomically), the log and, with a store, the renewal
thread (mpp.agent.renewal), which sends it to mpp; the fence check runs in a thread of its
own (mpp.agent.guard). Nothing here waits for the store or for a peer.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mpp.agent.depth import DepthProbe
from mpp.agent.guard import Guard
from mpp.agent.mysqld import Mysqld
from mpp.agent.renewal import Lease, Renewer, Seen, process_of, write_probe
from mpp.agent.restarts import Ledger, on_death
from mpp.model import AgentReport, Process
from mpp.publish.systemd import Systemd

log = logging.getLogger("mpp.agent")


@dataclass(frozen=True)
class Report:
    """What the agent knows about its mysqld, as it writes it."""

    node: str
    pool: str
    mode: str  # "child" or "pid_file"
    running: bool
    pid: int | None
    restarts_used: int
    retry_limit: int
    retry_interval_s: float
    gave_up: bool
    last_exit: str  # '' until mysqld has died once
    message: str
    at: float  # wall clock of this report: written at least every ping_interval with probes
    agent_pid: int
    # the in-depth probes ([probe]; None/"unknown" without it): an admin ping, and a write
    # that must commit (mpp.agent.depth)
    ping_ok: bool | None = None
    ping_ms: float | None = None
    ping_error: str = ""
    write_status: str = "unknown"
    write_ms: float | None = None
    write_error: str = ""
    # with a store (mpp.agent.renewal): what it sends, and what it read back
    process: str = Process.RUNNING.value
    stalled_for: float | None = None  # seconds the write probe has been stalled or failing
    fenced: str = ""  # why the agent made its server read-only; '' while it has not
    maintenance: bool = False
    seq: int = 0  # of the newest report built for the store
    renewed_ago: float | None = None  # seconds since the last renewal started (None: never)


class Supervisor:
    def __init__(
        self,
        mysqld: Mysqld,
        node: str,
        pool: str,
        limit: int,
        interval: float,
        report_file: Path | None = None,
        stop_timeout: float = 60.0,
    ) -> None:
        self.mysqld = mysqld
        self.limit = limit
        self.interval = interval
        self.report_file = report_file
        self.stop_timeout = stop_timeout
        self.stop = threading.Event()
        self._lock = threading.Lock()  # the report: the supervisor's and the probes' thread
        self.depth: tuple[DepthProbe, float, float] | None = None  # probe, ping, write every
        self.systemd = Systemd()  # READY once mysqld is held, the watchdog from the loop
        self.ledger = Ledger()
        self.lease = Lease(time.monotonic())
        self.renewer: Renewer | None = None  # with a store
        self.guard: Guard | None = None  # with a store: the fence check
        self.fence_ttl = 0.0
        self._bad_since: float | None = None  # monotonic: the write probe's first failure
        self._stopped = False  # the agent stopped its child on the way out
        self._killed_why = ""  # the guard killed a hung mysqld: its death is not restarted
        # with the ping probe: when the latest restart began (monotonic), until a ping that
        # started after it answers; the process is `restarting` until then
        self._restart_at: float | None = None
        # the process's changes not sent yet: each one goes to the store in its own report
        # (a restart's RESTARTING would otherwise be overtaken by RUNNING a moment later)
        self._unsent: deque[Report] = deque(maxlen=16)
        self.report = Report(
            node=node,
            pool=pool,
            mode=mysqld.mode,
            running=False,
            pid=None,
            restarts_used=0,
            retry_limit=limit,
            retry_interval_s=interval,
            gave_up=False,
            last_exit="",
            message="starting",
            at=time.time(),
            agent_pid=os.getpid(),
        )

    def _publish(
        self,
        running: bool,
        pid: int | None,
        message: str,
        last_exit: str | None = None,
        held: bool = False,
    ) -> None:
        with self._lock:
            used = len(self.ledger.recent(time.monotonic(), self.interval))
            answering = self._restart_at is None
            process = process_of(running, self.ledger.gave_up, held, self._stopped, answering)
            self.report = replace(
                self.report,
                running=running,
                pid=pid,
                message=message,
                last_exit=self.report.last_exit if last_exit is None else last_exit,
                restarts_used=used,
                gave_up=self.ledger.gave_up,
                process=process.value,
                at=time.time(),
            )
            self._write()
            if self.renewer is not None:
                self._unsent.append(self.report)
        log.info("agent node=%s %s", self.report.node, message)
        self._changed()

    def _answers_again(self) -> None:
        """The restarted mysqld answered a ping: the restart is over."""
        self._restart_at = None
        with self._lock:
            running, pid = self.report.running, self.report.pid
        if running:
            self._publish(running=True, pid=pid, message=f"mysqld answers again (pid {pid})")

    def _changed(self) -> None:
        if self.renewer is not None:
            self.renewer.poke.set()

    def kill_hung(self, why: str) -> bool:
        """The guard's last fence (rule 5 of mpp.agent.fencing): SIGKILL mysqld, and mark
        the death as final so that `_supervise` does not restart it."""
        pid = self.mysqld.pid()
        if pid is None:
            return False
        with self._lock:
            self.ledger = replace(self.ledger, gave_up=True)
            self._killed_why = why
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def set_fenced(self, why: str) -> None:
        """The guard's news: fenced (why), or writable again ('')."""
        with self._lock:
            self.report = replace(self.report, fenced=why, at=time.time())
            self._write()
        self._changed()

    def on_seen(self, seen: Seen) -> None:
        """What the renewal read back: maintenance into the report; mpp's ask to the guard."""
        with self._lock:
            held = seen.in_maintenance(time.time())
            self.report = replace(self.report, maintenance=held, at=time.time())
            self._write()
        if self.guard is not None and seen.asked:
            self.guard.poke.set()
        self._changed()

    def agent_report(self, seq: int) -> AgentReport:
        """The report as the store holds it, with this seq (the renewal thread's call)."""
        with self._lock:
            now = time.monotonic()
            stalled = None if self._bad_since is None else round(now - self._bad_since, 1)
            self.report = replace(
                self.report,
                seq=seq,
                maintenance=self.in_maintenance(),
                stalled_for=stalled,
                renewed_ago=round(self.lease.age(now), 2) if self.lease.renewals else None,
            )
            self._write()
            r = self.report
            if self._unsent:  # the oldest change not sent yet, with today's fence and probes
                old = self._unsent.popleft()
                r = replace(
                    r,
                    process=old.process,
                    pid=old.pid,
                    running=old.running,
                    last_exit=old.last_exit,
                    restarts_used=old.restarts_used,
                    message=old.message,
                )
            if self._unsent and self.renewer is not None:
                self.renewer.poke.set()
        message = r.message
        if r.write_status in ("stalled", "failed"):
            message = f"{message}; write probe {r.write_status} for {r.stalled_for:g} s: "
            message += r.write_error
        return AgentReport(
            node=r.node,
            pool=r.pool,
            seq=seq,
            fence_ttl=self.fence_ttl,
            process=Process(r.process),
            pid=r.pid,
            restarts_used=r.restarts_used,
            retry_limit=r.retry_limit,
            last_exit=r.last_exit,
            message=message,
            ping_ok=r.ping_ok,
            ping_ms=r.ping_ms,
            write=write_probe(r.write_status),
            write_ms=r.write_ms,
            write_error=r.write_error,
            stalled_for=r.stalled_for,
            fenced=r.fenced,
            sent_at=time.time(),
            agent_pid=r.agent_pid,
        )

    def in_maintenance(self) -> bool:
        return self.lease.seen.in_maintenance(time.time())

    def _write(self) -> None:
        if self.report_file is not None:
            tmp = self.report_file.with_name(f".{self.report_file.name}.tmp")
            tmp.write_text(json.dumps(asdict(self.report), indent=2) + "\n")
            os.replace(tmp, self.report_file)

    def _probe_depth(self, probe: DepthProbe, ping_every: float, write_every: float) -> None:
        """The in-depth probes on their own schedules until the agent stops; a change of
        the write's status is logged (a stall is news, each ok write is not)."""
        next_ping = next_write = time.monotonic()
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                changes: dict[str, object] = {}
                if now >= next_ping:
                    ok, ms, error = probe.ping()
                    changes.update(ping_ok=ok, ping_ms=ms, ping_error=error)
                    next_ping = now + ping_every
                    restarted = self._restart_at
                    if ok and restarted is not None and now >= restarted:
                        self._answers_again()
                if now >= next_write:
                    status, ms, error = probe.write()
                    if status != self.report.write_status:
                        log.info("agent node=%s write probe %s %s", self.report.node, status, error)
                    changes.update(write_status=status, write_ms=ms, write_error=error)
                    next_write = time.monotonic() + write_every
                if changes:
                    with self._lock:
                        status = str(changes.get("write_status", self.report.write_status))
                        if status not in ("stalled", "failed"):
                            self._bad_since = None
                        elif self._bad_since is None:
                            self._bad_since = time.monotonic()
                        self.report = replace(self.report, at=time.time(), **changes)  # type: ignore[arg-type]
                        self._write()
                    self._changed()
                self.stop.wait(max(0.0, min(next_ping, next_write) - time.monotonic()))
        finally:
            probe.close()

    def run(self) -> None:
        """Until `stop` is set: hold mysqld up, or give up on it by the rules."""
        threads: list[threading.Thread] = []
        if self.depth is not None:
            threads.append(threading.Thread(target=self._probe_depth, args=self.depth))
        if self.renewer is not None:
            self.renewer.on_seen = self.on_seen
            self.renewer.start_seq_after()
            threads.append(threading.Thread(target=self.renewer.run, name="renewal"))
        if self.guard is not None:
            threads.append(threading.Thread(target=self.guard.run, name="guard"))
        for t in threads:
            t.daemon = True  # a store call hung past the join below must not hold the exit
            t.start()
        try:
            self._supervise()
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=10)
            stuck = any(t.is_alive() and t.name == "renewal" for t in threads)
            if self.renewer is not None and (stuck or not self.renewer.taking):
                # still in a store call, or the last one failed: a last report would only
                # hold up the exit (a systemd stop) for another store timeout
                log.warning(
                    "agent node=%s the store does not answer: no last report", self.report.node
                )
            elif self.renewer is not None:  # the last word: mysqld stopped, or left running
                with self._lock:
                    self._unsent.clear()  # the state now, not the changes on the way to it
                self.renewer.put(self.agent_report(self.renewer.seq + 1))

    def _supervise(self) -> None:
        pid = self.mysqld.pid()
        if pid is None:
            pid = self.mysqld.start()
            self._publish(running=True, pid=pid, message=f"mysqld started (pid {pid})")
        else:
            self._publish(running=True, pid=pid, message=f"watching mysqld (pid {pid})")
        self.systemd.ready(f"holding mysqld of {self.report.node} (pid {pid})")
        while not self.stop.is_set():
            self.systemd.alive()
            ended = self.mysqld.wait_exit(0.1)
            if ended is None or self.stop.is_set():
                continue
            if self.in_maintenance() and self._hold(ended):
                continue  # back by the operator's hand
            if self.stop.is_set():
                break
            verdict = on_death(self.ledger, time.monotonic(), self.limit, self.interval)
            self.ledger = verdict.ledger
            if self._killed_why:
                verdict = replace(verdict, why=f"killed by its agent: {self._killed_why}")
            if not verdict.restart:
                self._publish(
                    running=False,
                    pid=None,
                    last_exit=ended,
                    message=f"mysqld {ended}; {verdict.why}",
                )
                self.systemd.status(self.report.message)
                while not self.stop.wait(1.0):  # left for the operator: only say so
                    self.systemd.alive()
                break
            self._publish(
                running=False, pid=None, last_exit=ended, message=f"mysqld {ended}; {verdict.why}"
            )
            if self.depth is not None:
                self._restart_at = time.monotonic()
            pid = self.mysqld.start()
            self._publish(running=True, pid=pid, message=f"mysqld restarted (pid {pid})")
            self.systemd.status(self.report.message)
        self.systemd.stopping()
        self.mysqld.stop(self.stop_timeout)
        if self.mysqld.mode == "child":
            self._stopped = True
            self._publish(running=False, pid=None, message="mysqld stopped: the agent stops")
        else:
            pid = self.mysqld.pid()
            self._publish(running=pid is not None, pid=pid, message="the agent stops")

    def _hold(self, ended: str) -> bool:
        """Maintenance: a dead mysqld is reported and not restarted. True when it is back
        (the operator started it; pid_file mode), False when maintenance ended with it still
        down (then it is a death like any other) or the agent stops."""
        self._publish(
            running=False,
            pid=None,
            last_exit=ended,
            held=True,
            message=f"mysqld {ended}; in maintenance: not restarted",
        )
        while not self.stop.wait(0.2):
            self.systemd.alive()
            pid = self.mysqld.pid()
            if pid is not None:
                self._publish(running=True, pid=pid, message=f"mysqld back (pid {pid})")
                return True
            if not self.in_maintenance():
                log.info("agent node=%s maintenance over, mysqld still down", self.report.node)
                return False
        return False
