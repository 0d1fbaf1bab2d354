"""The sandbox's public verbs: bring it up (idempotently), down, destroy it, report on it,
and stop or start one node to inject a failure."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from mpp.sandbox.accounts import ensure_password, provision
from mpp.sandbox.errors import SandboxError
from mpp.sandbox.layout import (
    HOST,
    LOCK_FILE,
    STATE_FILE,
    TEMPLATE_DIR,
    datadir,
    is_initialised,
    socket_path,
)
from mpp.sandbox.mpp_config import write_mpp_config
from mpp.sandbox.processes import (
    check_port_free,
    proc_state,
    running_pid,
    send_signal,
    wait_all_gone,
)
from mpp.sandbox.replication import configure_replication, create_app_database
from mpp.sandbox.server import find_program, initialise, start
from mpp.sandbox.sessions import root_session
from mpp.sandbox.state import (
    NodeRecord,
    State,
    Topology,
    find_node,
    load_state,
    locked,
    new_state,
    require_state,
    same_layout,
    save_state,
)
from mpp.sandbox.tls import make_certificates


@dataclass(frozen=True)
class SandboxNode:
    """One node as callers see it: where it listens and whether it runs right now."""

    name: str
    port: int
    server_id: int
    datadir: Path
    pid: int | None
    running: bool


def up(
    directory: Path,
    nodes: int = 3,
    base_port: int = 33061,
    topology: Topology = "master-master",
    progress: Callable[[str], None] | None = None,
    api: str | None = None,
    read_only_start: bool = False,
    tls: bool = False,
) -> list[SandboxNode]:
    """Bring the sandbox to "all nodes running and replicating", doing only what is missing.

    Idempotent so that the demo and the tests can call it unconditionally: running nodes
    are left alone, stopped ones are restarted with their data, and replication and the
    ``app`` database are set up only once (re-doing them would undo a failover performed
    by mpp in the meantime).
    """
    if topology not in get_args(Topology):
        raise SandboxError(f"unknown topology {topology!r}; use one of {get_args(Topology)}")
    if nodes < 1:
        raise SandboxError(f"a sandbox needs at least one node, not {nodes}")
    if not 1024 <= base_port <= 65535 - nodes + 1:
        raise SandboxError(f"base port {base_port} leaves no room for {nodes} nodes")

    say = progress or _silent
    started_at = time.monotonic()
    d = directory.resolve()
    mariadbd = find_program("mariadbd")  # before touching the disk
    d.mkdir(parents=True, exist_ok=True)
    with locked(d):
        state = load_state(d)
        if state is not None and not same_layout(state, nodes, base_port, topology):
            if any(is_initialised(d, rec.name) for rec in state.nodes):
                raise SandboxError(
                    f"the sandbox in {d} has {len(state.nodes)} node(s), {state.topology}, "
                    f"base port {state.base_port}; you asked for {nodes} node(s), {topology}, "
                    f"base port {base_port}. Pass the same options, or run "
                    "`mpp sandbox destroy` (or use another directory) to start over"
                )
            state = None  # an earlier attempt failed before building anything; re-plan
        if state is None:
            state = new_state(nodes, base_port, topology)
            state.read_only_start = read_only_start
            state.tls = tls
        if state.tls:
            make_certificates(d)  # before any my.cnf names them

        running = _resume_frozen(d, state, say)
        to_start = [rec for rec in state.nodes if rec.name not in running]
        for rec in to_start:
            check_port_free(rec)
        save_state(d, state)
        password = ensure_password(d)

        fresh = [rec for rec in state.nodes if not is_initialised(d, rec.name)]
        if fresh:
            initialise(d, state, fresh, say)

        for rec in state.nodes:
            if rec.name in running:
                rec.pid = running[rec.name]
                say(f"{rec.name}: already running on {HOST}:{rec.port} (pid {rec.pid})")
        start(d, state, to_start, mariadbd, say)

        for rec in state.nodes:
            with root_session(rec) as conn:
                provision(conn, password)
            rec.provisioned = True
        save_state(d, state)

        targets = state.nodes if not state.replication_configured else fresh
        configure_replication(state, targets, say)
        state.replication_configured = True
        save_state(d, state)

        if not state.app_database_created:
            create_app_database(state, say)
            state.app_database_created = True
            save_state(d, state)

        write_mpp_config(d, state, say, api)
        say(
            f"sandbox: {len(state.nodes)} node(s) {state.topology} ready in "
            f"{time.monotonic() - started_at:.1f} s ({d})"
        )
        return _snapshot(d, state)


def down(directory: Path) -> list[str]:
    """Stop every node we started and keep the data, so a later ``up`` resumes the cluster.

    Nodes are stopped in parallel with SIGTERM (a clean InnoDB shutdown, so the next start
    needs no crash recovery) and SIGKILLed only if they outlive the grace period.
    """
    d = directory.resolve()
    if not (d / STATE_FILE).exists():
        return []
    with locked(d):
        state = load_state(d)
        if state is None:
            return []
        victims = [(rec, pid) for rec in state.nodes if (pid := running_pid(d, rec)) is not None]
        for _rec, pid in victims:
            send_signal(pid, signal.SIGTERM)
            # A SIGSTOPped node would never act on the SIGTERM.
            send_signal(pid, signal.SIGCONT)
        wait_all_gone(victims)
        for rec in state.nodes:
            rec.pid = None
        save_state(d, state)
        return [rec.name for rec, _pid in victims]


def destroy(directory: Path) -> list[str]:
    """Stop the nodes and delete the directory, for tests and for a fresh demo."""
    d = directory.resolve()
    if not d.exists():
        return []
    markers = (STATE_FILE, TEMPLATE_DIR, LOCK_FILE)
    looks_like_sandbox = any((d / m).exists() for m in markers) or not any(d.iterdir())
    if not looks_like_sandbox:
        # Refuse rather than rmtree a directory someone pointed us at by mistake.
        raise SandboxError(f"{d} does not look like a sandbox (no {STATE_FILE}); not removing it")
    state = load_state(d)
    stopped = down(d)
    for rec in state.nodes if state else []:
        # Only a too-long path puts the socket outside D (see layout.socket_path).
        sock = socket_path(d, rec.name)
        if not sock.is_relative_to(d):
            sock.unlink(missing_ok=True)
    shutil.rmtree(d)
    return stopped


def status(directory: Path) -> list[SandboxNode]:
    """Report which nodes are alive, judged from /proc rather than from what we recorded."""
    d = directory.resolve()
    state = load_state(d)
    if state is None:
        return []
    return _snapshot(d, state)


def nodes(directory: Path) -> list[SandboxNode]:
    """Alias of ``status`` for callers that want the node list rather than a health view."""
    return status(directory)


def stop_node(directory: Path, name: str, sig: int = signal.SIGKILL) -> None:
    """Inject a failure into one node: crash (SIGKILL), clean stop (SIGTERM), hang (SIGSTOP).

    For SIGKILL and SIGTERM this returns only once the process is gone, so a test can
    rely on the port being closed. A SIGTERM is followed by SIGCONT so that a hung node
    can still shut down, and escalates to SIGKILL after ~10 s like ``down``.
    """
    d = directory.resolve()
    with locked(d):
        state = require_state(d)
        rec = find_node(state, name)
        pid = running_pid(d, rec)
        if pid is None:
            raise SandboxError(f"{name} is not running")
        send_signal(pid, sig)
        if sig == signal.SIGTERM:
            send_signal(pid, signal.SIGCONT)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            wait_all_gone([(rec, pid)])
            rec.pid = None
            save_state(d, state)


def start_node(directory: Path, name: str) -> SandboxNode:
    """Bring one node back after ``stop_node``, exactly as it was configured.

    Replication settings are deliberately not touched: the node resumes from its own
    master.info/GTID position, which is what a real crashed server does on restart.
    """
    d = directory.resolve()
    with locked(d):
        state = require_state(d)
        rec = find_node(state, name)
        if not is_initialised(d, rec.name):
            raise SandboxError(f"{name} has no datadir in {d / name}; run `mpp sandbox up` first")
        pid = running_pid(d, rec)
        if pid is not None and proc_state(pid) == "T":
            send_signal(pid, signal.SIGCONT)
        if pid is None:
            check_port_free(rec)
            start(d, state, [rec], find_program("mariadbd"), _silent)
        else:
            rec.pid = pid
            save_state(d, state)
        return _snapshot_node(d, rec)


def _silent(_line: str) -> None:
    pass


def _resume_frozen(d: Path, state: State, say: Callable[[str], None]) -> dict[str, int]:
    """Map running node names to PIDs, waking any node a test left SIGSTOPped."""
    running: dict[str, int] = {}
    for rec in state.nodes:
        pid = running_pid(d, rec)
        if pid is None:
            continue
        if proc_state(pid) == "T":
            send_signal(pid, signal.SIGCONT)
            say(f"{rec.name}: was stopped (SIGSTOP), sent SIGCONT")
        running[rec.name] = pid
    return running


def _snapshot(d: Path, state: State) -> list[SandboxNode]:
    return [_snapshot_node(d, rec) for rec in state.nodes]


def _snapshot_node(d: Path, rec: NodeRecord) -> SandboxNode:
    pid = running_pid(d, rec)
    return SandboxNode(
        name=rec.name,
        port=rec.port,
        server_id=rec.server_id,
        datadir=datadir(d, rec.name),
        pid=pid,
        running=pid is not None,
    )
