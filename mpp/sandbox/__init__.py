"""A throw-away MariaDB cluster on 127.0.0.1 for the demo and the integration tests.

Everything lives in one directory D so that a sandbox can be inspected, resumed after a
reboot (``up`` again) and removed without leaving anything behind::

    D/sandbox.json        what we started (nodes, ports, PIDs, topology, setup progress)
    D/mpp.password        the monitor account's password (0600), reused by every ``up``
    D/mpp.toml            an mpp config pointing at the sandbox (written once, user-editable)
    D/.template/data      one ``mariadb-install-db`` result, copied for every node
    D/dbN/my.cnf          per-node config (also usable as ``mariadb --defaults-file=...``)
    D/dbN/data            datadir; socket, PID file and error.log sit next to it

Only processes recorded here, still named ``mariadbd`` and carrying our ``--datadir`` on
their command line are ever signalled, so a stale PID that was reused by something else is
left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import pymysql
import pymysql.connections
import pymysql.cursors
import pymysql.err

__all__ = [
    "APP_DATABASE",
    "APP_PASSWORD",
    "APP_USER",
    "MPP_USER",
    "REPL_PASSWORD",
    "REPL_USER",
    "ROOT_PASSWORD",
    "SandboxError",
    "SandboxNode",
    "Topology",
    "admin_connect",
    "destroy",
    "down",
    "nodes",
    "start_node",
    "status",
    "stop_node",
    "up",
]

Topology = Literal["master-master", "primary-replica"]

ROOT_PASSWORD = "sandbox-root"
MPP_USER = "mpp"
APP_USER = "app"
APP_PASSWORD = "app"
APP_DATABASE = "app"
REPL_USER = "repl"
REPL_PASSWORD = "sandbox-repl"

_HOST = "127.0.0.1"
_STATE_FILE = "sandbox.json"
_PASSWORD_FILE = "mpp.password"
_REPL_PASSWORD_FILE = "repl.password"
_CONFIG_FILE = "mpp.toml"
_LOCK_FILE = ".lock"
_TEMPLATE_DIR = ".template"
_STATE_FORMAT = 1

_START_TIMEOUT = 30.0
_REPLICATION_TIMEOUT = 20.0
_TERM_GRACE = 10.0
_KILL_GRACE = 5.0
_POLL = 0.05

# Unix socket paths are limited to 108 bytes including the NUL; mariadbd refuses to start
# with a longer one, which a deep tmp_path easily produces.
_MAX_SOCKET_PATH = 100

_INSTALL_HINT = (
    "run `make demo` (it installs MariaDB) or `apt-get install mariadb-server-core mariadb-client`"
)

# Settings that must be identical in the template and in every node, or InnoDB would
# refuse (or silently rebuild) the copied system tablespace and redo log.
_INNODB_SETTINGS = (
    "innodb_buffer_pool_size = 32M\n"
    "innodb_log_file_size = 8M\n"
    "innodb_temp_data_file_path = ibtmp1:1M:autoextend\n"
)

# Children we spawned in this process; kept so their exit status can be collected, or a
# killed node would linger as a zombie and look alive to /proc-based checks.
_children: dict[int, subprocess.Popen[bytes]] = {}


class SandboxError(Exception):
    """Raised with a message meant for a human at a terminal: what failed and what to do."""


@dataclass(frozen=True)
class SandboxNode:
    name: str
    port: int
    server_id: int
    datadir: Path
    pid: int | None
    running: bool


@dataclass
class _NodeRecord:
    name: str
    port: int
    server_id: int
    pid: int | None
    # Whether the root password is set yet; only decides which password to try first,
    # so a fresh node's error log is not cluttered with "Access denied" warnings.
    provisioned: bool = False


@dataclass
class _State:
    topology: Topology
    base_port: int
    nodes: list[_NodeRecord]
    replication_configured: bool = False
    app_database_created: bool = False


# --------------------------------------------------------------------------- public API


def up(
    directory: Path,
    nodes: int = 3,
    base_port: int = 33061,
    topology: Topology = "master-master",
    progress: Callable[[str], None] | None = None,
    api: str | None = None,
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
    mariadbd = _find_program("mariadbd")  # before touching the disk
    d.mkdir(parents=True, exist_ok=True)
    with _locked(d):
        state = _load_state(d)
        if state is not None and not _same_layout(state, nodes, base_port, topology):
            if any(_is_initialised(d, rec) for rec in state.nodes):
                raise SandboxError(
                    f"the sandbox in {d} has {len(state.nodes)} node(s), {state.topology}, "
                    f"base port {state.base_port}; you asked for {nodes} node(s), {topology}, "
                    f"base port {base_port}. Pass the same options, or run "
                    "`mpp sandbox destroy` (or use another directory) to start over"
                )
            state = None  # an earlier attempt failed before building anything; re-plan
        if state is None:
            state = _new_state(nodes, base_port, topology)

        running = _resume_frozen(d, state, say)
        to_start = [rec for rec in state.nodes if rec.name not in running]
        for rec in to_start:
            _check_port_free(rec)
        _save_state(d, state)
        password = _ensure_password(d)

        fresh = [rec for rec in state.nodes if not _is_initialised(d, rec)]
        if fresh:
            _initialise(d, state, fresh, say)

        for rec in state.nodes:
            if rec.name in running:
                rec.pid = running[rec.name]
                say(f"{rec.name}: already running on {_HOST}:{rec.port} (pid {rec.pid})")
        _start(d, state, to_start, mariadbd, say)

        for rec in state.nodes:
            _provision(rec, password)
            rec.provisioned = True
        _save_state(d, state)

        targets = state.nodes if not state.replication_configured else fresh
        _configure_replication(state, targets, say)
        state.replication_configured = True
        _save_state(d, state)

        if not state.app_database_created:
            _create_app_database(state, say)
            state.app_database_created = True
            _save_state(d, state)

        _write_mpp_config(d, state, say, api)
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
    if not (d / _STATE_FILE).exists():
        return []
    with _locked(d):
        state = _load_state(d)
        if state is None:
            return []
        victims = [(rec, pid) for rec in state.nodes if (pid := _running_pid(d, rec)) is not None]
        for _rec, pid in victims:
            _signal(pid, signal.SIGTERM)
            # A SIGSTOPped node would never act on the SIGTERM.
            _signal(pid, signal.SIGCONT)
        _wait_all_gone(victims)
        for rec in state.nodes:
            rec.pid = None
        _save_state(d, state)
        return [rec.name for rec, _pid in victims]


def destroy(directory: Path) -> list[str]:
    """Stop the nodes and delete the directory, for tests and for a fresh demo."""
    d = directory.resolve()
    if not d.exists():
        return []
    markers = (_STATE_FILE, _TEMPLATE_DIR, _LOCK_FILE)
    looks_like_sandbox = any((d / m).exists() for m in markers) or not any(d.iterdir())
    if not looks_like_sandbox:
        # Refuse rather than rmtree a directory someone pointed us at by mistake.
        raise SandboxError(f"{d} does not look like a sandbox (no {_STATE_FILE}); not removing it")
    state = _load_state(d)
    stopped = down(d)
    for rec in state.nodes if state else []:
        # Only a too-long path puts the socket outside D (see _socket_path).
        sock = _socket_path(d, rec.name)
        if not sock.is_relative_to(d):
            sock.unlink(missing_ok=True)
    shutil.rmtree(d)
    return stopped


def status(directory: Path) -> list[SandboxNode]:
    """Report which nodes are alive, judged from /proc rather than from what we recorded."""
    d = directory.resolve()
    state = _load_state(d)
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
    with _locked(d):
        state = _require_state(d)
        rec = _find_node(state, name)
        pid = _running_pid(d, rec)
        if pid is None:
            raise SandboxError(f"{name} is not running")
        _signal(pid, sig)
        if sig == signal.SIGTERM:
            _signal(pid, signal.SIGCONT)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            _wait_all_gone([(rec, pid)])
            rec.pid = None
            _save_state(d, state)


def start_node(directory: Path, name: str) -> SandboxNode:
    """Bring one node back after ``stop_node``, exactly as it was configured.

    Replication settings are deliberately not touched: the node resumes from its own
    master.info/GTID position, which is what a real crashed server does on restart.
    """
    d = directory.resolve()
    with _locked(d):
        state = _require_state(d)
        rec = _find_node(state, name)
        if not _is_initialised(d, rec):
            raise SandboxError(f"{name} has no datadir in {d / name}; run `mpp sandbox up` first")
        pid = _running_pid(d, rec)
        if pid is not None and _proc_state(pid) == "T":
            _signal(pid, signal.SIGCONT)
        if pid is None:
            _check_port_free(rec)
            _start(d, state, [rec], _find_program("mariadbd"), _silent)
        else:
            rec.pid = pid
            _save_state(d, state)
        return _snapshot_node(d, rec)


def admin_connect(
    directory: Path, name: str, **kw: Any
) -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
    """Open a root session to one node; keyword arguments override the defaults.

    TLS is off (the sandbox has none, and PyMySQL's "preferred" TLS costs ~58 ms per
    connect) and read/write timeouts are set because a SIGSTOPped server still accepts
    TCP connections and would otherwise hang the caller forever.
    """
    d = directory.resolve()
    rec = _find_node(_require_state(d), name)
    options: dict[str, Any] = {
        "host": _HOST,
        "port": rec.port,
        "user": "root",
        "password": ROOT_PASSWORD,
        "autocommit": True,
        "connect_timeout": 2,
        "read_timeout": 10,
        "write_timeout": 10,
        "ssl_disabled": True,
    }
    options.update(kw)
    return pymysql.connect(**options)


def server_id_at(port: int, timeout: float = 2.0) -> int | None:
    """@@server_id of whichever server answers on 127.0.0.1:port (directly, or through a
    proxy or mpp's router) to a new app-user connection; None when nothing answers.

    The sandbox gives dbN server_id N, so tests and benchmarks use this to tell where a
    load balancer sent a connection.
    """
    try:
        conn = pymysql.connect(
            host=_HOST,
            port=port,
            user=APP_USER,
            password=APP_PASSWORD,
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
            ssl_disabled=True,
        )
    except pymysql.MySQLError:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@server_id")
            row = cur.fetchone()
            return int(row[0]) if row else None
    except pymysql.MySQLError:
        return None
    finally:
        conn.close()


# --------------------------------------------------------------------------- layout


def _node_dir(d: Path, name: str) -> Path:
    return d / name


def _datadir(d: Path, name: str) -> Path:
    return d / name / "data"


def _cnf_path(d: Path, name: str) -> Path:
    return d / name / "my.cnf"


def _error_log(d: Path, name: str) -> Path:
    return d / name / "error.log"


def _pid_file(d: Path, name: str) -> Path:
    return d / name / "mariadbd.pid"


def _socket_path(d: Path, name: str) -> Path:
    path = d / name / "mariadbd.sock"
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path
    # Too long for AF_UNIX; nothing of ours uses the socket (we talk TCP), but mariadbd
    # insists on creating one, so park it somewhere short and unique to this datadir.
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:12]
    return Path("/tmp") / f"mpp-sandbox-{digest}-{name}.sock"


def _is_initialised(d: Path, rec: _NodeRecord) -> bool:
    return (_datadir(d, rec.name) / "mysql").is_dir() and _cnf_path(d, rec.name).exists()


# --------------------------------------------------------------------------- state file


def _new_state(count: int, base_port: int, topology: Topology) -> _State:
    records = [
        _NodeRecord(name=f"db{i + 1}", port=base_port + i, server_id=i + 1, pid=None)
        for i in range(count)
    ]
    return _State(topology=topology, base_port=base_port, nodes=records)


def _same_layout(state: _State, count: int, base_port: int, topology: Topology) -> bool:
    return (len(state.nodes), state.base_port, state.topology) == (count, base_port, topology)


def _load_state(d: Path) -> _State | None:
    path = d / _STATE_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SandboxError(f"cannot read {path}: {exc}") from exc
    try:
        if raw["format"] != _STATE_FORMAT:
            raise SandboxError(f"{path} has format {raw['format']}, expected {_STATE_FORMAT}")
        topology = raw["topology"]
        if topology not in get_args(Topology):
            raise ValueError(f"unknown topology {topology!r}")
        records = [
            _NodeRecord(
                name=str(n["name"]),
                port=int(n["port"]),
                server_id=int(n["server_id"]),
                pid=None if n.get("pid") is None else int(n["pid"]),
                provisioned=bool(n.get("provisioned", False)),
            )
            for n in raw["nodes"]
        ]
        return _State(
            topology=topology,
            base_port=int(raw["base_port"]),
            nodes=records,
            replication_configured=bool(raw.get("replication_configured", False)),
            app_database_created=bool(raw.get("app_database_created", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SandboxError(f"{path} is damaged ({exc}); run `mpp sandbox destroy`") from exc


def _save_state(d: Path, state: _State) -> None:
    # Written atomically: `down` must be able to trust it even if `up` died mid-write.
    payload = {
        "format": _STATE_FORMAT,
        "topology": state.topology,
        "base_port": state.base_port,
        "replication_configured": state.replication_configured,
        "app_database_created": state.app_database_created,
        "nodes": [
            {
                "name": r.name,
                "port": r.port,
                "server_id": r.server_id,
                "pid": r.pid,
                "provisioned": r.provisioned,
            }
            for r in state.nodes
        ],
    }
    tmp = d / f".{_STATE_FILE}.tmp"
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, d / _STATE_FILE)


def _require_state(d: Path) -> _State:
    state = _load_state(d)
    if state is None:
        raise SandboxError(f"no sandbox in {d}; run `mpp sandbox up` first")
    return state


def _find_node(state: _State, name: str) -> _NodeRecord:
    for rec in state.nodes:
        if rec.name == name:
            return rec
    known = ", ".join(r.name for r in state.nodes)
    raise SandboxError(f"no node named {name!r} in the sandbox (nodes: {known})")


@contextlib.contextmanager
def _locked(d: Path) -> Iterator[None]:
    """Serialise mutating calls so two `up`s never start the same datadir twice."""
    fd = os.open(d / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _snapshot(d: Path, state: _State) -> list[SandboxNode]:
    return [_snapshot_node(d, rec) for rec in state.nodes]


def _snapshot_node(d: Path, rec: _NodeRecord) -> SandboxNode:
    pid = _running_pid(d, rec)
    return SandboxNode(
        name=rec.name,
        port=rec.port,
        server_id=rec.server_id,
        datadir=_datadir(d, rec.name),
        pid=pid,
        running=pid is not None,
    )


def _ensure_password(d: Path) -> str:
    path = d / _PASSWORD_FILE
    if path.exists():
        password = path.read_text().strip()
        if password:
            return password
    password = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password)
    os.chmod(path, 0o600)  # O_CREAT's mode is ignored when the file already existed
    return password


# --------------------------------------------------------------------------- processes


def _silent(_line: str) -> None:
    pass


def _find_program(name: str) -> str:
    # /usr/sbin is not on a normal user's PATH, but that is where Debian puts mariadbd.
    search = os.pathsep.join(
        [os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"]
    )
    found = shutil.which(name, path=search)
    if found is None:
        raise SandboxError(f"{name} is not installed; {_INSTALL_HINT}")
    return found


def _proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/PID/stat, or None if there is no such process."""
    return _proc_state_of(Path(f"/proc/{pid}/stat"))


def _proc_state_of(stat_file: Path) -> str | None:
    try:
        stat = stat_file.read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; the state follows the last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0] if fields else None


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def _is_ours(pid: int, datadir: Path) -> bool:
    """True only for a live mariadbd started on this very datadir.

    PIDs get reused; checking the command line is what makes it safe to signal a PID
    read from a file that may be days old.
    """
    if pid <= 0:
        return False
    _reap(pid)
    state = _proc_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if comm not in ("mariadbd", "mysqld"):
        return False
    return os.fsencode(f"--datadir={datadir}") in argv


