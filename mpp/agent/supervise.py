"""The agent's first duty: keep mysqld running, under the retry limit, and say what it saw.

A loop around `wait_exit`: a death is answered by the restart policy (mpp.agent.restarts),
and every change goes into the report (`report_file`, JSON, replaced atomically) and the
log. Reporting through mpp's store, so that the decision and `mpp status` include what only
the host sees, is the next step of issue 13; the report already carries those facts.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mpp.agent.depth import DepthProbe
from mpp.agent.mysqld import Mysqld
from mpp.agent.restarts import Ledger, on_death
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
        self, running: bool, pid: int | None, message: str, last_exit: str | None = None
    ) -> None:
        with self._lock:
            used = len(self.ledger.recent(time.monotonic(), self.interval))
            self.report = replace(
                self.report,
                running=running,
                pid=pid,
                message=message,
                last_exit=self.report.last_exit if last_exit is None else last_exit,
                restarts_used=used,
                gave_up=self.ledger.gave_up,
                at=time.time(),
            )
            self._write()
        log.info("agent node=%s %s", self.report.node, message)

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
                if now >= next_write:
                    status, ms, error = probe.write()
                    if status != self.report.write_status:
                        log.info("agent node=%s write probe %s %s", self.report.node, status, error)
                    changes.update(write_status=status, write_ms=ms, write_error=error)
                    next_write = time.monotonic() + write_every
                if changes:
                    with self._lock:
                        self.report = replace(self.report, at=time.time(), **changes)  # type: ignore[arg-type]
                        self._write()
                self.stop.wait(max(0.0, min(next_ping, next_write) - time.monotonic()))
        finally:
            probe.close()

    def run(self) -> None:
        """Until `stop` is set: hold mysqld up, or give up on it by the rules."""
        prober: threading.Thread | None = None
        if self.depth is not None:
            prober = threading.Thread(target=self._probe_depth, args=self.depth, daemon=True)
            prober.start()
        try:
            self._supervise()
        finally:
            self.stop.set()
            if prober is not None:
                prober.join(timeout=10)

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
            verdict = on_death(self.ledger, time.monotonic(), self.limit, self.interval)
            self.ledger = verdict.ledger
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
            pid = self.mysqld.start()
            self._publish(running=True, pid=pid, message=f"mysqld restarted (pid {pid})")
            self.systemd.status(self.report.message)
        self.systemd.stopping()
        self.mysqld.stop(self.stop_timeout)
