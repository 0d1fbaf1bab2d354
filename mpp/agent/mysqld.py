"""The mysqld the agent holds: its own child, or a process named by a pid file.

A child's death is seen at once with its exit status (`wait`); a watched process is found
gone by polling its pid (its status belongs to whoever started it). Both are restarted the
way they were started: the same command line, or the configured `start` command.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Protocol


def describe_exit(returncode: int) -> str:
    """'killed by signal 9 (SIGKILL)' or 'exited with status 1'."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-returncode} ({name})"
    return f"exited with status {returncode}"


class Mysqld(Protocol):
    mode: str

    def start(self) -> int | None:
        """Start it; its pid (None if it is not known yet)."""

    def wait_exit(self, timeout: float) -> str | None:
        """Block up to `timeout` s; how it ended if it is gone, else None."""

    def pid(self) -> int | None: ...

    def stop(self, timeout: float) -> None:
        """On the agent's own shutdown: only a child is stopped (SIGTERM, then SIGKILL)."""


class Child:
    mode = "child"

    def __init__(self, command: list[str], log: Path | None = None) -> None:
        self.command = command
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int | None:
        out = open(self.log, "ab") if self.log is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C to the agent is the agent's, not mysqld's
            )
        finally:
            if self.log is not None and not isinstance(out, int):
                out.close()
        return self.proc.pid

    def pid(self) -> int | None:
        return None if self.proc is None or self.proc.returncode is not None else self.proc.pid

    def wait_exit(self, timeout: float) -> str | None:
        if self.proc is None:
            return "not started"
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return describe_exit(code)

    def stop(self, timeout: float) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        self.proc.send_signal(signal.SIGCONT)  # a stopped (hung) mysqld must hear it
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class Watched:
    """A mysqld someone else starts: the agent reads its pid file and polls the pid."""

    mode = "pid_file"

    def __init__(self, pid_file: Path, start_command: list[str], poll: float = 0.1) -> None:
        self.pid_file = pid_file
        self.start_command = start_command
        self.poll = poll
        self._pid: int | None = None

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def pid(self) -> int | None:
        if self._pid is None:
            self._pid = self._read_pid()
        return self._pid if self._pid is not None and _alive(self._pid) else None

    def start(self, settle: float = 30.0) -> int | None:
        """Run the start command, then wait (up to `settle` s) for the pid file to name a
        live process: an init script may return before mysqld has written it."""
        subprocess.run(
            self.start_command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
            check=False,
        )
        deadline = time.monotonic() + settle
        while True:
            self._pid = None  # whatever the pid file now says
            pid = self.pid()
            if pid is not None or time.monotonic() >= deadline:
                return pid
            time.sleep(self.poll)

    def wait_exit(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            if self.pid() is None:
                gone, self._pid = self._pid, None
                return f"process {gone} gone" if gone else f"no live process in {self.pid_file}"
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(self.poll, max(0.0, deadline - time.monotonic())))

    def stop(self, timeout: float) -> None:
        """Not the agent's to stop: whoever started it stops it."""


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True