def _running_pid(d: Path, rec: _NodeRecord) -> int | None:
    # The PID file rescues us if sandbox.json lost the PID (e.g. `up` was interrupted
    # between spawning and saving), so such a node is neither orphaned nor started twice.
    candidates: list[int] = []
    if rec.pid is not None:
        candidates.append(rec.pid)
    with contextlib.suppress(OSError, ValueError):
        candidates.append(int(_pid_file(d, rec.name).read_text().strip()))
    datadir = _datadir(d, rec.name)
    for pid in candidates:
        if _is_ours(pid, datadir):
            return pid
    return None


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _exited(pid: int) -> bool:
    """True once the whole process is gone, not just its main thread.

    A SIGKILLed mariadbd shows "Z" for its main thread while the other threads are still
    tearing down and the listening socket is still open, so every task must be dead.
    """
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return False
        del _children[pid]
        return True
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return True
    return all(_proc_state_of(t / "stat") in (None, "Z", "X") for t in tasks)


def _wait_all_gone(victims: list[tuple[_NodeRecord, int]]) -> None:
    # Wait for the PID itself to vanish (or turn zombie), not merely to stop looking like
    # ours: a dying process loses its cmdline before it has closed its listening socket.
    def alive() -> list[tuple[_NodeRecord, int]]:
        return [(r, p) for r, p in victims if not _exited(p)]

    deadline = time.monotonic() + _TERM_GRACE
    while (left := alive()) and time.monotonic() < deadline:
        time.sleep(_POLL)
    for _rec, pid in left:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + _KILL_GRACE
    while (left := alive()) and time.monotonic() < deadline:
        time.sleep(_POLL)
    if left:
        names = ", ".join(f"{r.name} (pid {p})" for r, p in left)
        raise SandboxError(f"{names} survived SIGKILL for {_KILL_GRACE:.0f} s")


