"""What a node agent (mpp.agent, beside each mysqld) tells mpp, and mpp's view of it.

The agent sees what no remote probe can: how mysqld died, how many local restarts are left,
whether a write can still commit. It publishes an AgentReport through the store; each new
report renews its fence lease (`seq` goes up). mpp never compares clocks across hosts: the
reader dates a report by when it first saw that `seq` (AgentView.age), which is never earlier
than the agent's own renewal, so mpp's estimate of when the lease ran out is never early.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Process(enum.StrEnum):
    """mysqld as its agent holds it."""

    RUNNING = "running"
    RESTARTING = "restarting"  # it died; a local restart is under way (restarts were left)
    GAVE_UP = "gave_up"  # it died with the restarts used up: left for the operator
    STOPPED = "stopped"  # the agent is shutting down and stopped it


class WriteProbe(enum.StrEnum):
    """The agent's in-depth write (sql_log_bin = 0, never replicated)."""

    UNKNOWN = "unknown"  # no write probe configured, or none finished yet
    OK = "ok"
    STALLED = "stalled"  # pings answer but the write did not commit within its timeout
    FAILED = "failed"  # the write returned an error


@dataclass(frozen=True)
class AgentReport:
    """One report, as the agent writes it (the store keeps the newest per node)."""

    node: str
    pool: str
    seq: int  # renewal counter: every report renews the fence lease
    fence_ttl: float  # the agent fences a writable server it could not renew within this long
    process: Process
    pid: int | None = None
    restarts_used: int = 0
    retry_limit: int = 0
    last_exit: str = ""  # e.g. "killed by signal 9"; '' until mysqld died once
    message: str = ""
    ping_ok: bool | None = None
    ping_ms: float | None = None
    write: WriteProbe = WriteProbe.UNKNOWN
    write_ms: float | None = None
    write_error: str = ""
    stalled_for: float | None = None  # seconds the write probe has been stalled or failing
    fenced: str = ""  # why the agent made its server read-only; '' while it has not
    sent_at: float = 0.0  # the agent host's wall clock: shown to people, never compared
    agent_pid: int = 0

    @property
    def dead(self) -> bool:
        """The agent confirms mysqld is not running and will not be restarted by it."""
        return self.process in (Process.GAVE_UP, Process.STOPPED)

    @property
    def summary(self) -> str:
        """What only the host sees, in the words `mpp status` shows."""
        parts = []
        if self.process is Process.GAVE_UP:
            parts.append(f"mysqld {self.last_exit or 'stopped'}, restarts exhausted")
        elif self.process is Process.RESTARTING:
            died = self.last_exit or "died"
            parts.append(f"mysqld {died}, restart {self.restarts_used}/{self.retry_limit}")
        elif self.process is Process.STOPPED:
            parts.append("mysqld stopped by its agent")
        elif self.last_exit:
            parts.append(
                f"mysqld running again after {self.last_exit} "
                f"(restarts {self.restarts_used}/{self.retry_limit})"
            )
        if self.write is WriteProbe.STALLED:
            parts.append(f"write probe stalled {self.stalled_for or 0:.0f} s")
        elif self.write is WriteProbe.FAILED:
            parts.append("write probe failing")
        if self.fenced:
            parts.append(f"fenced by its agent: {self.fenced}")
        return "; ".join(parts)


@dataclass(frozen=True)
class AgentView:
    """A report as mpp sees it: `age` seconds since mpp first saw this `seq`."""

    report: AgentReport
    age: float

    @property
    def lease_left(self) -> float:
        """Seconds until the agent's fence lease runs out at the latest (<= 0: it ran out)."""
        return self.report.fence_ttl - self.age
