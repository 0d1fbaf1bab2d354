"""Making and starting mariadbd nodes: one datadir template, a copy and a my.cnf per node,
and a start that returns only once every node accepts connections."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mpp.sandbox.accounts import ROOT_PASSWORD, write_secret
from mpp.sandbox.errors import SandboxError
from mpp.sandbox.layout import (
    HOST,
    TEMPLATE_DIR,
    cnf_path,
    datadir,
    error_log,
    node_dir,
    pid_file,
    socket_path,
)
from mpp.sandbox.processes import POLL, children
from mpp.sandbox.sessions import accepts_connections, root_passwords
from mpp.sandbox.state import NodeRecord, State, save_state
from mpp.sandbox.tls import server_cnf_lines

_START_TIMEOUT = 30.0

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


def find_program(name: str) -> str:
    """The path of a MariaDB program, or a SandboxError that says how to install it."""
    # /usr/sbin is not on a normal user's PATH, but that is where Debian puts mariadbd.
    search = os.pathsep.join(
        [os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"]
    )
    found = shutil.which(name, path=search)
    if found is None:
        raise SandboxError(f"{name} is not installed; {_INSTALL_HINT}")
    return found


def _node_cnf(d: Path, state: State, rec: NodeRecord) -> str:
    # A master-master ring hands every event back to its origin; strict mode would treat
    # that as an out-of-order GTID and stop replication, so it is only on for primary-replica.
    strict = "ON" if state.topology == "primary-replica" else "OFF"
    lines = [
        f"# Written by mpp.sandbox for {rec.name}; not rewritten by later `up`s.",
        "[mariadbd]",
        f"server_id = {rec.server_id}",
        f"port = {rec.port}",
        f"bind_address = {HOST}",
        f"datadir = {datadir(d, rec.name)}",
        f"socket = {socket_path(d, rec.name)}",
        f"pid_file = {pid_file(d, rec.name)}",
        f"log_error = {error_log(d, rec.name)}",
        # A private tmpdir: concurrent sandboxes (parallel tests) sharing /tmp saw
        # "Error on delete of '/tmp/#sql-temptable-...'" aborts.
        f"tmpdir = {node_dir(d, rec.name) / 'tmp'}",
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
        f"report_host = {HOST}",
        f"report_port = {rec.port}",
        "skip_name_resolve = ON",
        "max_connections = 200",
        # The default 2000 makes mariadbd ask for 32k file descriptors and log a warning
        # when the limit is 20k; a sandbox never has that many tables open.
        "table_open_cache = 400",
        "performance_schema = OFF",
        _INNODB_SETTINGS.rstrip("\n"),
        *(server_cnf_lines(d) if state.tls else []),
    ]
    primary = rec.server_id == 1
    if state.topology == "primary-replica" and (not primary or state.read_only_start):
        # Replicas start read-only. With read_only_start the primary does too (made
        # writable once at set-up, then by mpp): a primary that restarts after a crash then
        # takes no write before mpp has decided whether it is still the primary, which is
        # how production servers should be configured (the fault matrix runs so).
        lines.append("read_only = ON")
    lines += [
        "",
        "# For `mariadb --defaults-file=<this file>`.",
        "[client]",
        f"host = {HOST}",
        f"port = {rec.port}",
        "user = root",
        f"password = {ROOT_PASSWORD}",
        "",
    ]
    return "\n".join(lines)


#: a directory of datadir templates shared by every sandbox made with it in the environment
#: (the test suite and the benchmarks make a hundred sandboxes a run; mariadb-install-db was
#: 1.0 s of a 1.7 s `up` here); unset, each sandbox makes its own in D/.template
TEMPLATES_ENV = "MPP_SANDBOX_TEMPLATES"


def _ensure_template(d: Path, say: Callable[[str], None]) -> Path:
    """Run mariadb-install-db once and return the datadir to copy for every node.

    Measured on the 2-core reference machine for three nodes: one install (~0.7 s) plus
    three copies (~0.25 s) beats three installs in parallel (~1.7 s). With MPP_SANDBOX_TEMPLATES
    set, the install is made once per mariadb build and user into that directory and
    reused by every sandbox (the template is read only, never started: each node gets a copy).
    """
    shared = os.environ.get(TEMPLATES_ENV)
    if shared:
        return _shared_template(Path(shared), say)
    return _install_template(d / TEMPLATE_DIR, say)


def _shared_template(root: Path, say: Callable[[str], None]) -> Path:
    """The template for this mariadb build in `root`, made under a lock when missing (two
    test processes may ask at once). Keyed by the install program, mariadbd and the
    settings the copies must share, so an upgraded server never gets an old datadir."""
    install = Path(find_program("mariadb-install-db")).resolve()
    server = Path(find_program("mariadbd")).resolve()
    key = hashlib.sha256(
        "\n".join(
            [
                *(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in (install, server)),
                _INNODB_SETTINGS,
                str(os.geteuid()),
            ]
        ).encode()
    ).hexdigest()[:16]
    tdir = root / key
    if (tdir / "data" / "mysql").is_dir():
        return tdir / "data"
    tdir.mkdir(parents=True, exist_ok=True)
    with (tdir / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _install_template(tdir, say)


def _install_template(tdir: Path, say: Callable[[str], None]) -> Path:
    data = tdir / "data"
    if (data / "mysql").is_dir():
        return data
    install = find_program("mariadb-install-db")
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


def initialise(d: Path, state: State, fresh: list[NodeRecord], say: Callable[[str], None]) -> None:
    """Give each fresh node a copy of the template datadir and its my.cnf."""
    template = _ensure_template(d, say)

    def copy(rec: NodeRecord) -> None:
        node = node_dir(d, rec.name)
        node.mkdir(parents=True, exist_ok=True)
        (node / "tmp").mkdir(exist_ok=True)
        target = datadir(d, rec.name)
        staging = node / "data.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(template, staging, symlinks=True)
        os.replace(staging, target)
        # The config goes last: its presence is half of what marks a node as initialised.
        # 0600: its [client] section holds the root password
        write_secret(cnf_path(d, rec.name), _node_cnf(d, state, rec))

    for rec in fresh:
        say(f"{rec.name}: initialising datadir")
        rec.provisioned = False
    # Copies are I/O (sendfile releases the GIL), so threads overlap them.
    with ThreadPoolExecutor(max_workers=len(fresh)) as pool:
        list(pool.map(copy, fresh))


def start(
    d: Path,
    state: State,
    recs: list[NodeRecord],
    mariadbd: str,
    say: Callable[[str], None],
) -> None:
    """Start nodes in parallel and return once every one accepts TCP connections."""
    spawned: list[tuple[NodeRecord, subprocess.Popen[bytes]]] = []
    for rec in recs:
        argv = [
            mariadbd,
            f"--defaults-file={cnf_path(d, rec.name)}",
            # Also on the command line so that processes.running_pid can recognise it.
            f"--datadir={datadir(d, rec.name)}",
        ]
        if os.geteuid() == 0:
            argv.append("--user=root")
        # Errors printed before log_error is opened (bad options) land in the same file.
        with open(error_log(d, rec.name), "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=node_dir(d, rec.name),
                # Own session: a Ctrl-C in the terminal that ran `up` must not kill nodes.
                start_new_session=True,
            )
        children[proc.pid] = proc
        rec.pid = proc.pid
        spawned.append((rec, proc))
    save_state(d, state)

    pending = {rec.name: (rec, proc) for rec, proc in spawned}
    deadline = time.monotonic() + _START_TIMEOUT
    while pending:
        for name, (rec, proc) in list(pending.items()):
            if proc.poll() is not None:
                children.pop(proc.pid, None)
                rec.pid = None
                save_state(d, state)
                raise SandboxError(
                    f"{name}: mariadbd exited with status {proc.returncode} during start; "
                    f"end of {error_log(d, name)}:\n{_tail(error_log(d, name))}"
                )
            if accepts_connections(rec.port, root_passwords(rec)[0]):
                del pending[name]
                say(f"{name}: started on {HOST}:{rec.port} (pid {rec.pid})")
        if not pending:
            break
        if time.monotonic() > deadline:
            name = next(iter(pending))
            raise SandboxError(
                f"{name}: no connection on {HOST}:{pending[name][0].port} after "
                f"{_START_TIMEOUT:.0f} s; end of {error_log(d, name)}:\n"
                f"{_tail(error_log(d, name))}"
            )
        time.sleep(POLL)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path})"
    return "\n".join(text.splitlines()[-lines:])
