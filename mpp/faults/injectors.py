"""Faults put into a sandbox node: the failures a manager must survive, made on purpose.

Process faults go through mpp.sandbox (which only ever signals a mariadbd it started, and
waits for a killed one to be gone), so a scenario cannot hit another test's server. The SQL
faults are the two states a manager exists to prevent or detect: a second writable node
(split brain) and a primary that lacks writes it acknowledged.

The replication and capacity faults (`stop_io` ... `errant_write`) share one calling
convention, because a scenario runner calls them by name with options taken from data:
`name(d, node, **options)` performs the fault and returns an `Undo`, a zero-argument
callable that heals it (None when nothing can be healed). An Undo may be called more than
once (a runner heals in a `finally` too); only the first call acts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import pymysql

from mpp import sandbox

from ._sql import HOST, TABLE, Conn, drop, ports, root_sql, slave_status, table_name

__all__ = [
    "WRONG_REPL_PASSWORD",
    "Fault",
    "Undo",
    "break_io",
    "delete_unlogged",
    "errant_write",
    "exhaust_connections",
    "hang",
    "inject",
    "kill",
    "lag",
    "resume",
    "set_read_only",
    "stop_io",
    "stop_sql",
]

Undo = Callable[[], None]

Fault = Literal["kill", "stop"]

_SIGNALS: dict[Fault, signal.Signals] = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}


def kill(d: Path, node: str) -> None:
    """A crash (kill -9): no shutdown, connections reset. Returns once the process is gone,
    so the port is closed when the caller goes on."""
    sandbox.stop_node(d, node, signal.SIGKILL)


def hang(d: Path, node: str) -> None:
    """A hang (SIGSTOP): the harder failure. The kernel still accepts TCP connections for the
    frozen server, so only clients with read timeouts notice, and it may wake up later
    believing it is still the primary."""
    sandbox.stop_node(d, node, signal.SIGSTOP)


def inject(d: Path, node: str, fault: Fault) -> None:
    """`kill` or `hang` by name, for scenarios that take the fault as a parameter."""
    sandbox.stop_node(d, node, _SIGNALS[fault])


def resume(d: Path, node: str) -> sandbox.SandboxNode:
    """End a fault: SIGCONT a hung node, restart a killed one with its data (as a rebooted
    server comes back, with its old replication settings and read_only from its config)."""
    return sandbox.start_node(d, node)


def set_read_only(d: Path, node: str, on: bool) -> None:
    """Flip @@global.read_only by hand: `False` on a replica makes a second writable node,
    the split brain a sampler must catch."""
    conn = sandbox.admin_connect(d, node, connect_timeout=2, read_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SET GLOBAL read_only = {1 if on else 0}")
    finally:
        conn.close()


def delete_unlogged(d: Path, node: str, ids: Iterable[int], table: str = TABLE) -> int:
    """Delete rows on one node only (sql_log_bin = 0, so no replica follows): the honest way
    to make a node lack acknowledged writes, as a lost write after a failover would.
    Returns how many rows went."""
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return 0
    conn = sandbox.admin_connect(d, node, connect_timeout=2, read_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            marks = ", ".join(["%s"] * len(wanted))
            return int(
                cur.execute(
                    f"DELETE FROM `{sandbox.APP_DATABASE}`.`{table_name(table)}` "
                    f"WHERE id IN ({marks})",
                    wanted,
                )
            )
    finally:
        conn.close()


# --------------------------------------------------------------------------- the Undo


def _once(heal: Callable[[], None]) -> Undo:
    """`heal` made safe to call twice: the scenario heals on purpose, then again in its
    cleanup, and a second START SLAVE or SET GLOBAL must not undo what happened since."""
    lock = threading.Lock()
    done = False

    def undo() -> None:
        nonlocal done
        with lock:
            if done:
                return
            done = True
        heal()

    return undo


def _replica_status(d: Path, node: str) -> dict[str, Any]:
    row = slave_status(d, node)
    if not row:
        raise ValueError(f"{node} replicates from nobody: there is no replication to break")
    return row


# --------------------------------------------------------------------------- replication


def stop_io(d: Path, node: str) -> Undo:
    """An operator's STOP SLAVE IO_THREAD: Slave_IO_Running "No" with no error. The replica
    stops fetching while its source is perfectly healthy, so a manager that reads "IO not
    running" as "the primary is gone" fails over a live primary."""
    root_sql(d, node, "STOP SLAVE IO_THREAD")

    def heal() -> None:
        root_sql(d, node, "START SLAVE IO_THREAD")

    return _once(heal)


