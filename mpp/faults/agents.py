"""One `mpp agent` process per sandbox node, as a database host runs it, for the scenarios
that prove what the agent adds (a local restart, a fence the agent does itself).

The agents watch the sandbox's own mariadbd (pid_file mode) rather than start it as a
child: the sandbox has already started every node, and a kill by the harness must look to
the agent exactly as a crash does. Their `start` command starts the node's mariadbd as an
init script would (`start_command`): in the background, in a session of its own, so the
new mariadbd is no child of the harness (which would keep a zombie the pid file names).

Each agent gets a config file written here (`agent_config`) and a log, both in a directory
the caller chooses (the scenario's, which outlives the sandbox). The fence keys the agent
reads from the store-and-lease design (`store`, `fence_ttl`, `peers`, `source_address`)
are written only when given, so the same helper runs an agent that does not know them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpp import sandbox
from mpp.sandbox.layout import PASSWORD_FILE, cnf_path, datadir, error_log, pid_file

__all__ = [
    "AgentProcess",
    "Agents",
    "FenceKeys",
    "agent_config",
    "start_command",
    "toml_value",
]

Scalar = str | int | float | bool
Value = Scalar | Sequence[Scalar]


def toml_value(value: Value) -> str:
    """A scalar or a flat list as TOML writes it (JSON's string escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(toml_value(v) for v in value) + "]"


def _table(keys: Mapping[str, Value]) -> str:
    return "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items())


def start_command(d: Path, node: str) -> list[str]:
    """The command that starts one sandbox node again (the agent's `start`), as an init
    script does: mariadbd with the node's own my.cnf and datadir, in a session of its own,
    in the background; the command returns at once and the agent waits for the pid file.
    Not the sandbox's `start_node` in a Python process: the interpreter's start would be
    most of the measured restart. The sandbox still finds the node (its pid file)."""
    d = d.resolve()
    argv = [
        shutil.which("mariadbd") or "/usr/sbin/mariadbd",
        f"--defaults-file={cnf_path(d, node)}",
        f"--datadir={datadir(d, node)}",  # how the sandbox recognises its own processes
    ]
    if os.geteuid() == 0:
        argv.append("--user=root")
    line = " ".join(shlex.quote(a) for a in argv)
    log = shlex.quote(str(error_log(d, node)))
    script = f"cd {shlex.quote(str(d / node))} && exec setsid {line} </dev/null >>{log} 2>&1 &"
    return ["/bin/sh", "-c", script]


@dataclass(frozen=True)
class FenceKeys:
    """The agent's keys for reports and the fence lease (docs/agent.md once merged):
    where the store is, the lease's length, the peers it TCP-probes for a majority, and the
    address its own sessions come from (the primary side's, in a partition scenario)."""

    store: str
    fence_ttl: str = "3s"
    peers: tuple[str, ...] = ()
    source_address: str | None = None

    def as_keys(self) -> dict[str, Value]:
        out: dict[str, Value] = {"store": self.store, "fence_ttl": self.fence_ttl}
        if self.peers:
            out["peers"] = list(self.peers)
        if self.source_address is not None:
            out["source_address"] = self.source_address
        return out


def agent_config(
    d: Path,
    node: str,
    directory: Path,
    pool: str = "main",
    fence: FenceKeys | None = None,
    mysqld: Mapping[str, Value] | None = None,
    probe: Mapping[str, Value] | None = None,
    extra: Mapping[str, Value] | None = None,
) -> Path:
    """Write `directory`/agent-NODE.toml for one sandbox node and return its path.

    Watch mode on the node's pid file with `start_command`; `[probe]` as the sandbox's mpp
    account (which may log in from any 127.0.0.x) with its password file; `mysqld`,
    `probe`, `extra` (top-level) override or add keys; `fence` adds the fence keys."""
    directory.mkdir(parents=True, exist_ok=True)
    d = d.resolve()
    port = {n.name: n.port for n in sandbox.status(d)}[node]
    top: dict[str, Value] = {
        "node": node,
        "pool": pool,
        "report_file": str(directory / f"agent-{node}.json"),
    }
    if fence is not None:
        top.update(fence.as_keys())
    top.update(extra or {})
    watch: dict[str, Value] = {
        "pid_file": str(pid_file(d, node)),
        "start": start_command(d, node),
        "retry_limit": 2,
        "retry_interval": "5m",
        **(mysqld or {}),
    }
    depth: dict[str, Value] = {
        "address": f"127.0.0.1:{port}",
        "user": sandbox.MPP_USER,
        "password_file": str(d / PASSWORD_FILE),
        "ping_interval": "500ms",
        "write_interval": "1s",
        "write_timeout": "2s",
        **(probe or {}),
    }
    if fence is not None and fence.source_address is not None:
        # a host's agent reaches its own server whatever partition the host is in: on one
        # loopback, its sessions come from the primary side's address too
        depth.setdefault("source_address", fence.source_address)
    path = directory / f"agent-{node}.toml"
    text = "# written by mpp.faults.agents\n" + _table(top)
    text += "\n[mysqld]\n" + _table(watch) + "\n[probe]\n" + _table(depth)
    path.write_text(text)
    return path


@dataclass
class AgentProcess:
    """`mpp agent --config FILE` as a process of its own, its output in a log file."""

    node: str
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def report_file(self) -> Path:
        return self.config.with_suffix(".json")

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mpp", "agent", "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the test run is the harness's to handle
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def report(self) -> dict[str, Any]:
        """The agent's last report file ({} before the first, or while it is replaced)."""
        try:
            doc: dict[str, Any] = json.loads(self.report_file.read_text())
        except (OSError, ValueError):
            return {}
        return doc

    def wait_report(self, what: str, check: Any, timeout: float = 30.0) -> dict[str, Any]:
        """Until the report satisfies `check`; TimeoutError naming `what`, the last report
        and the log's end otherwise (or RuntimeError at once if the agent exited)."""
        deadline = time.monotonic() + timeout
        while True:
            doc = self.report()
            if doc and check(doc):
                return doc
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"agent of {self.node} exited (rc {self.proc.returncode}) waiting for "
                    f"{what}; {self.tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"agent of {self.node}: no {what} in {timeout:g} s: {doc}")
            time.sleep(0.05)

    def tail(self, chars: int = 1500) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (a watched mysqld is left running, as the agent leaves it);
        SIGKILL if it outlives `timeout`. The exit status; None if never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


@dataclass
class Agents:
    """An agent per node of a sandbox, configs and logs in `directory`."""

    d: Path
    directory: Path
    pool: str = "main"
    fence: Mapping[str, FenceKeys] = field(default_factory=dict)  # node -> its fence keys
    mysqld: Mapping[str, Value] = field(default_factory=dict)
    probe: Mapping[str, Value] = field(default_factory=dict)
    extra: Mapping[str, Value] = field(default_factory=dict)
    running: dict[str, AgentProcess] = field(default_factory=dict)

    def start(self, timeout: float = 30.0) -> None:
        """Every node's agent, then until each one reports its mysqld held: a scenario's
        faults must not begin while an agent is still finding its server."""
        for n in sandbox.status(self.d):
            config = agent_config(
                self.d,
                n.name,
                self.directory,
                self.pool,
                self.fence.get(n.name),
                self.mysqld,
                self.probe,
                self.extra,
            )
            agent = AgentProcess(n.name, config, self.directory / f"agent-{n.name}.log")
            agent.report_file.unlink(missing_ok=True)  # a report of an earlier run is no news
            agent.start()
            self.running[n.name] = agent
        for agent in self.running.values():
            agent.wait_report("mysqld held", _holds, timeout)

    def restart(self, node: str, timeout: float = 30.0) -> None:
        """One node's agent stopped and started again on the same config, as an operator
        does after it gave up (giving up is final until then): a new agent finds mysqld
        down and starts it, or finds it running and watches it."""
        agent = self.running[node]
        agent.stop()
        agent.report_file.unlink(missing_ok=True)
        agent.start()
        agent.wait_report("mysqld held", _holds, timeout)

    def stop(self) -> dict[str, int | None]:
        """Every agent (before the sandbox goes: a stopped node must not be restarted)."""
        return {name: agent.stop() for name, agent in self.running.items()}

    def reports(self) -> dict[str, dict[str, Any]]:
        return {name: agent.report() for name, agent in self.running.items()}


def _holds(doc: dict[str, Any]) -> bool:
    """The report says mysqld runs under the agent (the keys of the report file today,
    and the AgentReport's `process` once the agent reports through the store)."""
    running = doc.get("running")
    if running is None:
        running = str(doc.get("process", "")).lower() == "running"
    return bool(running) and bool(doc.get("pid"))
