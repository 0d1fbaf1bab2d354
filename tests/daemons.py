"""`mpp` as a child process of a test: one command, or `mpp run` in the background."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path


def mpp_command(config: Path, *args: str) -> list[str]:
    """The command line of `mpp --config CONFIG ARGS` run by this Python."""
    return [sys.executable, "-m", "mpp", "--config", str(config), *args]


class MppRun:
    """`mpp run --no-live` on `config`, its stdout and stderr in `log` (wide, so that
    tables are not wrapped). `stop()` ends it with SIGTERM and checks it exited 0."""

    def __init__(self, config: Path, log: Path, open_files: int | None = None) -> None:
        """`open_files`: run it under that descriptor limit (soft and hard, `ulimit -n`)."""
        self.log = log

        def limit() -> None:
            if open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        with log.open("w") as out:
            self.process = subprocess.Popen(
                mpp_command(config, "run", "--no-live"),
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "COLUMNS": "200"},
                preexec_fn=limit if open_files is not None else None,
            )
        self.pid = self.process.pid
        self.killed = False

    def kill(self) -> None:
        """kill -9, as a crash would: no resignation, no clean exit."""
        self.killed = True
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> str:
        """SIGTERM, and the log once it has exited; an exit other than 0 fails the test
        (unless it was killed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        text = self.log.read_text()
        assert self.killed or code == 0, f"mpp run exited {code}:\n{text[-3000:]}"
        return text