def stop_sql(d: Path, node: str) -> Undo:
    """STOP SLAVE SQL_THREAD: the replica keeps fetching (its Gtid_IO_Pos advances) but
    applies nothing, so it falls behind while looking connected; what it has received is
    not what it has, which matters when it is the candidate for promotion."""
    root_sql(d, node, "STOP SLAVE SQL_THREAD")

    def heal() -> None:
        root_sql(d, node, "START SLAVE SQL_THREAD")

    return _once(heal)


WRONG_REPL_PASSWORD = "mpp-fault-wrong-password"


def break_io(d: Path, node: str, password: str = sandbox.REPL_PASSWORD) -> Undo:
    """The IO thread failing for real: the replication password rejected (error 1045),
    leaving Slave_IO_Running "Connecting" with Last_IO_Errno 1045 and Seconds_Behind_Master
    NULL, retried every Connect_Retry seconds.

    A rotated password: the replication account's password changed on the replica's source
    (with sql_log_bin = 0, so no other node's account changes), and the one session that
    source serves this replica killed, so that its IO thread must log in again, and cannot.
    It is what happens in production (the password rotated on the primary and not in the
    replica's stored settings), and it leaves Master_Host/Master_Port pointing at the real
    primary, so a manager must judge a replica attached to the right source that cannot
    read from it.

    Nothing is changed on the replica itself: changing its stored password needs STOP
    SLAVE first (MariaDB refuses CHANGE MASTER while a thread runs), and a manager that
    polls in that moment sees a cleanly stopped replica and restarts it with the right
    password, undoing the fault (the matrix saw that race). Heal: the password given (the
    sandbox's, which mpp's repl_password_file holds too) set back on the source; the IO
    thread's next retry logs in.
    """
    before = _replica_status(d, node)
    port = int(before["Master_Port"])
    source = next((n.name for n in sandbox.status(d) if n.port == port), None)
    if source is None:
        raise RuntimeError(f"{node} replicates from port {port}, which is no sandbox node")
    user = str(before["Master_User"])
    _set_account_password(d, source, user, WRONG_REPL_PASSWORD)
    _kill_dump_session(d, source, node)

    def heal() -> None:
        with contextlib.suppress(pymysql.MySQLError, OSError):  # the source may be down now
            _set_account_password(d, source, user, password)

    return _once(heal)


def _set_account_password(d: Path, node: str, user: str, password: str) -> None:
    """On `node` only (not replicated): every host of `user` gets `password`."""
    conn = sandbox.admin_connect(d, node, connect_timeout=2, read_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute("SELECT Host FROM mysql.user WHERE User = %s", (user,))
            for (host,) in cur.fetchall():
                cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, password))
    finally:
        conn.close()


def _kill_dump_session(d: Path, source: str, replica: str) -> None:
    """Kill the Binlog Dump session `source` serves `replica` with, found by the replica's
    end of the TCP connection (its local port, read from /proc: the session's Host on the
    source is 127.0.0.1:<that port>)."""
    nodes = {n.name: n for n in sandbox.status(d)}
    pid, source_port = nodes[replica].pid, nodes[source].port
    if pid is None:
        raise RuntimeError(f"{replica} is not running")
    local = _local_ports(pid, source_port)
    conn = sandbox.admin_connect(d, source, connect_timeout=2, read_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT ID, HOST FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'"
            )
            sessions = [(int(i), str(h)) for i, h in cur.fetchall()]
            ids = [i for i, host in sessions if host.rpartition(":")[2] in {str(p) for p in local}]
            if not ids:
                raise RuntimeError(f"no Binlog Dump session of {replica} on {source}: {sessions}")
            for i in ids:
                with contextlib.suppress(pymysql.MySQLError):
                    cur.execute("KILL %s", (i,))
    finally:
        conn.close()