def _resume_frozen(d: Path, state: _State, say: Callable[[str], None]) -> dict[str, int]:
    """Map running node names to PIDs, waking any node a test left SIGSTOPped."""
    running: dict[str, int] = {}
    for rec in state.nodes:
        pid = _running_pid(d, rec)
        if pid is None:
            continue
        if _proc_state(pid) == "T":
            _signal(pid, signal.SIGCONT)
            say(f"{rec.name}: was stopped (SIGSTOP), sent SIGCONT")
        running[rec.name] = pid
    return running


def _port_owner(port: int) -> str | None:
    """Best-effort "pid N (name)" of whoever listens on the port, for the error message."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                listening = len(fields) > 9 and fields[3] == "0A"  # 0A = TCP_LISTEN
                if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        comm = (proc / "comm").read_text().strip()
                        return f"pid {proc.name} ({comm})"
    return None


def _check_port_free(rec: _NodeRecord) -> None:
    # SO_REUSEADDR so that TIME_WAIT leftovers of our own earlier run do not count as busy;
    # on Linux the bind still fails if anything is listening on the port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((_HOST, rec.port))
            return
        except OSError:
            pass
    owner = _port_owner(rec.port)
    who = f" by {owner}" if owner else " by another process"
    raise SandboxError(
        f"port {rec.port} (for {rec.name}) is already in use{who}; stop it or choose "
        "other ports with --base-port"
    )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path})"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- initialisation


def _node_cnf(d: Path, state: _State, rec: _NodeRecord) -> str:
    replica_of_primary = state.topology == "primary-replica" and rec.server_id != 1
    # A master-master ring hands every event back to its origin; strict mode would treat
    # that as an out-of-order GTID and stop replication, so it is only on for primary-replica.
    strict = "ON" if state.topology == "primary-replica" else "OFF"
    lines = [
        f"# Written by mpp.sandbox for {rec.name}; not rewritten by later `up`s.",
        "[mariadbd]",
        f"server_id = {rec.server_id}",
        f"port = {rec.port}",
        f"bind_address = {_HOST}",
        f"datadir = {_datadir(d, rec.name)}",
        f"socket = {_socket_path(d, rec.name)}",
        f"pid_file = {_pid_file(d, rec.name)}",
        f"log_error = {_error_log(d, rec.name)}",
        # A private tmpdir: concurrent sandboxes (parallel tests) sharing /tmp saw
        # "Error on delete of '/tmp/#sql-temptable-...'" aborts.
        f"tmpdir = {_node_dir(d, rec.name) / 'tmp'}",
        "log_bin = mariadb-bin",
        "relay_log = relay-bin",
        "log_slave_updates = ON",
        "binlog_format = ROW",
        "gtid_domain_id = 0",
        f"gtid_strict_mode = {strict}",
        "relay_log_recovery = ON",
        # A replica notices a hung (not dead) primary after about this long; mpp waits for that
        # confirmation before failing over, so it bounds the RTO of a hung primary.
        "slave_net_timeout = 1",
        f"report_host = {_HOST}",
        f"report_port = {rec.port}",
        "skip_name_resolve = ON",
        "max_connections = 200",
        # The default 2000 makes mariadbd ask for 32k file descriptors and log a warning
        # when the limit is 20k; a sandbox never has that many tables open.
        "table_open_cache = 400",
        "performance_schema = OFF",
        _INNODB_SETTINGS.rstrip("\n"),
    ]
    if replica_of_primary:
        lines.append("read_only = ON")
    lines += [
        "",
        "# For `mariadb --defaults-file=<this file>`.",
        "[client]",
        f"host = {_HOST}",
        f"port = {rec.port}",
        "user = root",
        f"password = {ROOT_PASSWORD}",
        "",
    ]
    return "\n".join(lines)


def _ensure_template(d: Path, say: Callable[[str], None]) -> Path:
    """Run mariadb-install-db once and return the datadir to copy for every node.

    Measured on the 2-core reference machine for three nodes: one install (~0.7 s) plus
    three copies (~0.25 s) beats three installs in parallel (~1.7 s).
    """
    tdir = d / _TEMPLATE_DIR
    data = tdir / "data"
    if (data / "mysql").is_dir():
        return data
    install = _find_program("mariadb-install-db")
    tdir.mkdir(parents=True, exist_ok=True)
    staging = tdir / "data.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    cnf = tdir / "my.cnf"
    (tdir / "tmp").mkdir(exist_ok=True)
    cnf.write_text(
        "[mariadbd]\n"
        f"datadir = {staging}\n"
        f"tmpdir = {tdir / 'tmp'}\n"
        "skip_name_resolve = ON\n"
        "performance_schema = OFF\n" + _INNODB_SETTINGS
    )
    argv = [
        install,
        f"--defaults-file={cnf}",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
    ]
    if os.geteuid() == 0:
        argv.append("--user=root")
    say("template: initialising datadir with mariadb-install-db")
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise SandboxError(f"mariadb-install-db failed (exit {result.returncode}):\n{output}")
    os.replace(staging, data)
    say(f"template: done in {time.monotonic() - started:.1f} s")
    return data


def _initialise(
    d: Path, state: _State, fresh: list[_NodeRecord], say: Callable[[str], None]
) -> None:
    template = _ensure_template(d, say)

    def copy(rec: _NodeRecord) -> None:
        node_dir = _node_dir(d, rec.name)
        node_dir.mkdir(parents=True, exist_ok=True)
        (node_dir / "tmp").mkdir(exist_ok=True)
        target = _datadir(d, rec.name)
        staging = node_dir / "data.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(template, staging, symlinks=True)
        os.replace(staging, target)
        # The config goes last: its presence is half of what marks a node as initialised.
        _cnf_path(d, rec.name).write_text(_node_cnf(d, state, rec))

    for rec in fresh:
        say(f"{rec.name}: initialising datadir")
        rec.provisioned = False
    # Copies are I/O (sendfile releases the GIL), so threads overlap them.
    with ThreadPoolExecutor(max_workers=len(fresh)) as pool:
        list(pool.map(copy, fresh))


def _start(
    d: Path,
    state: _State,
    recs: list[_NodeRecord],
    mariadbd: str,
    say: Callable[[str], None],
) -> None:
    """Start nodes in parallel and return once every one accepts TCP connections."""
    spawned: list[tuple[_NodeRecord, subprocess.Popen[bytes]]] = []
    for rec in recs:
        argv = [
            mariadbd,
            f"--defaults-file={_cnf_path(d, rec.name)}",
            # Also on the command line so that _is_ours can recognise the process.
            f"--datadir={_datadir(d, rec.name)}",
        ]
        if os.geteuid() == 0:
            argv.append("--user=root")
        # Errors printed before log_error is opened (bad options) land in the same file.
        with open(_error_log(d, rec.name), "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=_node_dir(d, rec.name),
                # Own session: a Ctrl-C in the terminal that ran `up` must not kill nodes.
                start_new_session=True,
            )
        _children[proc.pid] = proc
        rec.pid = proc.pid
        spawned.append((rec, proc))
    _save_state(d, state)

    pending = {rec.name: (rec, proc) for rec, proc in spawned}
    deadline = time.monotonic() + _START_TIMEOUT
    while pending:
        for name, (rec, proc) in list(pending.items()):
            if proc.poll() is not None:
                _children.pop(proc.pid, None)
                rec.pid = None
                _save_state(d, state)
                raise SandboxError(
                    f"{name}: mariadbd exited with status {proc.returncode} during start; "
                    f"end of {_error_log(d, name)}:\n{_tail(_error_log(d, name))}"
                )
            if _accepts_connections(rec.port, _root_passwords(rec)[0]):
                del pending[name]
                say(f"{name}: started on {_HOST}:{rec.port} (pid {rec.pid})")
        if not pending:
            break
        if time.monotonic() > deadline:
            name = next(iter(pending))
            raise SandboxError(
                f"{name}: no connection on {_HOST}:{pending[name][0].port} after "
                f"{_START_TIMEOUT:.0f} s; end of {_error_log(d, name)}:\n"
                f"{_tail(_error_log(d, name))}"
            )
        time.sleep(_POLL)


# --------------------------------------------------------------------------- SQL


def _connect(
    port: int, password: str, timeout: float = 5.0
) -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
    return pymysql.connect(
        host=_HOST,
        port=port,
        user="root",
        password=password,
        autocommit=True,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        ssl_disabled=True,
    )


def _root_passwords(rec: _NodeRecord) -> tuple[str, str]:
    """Root passwords to try, likeliest first (install-db leaves root without one)."""
    return (ROOT_PASSWORD, "") if rec.provisioned else ("", ROOT_PASSWORD)


def _accepts_connections(port: int, password: str) -> bool:
    try:
        _connect(port, password, timeout=1.0).close()
    except pymysql.err.OperationalError as exc:
        # "Access denied" is an answer from a running server all the same.
        return bool(exc.args and exc.args[0] == 1045)
    except (pymysql.err.MySQLError, OSError):
        return False
    return True


def _root_session(rec: _NodeRecord) -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
    """Connect as root whether or not the node has been provisioned yet."""
    first, second = _root_passwords(rec)
    try:
        return _connect(rec.port, first)
    except pymysql.err.OperationalError as exc:
        if not (exc.args and exc.args[0] == 1045):
            raise SandboxError(f"{rec.name}: cannot connect on port {rec.port}: {exc}") from exc
    try:
        return _connect(rec.port, second)
    except pymysql.err.MySQLError as exc:
        raise SandboxError(
            f"{rec.name}: root login refused with both the sandbox password and an empty "
            f"one ({exc}); the datadir was not made by this sandbox. Run `mpp sandbox destroy`"
        ) from exc


def _provision(rec: _NodeRecord, mpp_password: str) -> None:
    """Create the accounts on one node, unreplicated, idempotently.

    mariadb-install-db writes no binlog, so each node has to get its users locally;
    logging these statements would make every node replay the others' CREATE USERs.
    Root passwords are set last, so a node whose root password already works is known
    to have been provisioned completely.
    """
    conn = _root_session(rec)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            # install-db also creates passwordless root@::1 and root@<hostname>; the
            # latter only produces a warning per start under skip-name-resolve.
            cur.execute(
                "SELECT Host FROM mysql.user WHERE User = 'root' "
                "AND Host NOT IN ('localhost', '127.0.0.1')"
            )
            for (host,) in cur.fetchall():
                cur.execute("DROP USER IF EXISTS 'root'@%s", (host,))
            accounts = [
                (MPP_USER, mpp_password, "ALL PRIVILEGES ON *.*", " WITH GRANT OPTION"),
                (REPL_USER, REPL_PASSWORD, "REPLICATION SLAVE ON *.*", ""),
                (
                    APP_USER,
                    APP_PASSWORD,
                    f"SELECT, INSERT, UPDATE, DELETE, CREATE, DROP ON `{APP_DATABASE}`.*",
                    "",
                ),
                ("root", ROOT_PASSWORD, "ALL PRIVILEGES ON *.*", " WITH GRANT OPTION"),
            ]
            for user, password, privileges, grant_option in accounts:
                cur.execute(
                    f"CREATE USER IF NOT EXISTS '{user}'@'{_HOST}' IDENTIFIED BY %s", (password,)
                )
                cur.execute(f"ALTER USER '{user}'@'{_HOST}' IDENTIFIED BY %s", (password,))
                cur.execute(f"GRANT {privileges} TO '{user}'@'{_HOST}'{grant_option}")
            cur.execute("ALTER USER 'root'@'localhost' IDENTIFIED BY %s", (ROOT_PASSWORD,))
    finally:
        conn.close()


def _sources(state: _State) -> dict[str, _NodeRecord]:
    """Which node each node replicates from, per topology."""
    recs = state.nodes
    if len(recs) == 1:
        return {}
    if state.topology == "master-master":
        # db1 <- dbN, db2 <- db1, ...; for two nodes this is simply db1 <-> db2.
        return {rec.name: recs[i - 1] for i, rec in enumerate(recs)}
    return {rec.name: recs[0] for rec in recs[1:]}


def _describe_replication(state: _State) -> str:
    names = [r.name for r in state.nodes]
    if len(names) == 1:
        return "replication: none (single node)"
    if state.topology == "master-master":
        if len(names) == 2:
            return f"replication: {names[0]}<->{names[1]}"
        return "replication: ring " + "->".join([*names, names[0]])
    return f"replication: {names[0]} -> {', '.join(names[1:])} (replicas read_only)"


def _configure_replication(
    state: _State, targets: list[_NodeRecord], say: Callable[[str], None]
) -> None:
    sources = _sources(state)
    whole_topology = len(targets) == len(state.nodes)
    targets = [rec for rec in targets if rec.name in sources]
    if whole_topology:
        say(_describe_replication(state))
    for rec in targets:
        source = sources[rec.name]
        if not whole_topology:
            say(f"replication: {rec.name} <- {source.name} (re-initialised node)")
        conn = _connect(rec.port, ROOT_PASSWORD)
        try:
            with conn.cursor() as cur:
                if state.topology == "primary-replica":
                    cur.execute("SET GLOBAL read_only = ON")
                cur.execute("STOP SLAVE")
                cur.execute(
                    "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, "
                    "MASTER_PASSWORD = %s, MASTER_CONNECT_RETRY = 1, "
                    "MASTER_USE_GTID = slave_pos",
                    (_HOST, source.port, REPL_USER, REPL_PASSWORD),
                )
                cur.execute("START SLAVE")
        finally:
            conn.close()
    _wait_replicating(targets)
    if targets:
        say("replication: all IO and SQL threads running")


def _slave_status(rec: _NodeRecord) -> dict[str, Any] | None:
    conn = _connect(rec.port, ROOT_PASSWORD)
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SHOW SLAVE STATUS")
            row: dict[str, Any] | None = cur.fetchone()
            return row
    finally:
        conn.close()


def _wait_replicating(targets: list[_NodeRecord]) -> None:
    deadline = time.monotonic() + _REPLICATION_TIMEOUT
    pending = list(targets)
    last: dict[str, dict[str, Any] | None] = {}
    while pending:
        for rec in list(pending):
            row = _slave_status(rec)
            last[rec.name] = row
            if row and row["Slave_IO_Running"] == "Yes" and row["Slave_SQL_Running"] == "Yes":
                pending.remove(rec)
        if not pending:
            return
        if time.monotonic() > deadline:
            details = []
            for rec in pending:
                row = last.get(rec.name)
                if row is None:
                    details.append(f"{rec.name}: no replication configured")
                else:
                    details.append(
                        f"{rec.name}: IO={row['Slave_IO_Running']} "
                        f"SQL={row['Slave_SQL_Running']} "
                        f"io_error={row['Last_IO_Error']!r} sql_error={row['Last_SQL_Error']!r}"
                    )
            raise SandboxError(
                f"replication did not start within {_REPLICATION_TIMEOUT:.0f} s:\n"
                + "\n".join(details)
            )
        time.sleep(_POLL)


def _create_app_database(state: _State, say: Callable[[str], None]) -> None:
    # Created only now, through the binlog, so that it exercises replication and every
    # node gets it with the same GTID.
    first = state.nodes[0]
    conn = _connect(first.port, ROOT_PASSWORD)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{APP_DATABASE}`")
    finally:
        conn.close()
    deadline = time.monotonic() + _REPLICATION_TIMEOUT
    pending = list(state.nodes)
    while pending:
        for rec in list(pending):
            conn = _connect(rec.port, ROOT_PASSWORD)
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                        (APP_DATABASE,),
                    )
                    if cur.fetchone() is not None:
                        pending.remove(rec)
            finally:
                conn.close()
        if not pending:
            break
        if time.monotonic() > deadline:
            missing = ", ".join(r.name for r in pending)
            raise SandboxError(
                f"database `{APP_DATABASE}` created on {first.name} did not reach {missing} "
                f"within {_REPLICATION_TIMEOUT:.0f} s; check SHOW SLAVE STATUS there"
            )
        time.sleep(_POLL)
    say(f"app: database `{APP_DATABASE}` created on {first.name}, present on every node")


def _write_mpp_config(
    d: Path, state: _State, say: Callable[[str], None], api: str | None = None
) -> None:
    path = d / _CONFIG_FILE
    if path.exists():
        return  # the user may have edited it
    parts = [
        "# Written by `mpp sandbox up`; edit freely.\n"
        "[mpp]\n"
        'state = "sqlite://state.db"\n'
        'interval = "1s"\n'
        'connect_timeout = "1s"\n'
        "\n"
        "[[pool]]\n"
        'name = "main"\n'
        'logic = "failover"\n'
        f'topology = "{state.topology}"\n'
        "fail_point = 4\n"
        'max_lag = "10s"\n'
        "hostile_takeover = false\n"
        f'user = "{MPP_USER}"\n'
        f'password_file = "{_PASSWORD_FILE}"\n'
    ]
    if state.topology == "primary-replica":
        # mpp repoints replicas itself, with the replication account's password
        repl = d / _REPL_PASSWORD_FILE
        repl.write_text(REPL_PASSWORD)
        repl.chmod(0o600)
        parts.append(f'repl_user = "{REPL_USER}"\nrepl_password_file = "{_REPL_PASSWORD_FILE}"\n')
    for i, rec in enumerate(state.nodes):
        parts.append(
            "\n[[pool.node]]\n"
            f'name = "{rec.name}"\n'
            f'address = "{_HOST}:{rec.port}"\n'
            f'type = "{"primary" if i == 0 else "secondary"}"\n'
        )
    if api is not None:  # the demo: REST API, checks and the live dashboard
        parts.append(f'\n[api]\nlisten = "{api}"\n')
    tmp = d / f".{_CONFIG_FILE}.tmp"
    tmp.write_text("".join(parts))
    os.replace(tmp, path)
    say(f"config: wrote {path}")