def _local_ports(pid: int, remote_port: int) -> set[int]:
    """The local ports of process `pid`'s established TCP connections to `remote_port`."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                if (
                    state == "01"
                    and inode in inodes
                    and int(remote.rsplit(":", 1)[1], 16) == (remote_port)
                ):
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def lag(d: Path, node: str, table: str = TABLE) -> Undo:
    """A replica falling behind with both threads running: a root session on it holds
    LOCK TABLES app.<table> WRITE, so the SQL thread waits on the first event for that
    table ("Waiting for table metadata lock") and, applying serially, on everything after
    it, while the IO thread keeps fetching. Seconds_Behind_Master then grows by a second a
    second as long as the primary writes that table, as it does behind a long report or a
    backup on the replica; a manager must neither promote such a replica nor count it as
    caught up.

    A table lock rather than a row lock: a row lock times the SQL thread out after
    innodb_lock_wait_timeout (50 s) and slave_transaction_retries, turning the lag into a
    stopped SQL thread with an error, another fault; a metadata lock waits lock_wait_timeout
    (a day). Nor FLUSH TABLES WITH READ LOCK, which would freeze every table and the
    node's own writes too, more than a lagging replica is.

    Heal: UNLOCK TABLES and the session closed; the replica then catches up by itself.
    """
    conn = sandbox.admin_connect(d, node, connect_timeout=2, read_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute(f"LOCK TABLES `{sandbox.APP_DATABASE}`.`{table_name(table)}` WRITE")
    except BaseException:
        drop(conn)
        raise

    def heal() -> None:
        try:
            with conn.cursor() as cur:
                cur.execute("UNLOCK TABLES")  # at once, not whenever the server sees the quit
        except (pymysql.MySQLError, OSError):
            pass  # the node restarted or dropped the session: the lock went with it
        finally:
            drop(conn)

    return _once(heal)


# --------------------------------------------------------------------------- capacity

ER_CON_COUNT_ERROR = 1040  # "Too many connections"
_NO_SUCH_THREAD = 1094  # KILL of a session that has just gone
_MAX_FILLERS = 1000  # a node still accepting after this many is not being filled


def exhaust_connections(
    d: Path,
    node: str,
    user: str = sandbox.APP_USER,
    password: str = sandbox.APP_PASSWORD,
    kill_user: str | None = sandbox.MPP_USER,
    room: int = 1,
    evict: tuple[str, ...] = (),
) -> Undo:
    """A node out of connections: every new session, of any user, gets 1040 (Too many
    connections), while the sessions already open keep working. The state a connection
    leak or a stampede of application threads puts a primary in: it still serves and
    replicates, yet a monitor that has to reconnect cannot reach it.

    max_connections is lowered (SET GLOBAL, as root) to the sessions open plus `room`, so
    only a few connections have to be opened; MariaDB refuses values under 10. They are
    opened as `user` until the server refuses one, then as root until even root is
    refused: MariaDB lets a user with SUPER (CONNECTION ADMIN) in one connection beyond
    max_connections, and the sandbox's `mpp` account has ALL PRIVILEGES, so without that
    extra slot taken mpp would still get in. Then the sessions of `kill_user` (mpp's) are
    killed, each freed slot taken again at once, until none is left: mpp reuses its probe
    session, so without this it would never see the fault. Those of the users in `evict`
    too (the replicas' `repl`: they cannot reconnect either, so none still streams).

    Heal: max_connections restored through a root session opened before the fault (the
    only way back in), then every held connection closed.
    """
    port = ports(d)[node]
    control = sandbox.admin_connect(d, node, connect_timeout=2, read_timeout=10)
    try:
        with control.cursor() as cur:
            cur.execute("SELECT @@global.max_connections")
            original = int(_first(cur.fetchone()))
            cur.execute("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
            connected = int(_first(cur.fetchone(), 1))
    except BaseException:
        drop(control)
        raise
    held: list[Conn] = []

    def heal() -> None:
        try:
            _restore_max_connections(d, node, control, original, held)
        finally:
            for c in held:
                drop(c)
            drop(control)

    try:
        with control.cursor() as cur:
            cur.execute("SET GLOBAL max_connections = %s", (connected + room,))
        _fill(port, user, password, held)
        _fill(port, "root", sandbox.ROOT_PASSWORD, held)
        if kill_user is not None:
            _evict(control, port, kill_user, held)
        for user in evict:  # e.g. the replicas' sessions (sandbox.REPL_USER): they lose it too
            _evict(control, port, user, held)
    except BaseException:
        heal()
        raise
    return _once(heal)


def _first(row: tuple[Any, ...] | None, index: int = 0) -> Any:
    if row is None:
        raise RuntimeError("the server returned no row")
    return row[index]


def _fill(port: int, user: str, password: str, held: list[Conn]) -> int:
    """Open sessions as `user` until the server says 1040; how many it let in."""
    opened = 0
    while opened < _MAX_FILLERS:
        try:
            held.append(
                pymysql.connect(
                    host=HOST,
                    port=port,
                    user=user,
                    password=password,
                    connect_timeout=2,
                    read_timeout=5,
                    write_timeout=5,
                    ssl_disabled=True,
                )
            )
        except pymysql.MySQLError as err:
            if err.args and err.args[0] == ER_CON_COUNT_ERROR:
                return opened
            raise
        opened += 1
    raise RuntimeError(f"port {port} still accepts new sessions after {_MAX_FILLERS}")


def _evict(control: Conn, port: int, user: str, held: list[Conn], timeout: float = 5.0) -> None:
    """Kill `user`'s sessions and take each slot they free before `user` can reconnect, until
    a round finds none of them and no slot free."""
    deadline = time.monotonic() + timeout
    while True:
        with control.cursor() as cur:
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))
            victims = [int(r[0]) for r in cur.fetchall()]
            for victim in victims:
                try:
                    cur.execute(f"KILL CONNECTION {victim}")
                except pymysql.MySQLError as err:
                    if not (err.args and err.args[0] == _NO_SUCH_THREAD):
                        raise
            # a killed session frees its slot only when its thread has ended
            while victims and time.monotonic() < deadline:
                marks = ", ".join(["%s"] * len(victims))
                cur.execute(
                    f"SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN ({marks})",
                    victims,
                )
                if not cur.fetchall():
                    break
                time.sleep(0.01)
        took = _fill(port, "root", sandbox.ROOT_PASSWORD, held)
        if not victims and not took:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"sessions of {user!r} still come back after {timeout:g} s")


def _restore_max_connections(
    d: Path, node: str, control: Conn, value: int, held: list[Conn]
) -> None:
    try:
        with control.cursor() as cur:
            cur.execute("SET GLOBAL max_connections = %s", (value,))
        return
    except (pymysql.MySQLError, OSError):
        pass  # the control session is gone (node restarted, session killed): open another
    for c in held:
        drop(c)  # which needs the slots they hold
    held.clear()
    root_sql(d, node, f"SET GLOBAL max_connections = {int(value)}")


# --------------------------------------------------------------------------- divergence


def errant_write(d: Path, node: str, table: str = TABLE, id: int | None = None) -> None:
    """One row written on `node` as root with sql_log_bin = 1, so it is in that node's binlog
    under its own server id (GTID 0-<server_id>-<next seq>): the errant transaction an old
    primary brings back, or a stray root write on a replica (read_only does not stop root).
    Under gtid_strict_mode the node's next replicated event then stops its SQL thread
    (error 1950, "out-of-order sequence number"), and a diverged node asked to rejoin fails
    with IO error 1236.

    `id` None: one below the smallest id on the node (negative), so it never collides with
    a workload's ids, which count up from 1. No heal: undoing it would take a rebuild.
    """
    name = f"`{sandbox.APP_DATABASE}`.`{table_name(table)}`"
    conn = sandbox.admin_connect(d, node, connect_timeout=2, read_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 1")
            if id is None:
                cur.execute(
                    f"INSERT INTO {name} (id) SELECT LEAST(COALESCE(MIN(id), 0), 0) - 1 FROM {name}"
                )
            else:
                cur.execute(f"INSERT INTO {name} (id) VALUES (%s)", (int(id),))
    finally:
        conn.close()


def cut_from_mpp(d: Path, node: str, source: str = "127.0.0.5") -> Undo:
    """Drop every packet between `node` and mpp (whose sessions come from `source`: mpp's
    `[mpp] source_address`), while replicas and clients, which connect from 127.0.0.1,
    still reach it: the partition that cuts only the monitor's path. iptables DROP on the
    loopback, in and out, tagged so that a heal removes exactly these rules."""
    port = {n.name: n.port for n in sandbox.status(d)}[node]
    tag = f"mpp-faults-{port}-{source}"
    rules = [
        ["-s", source, "--dport", str(port)],
        ["-d", source, "--sport", str(port)],
    ]

    def iptables(op: str, rule: list[str]) -> None:
        spec = ["INPUT", "-i", "lo", "-p", "tcp", *rule, "-m", "comment", "--comment", tag]
        try:
            subprocess.run(["iptables", op, *spec, "-j", "DROP"], check=True, capture_output=True)
        except FileNotFoundError:
            raise RuntimeError(
                "iptables is not installed: scripts/bootstrap.sh installs it"
            ) from None
        except subprocess.CalledProcessError as err:
            why = err.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"iptables {op}: {why}") from None

    for rule in rules:
        iptables("-I", rule)

    def heal() -> None:
        for rule in rules:
            iptables("-D", rule)

    return _once(heal)
