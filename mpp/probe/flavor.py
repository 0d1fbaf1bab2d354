"""MySQL versus MariaDB: every SQL difference mpp cares about, in one place.

Detected from the server's version string once per connection. Callers ask a Flavor for
SQL text or hand it a raw row to normalise; nothing else in mpp says `if mariadb`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mpp.model import Replication
from mpp.probe.connection import Tls


@dataclass(frozen=True)
class Flavor:
    name: str  # "mariadb" or "mysql"
    version: tuple[int, int, int]

    @property
    def is_mariadb(self) -> bool:
        return self.name == "mariadb"

    @property
    def replica_status_sql(self) -> str:
        # MariaDB 10.11 accepts SHOW REPLICA STATUS but still answers with Slave_*/Master_*
        # columns; MySQL renamed both the statement and the columns in 8.0.22.
        if self.is_mariadb or self.version < (8, 0, 22):
            return "SHOW SLAVE STATUS"
        return "SHOW REPLICA STATUS"

    @property
    def health_sql(self) -> str:
        return self.health(clients=False)

    def health(self, clients: bool) -> str:
        """The trivial query of MPP's connect check, also reading read_only, GTIDs, semi-sync.

        Columns: read_only, applied GTIDs, own binlog GTIDs, semi-sync primary, replica,
        then the primary side's timeout (ms) and wait point (`semi_sync_settings`), so that
        mpp can give a primary it did not promote its own settings, in the same round trip;
        then whether it is a strict semi-sync primary (wait-no-replica on, timeout at its
        maximum) and its connected semi-sync replicas (only with `clients`: reading a status
        variable costs the probe about a millisecond, measured, so pools that do not use it
        read NULL). MySQL's semi-sync variables exist only with the plugin loaded, so they
        read NULL.
        """
        if self.is_mariadb:
            count = (
                "(SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                "WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS')"
                if clients
                else "NULL"
            )
            return (
                "SELECT @@global.read_only, @@global.gtid_current_pos, @@global.gtid_binlog_pos, "
                "@@global.rpl_semi_sync_master_enabled, @@global.rpl_semi_sync_slave_enabled, "
                "@@global.rpl_semi_sync_master_timeout, @@global.rpl_semi_sync_master_wait_point, "
                "@@global.rpl_semi_sync_master_wait_no_slave AND "
                f"@@global.rpl_semi_sync_master_timeout = {self.strict_timeout_ms}, {count}"
            )
        return (
            "SELECT @@global.read_only, @@global.gtid_executed, @@global.gtid_executed, "
            "NULL, NULL, NULL, NULL, NULL, NULL"
        )

    @staticmethod
    def semi_sync_settings(row: tuple[Any, ...] | list[Any]) -> dict[str, Any]:
        """The health row's semi-sync timeout and wait point, as Observation fields."""
        timeout = row[5] if len(row) > 5 else None
        point = row[6] if len(row) > 6 else None
        return {
            "semi_sync_timeout_ms": None if timeout is None else _int(timeout),
            "semi_sync_wait_point": str(point or "").upper(),
        }

    @property
    def strict_timeout_ms(self) -> int:
        """The semi-sync timeout's maximum (strict semi-sync): measured on MariaDB 10.11, a
        commit with no replica then waits (no overflow to an immediate timeout)."""
        return 18446744073709551615 if self.is_mariadb else 4294967295

    # -- mpp's heartbeat row (written through the ACTIVE primary, read on every node) ------

    heartbeat_sql = "SELECT ts FROM mpp.heartbeat WHERE id = 1"
    # `ts` is mpp's clock when it wrote the row. The WHERE makes a write that reaches the
    # server late (queued on a hung primary, run when it resumes after its failover), or a
    # fenced one (read_only, which mpp's SUPER account would pass), change nothing, and a
    # statement that changes no row writes no binlog event (MariaDB 10.11, ROW and
    # STATEMENT alike, measured): it can never be an errant transaction.
    heartbeat_write_sql = (
        "UPDATE mpp.heartbeat SET ts = %s WHERE id = 1 AND @@global.read_only = 0 "
        "AND UNIX_TIMESTAMP(NOW(6)) < %s"
    )
    heartbeat_setup_sql = (
        "CREATE DATABASE IF NOT EXISTS mpp",
        "CREATE TABLE IF NOT EXISTS mpp.heartbeat "
        "(id TINYINT UNSIGNED PRIMARY KEY, ts DOUBLE NOT NULL) ENGINE=InnoDB",
        "INSERT IGNORE INTO mpp.heartbeat (id, ts) VALUES (1, 0)",
    )
    # no mpp schema or table there yet: the row is not read (None), the probe goes on
    heartbeat_missing = frozenset({1049, 1146})

    def heartbeat_value(self, cur: Any) -> float | None:
        """The heartbeat row from the probe's next result (its third statement); None when
        this node has no heartbeat table yet (its error ends the batch, the session stays
        usable)."""
        try:
            if not cur.nextset():
                return None
        except Exception as err:  # the driver's error for the missing table
            code = getattr(err, "args", (None,))[0]
            if code in self.heartbeat_missing:
                return None
            raise
        row = cur.fetchone()
        return None if row is None or row[0] is None else float(row[0])

    # -- topology changes (mpp.act.executor) ---------------------------------------------------

    @property
    def _replica(self) -> str:
        return "SLAVE" if self.is_mariadb or self.version < (8, 0, 22) else "REPLICA"

    def fence_sql(self) -> list[str]:
        # super_read_only also stops SUPER users on MySQL; MariaDB has no such switch, which
        # is why fencing also kills client connections.
        if self.is_mariadb:
            return ["SET GLOBAL read_only = ON"]
        return ["SET GLOBAL super_read_only = ON"]

    def unfence_sql(self) -> list[str]:
        if self.is_mariadb:
            return ["SET GLOBAL read_only = OFF"]
        return ["SET GLOBAL super_read_only = OFF", "SET GLOBAL read_only = OFF"]

    @property
    def client_threads_sql(self) -> str:
        """Client sessions to kill when fencing (ID, STATE): not ours, not replication, not
        daemons."""
        # mpp's own account is spared (killing its probe would only make the node flap),
        # except a session of it waiting for a semi-sync acknowledgement: read_only waits
        # for that commit, and a cut-off mpp's heartbeat UPDATE stuck there kept an agent's
        # self-fence from finishing (two writable primaries; docs/quorum.md)
        return (
            "SELECT ID, STATE FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
            "AND USER NOT IN ('system user', 'event_scheduler') "
            "AND (USER <> SUBSTRING_INDEX(CURRENT_USER(), '@', 1) "
            "OR STATE LIKE 'Waiting for semi-sync ACK%') "
            "AND COMMAND NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon', "
            "'Slave_IO', 'Slave_SQL', 'Slave_worker')"
        )

    @staticmethod
    def waits_for_ack(state: str | None) -> bool:
        """A session waiting for a semi-sync acknowledgement, by its processlist STATE
        (MariaDB and MySQL before 8.0.26 say "slave", later MySQL "replica")."""
        return (state or "").startswith("Waiting for semi-sync ACK")

    @property
    def stop_io_sql(self) -> str:
        return f"STOP {self._replica} IO_THREAD"

    @property
    def io_thread_ids_sql(self) -> str | None:
        """Session ids of the replication receiver, to KILL before STOP ... IO_THREAD.

        On MariaDB, STOP SLAVE IO_THREAD on a replica whose source is hung (not dead) waits
        for the thread's reconnect attempt to time out (about slave_net_timeout, plus the
        semi-sync kill_conn_timeout): a second or more on every failover from a hung
        primary. KILL interrupts the thread at once (measured: 1 ms against 1,004 ms), after
        which STOP returns immediately. mpp manages the default replication connection
        only, which is the one replica a managed node has. MySQL's receiver has no
        processlist command of its own, so MySQL keeps the plain STOP (None).
        """
        if self.is_mariadb:
            return "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Slave_IO'"
        return None

    @property
    def binlog_pos_sql(self) -> str:
        return (
            "SELECT @@global.gtid_binlog_pos"
            if self.is_mariadb
            else "SELECT @@global.gtid_executed"
        )

    def wait_sql(self) -> tuple[str, int]:
        """Wait until a GTID position is applied: (SQL with %s pos and timeout, success value)."""
        if self.is_mariadb:
            return "SELECT MASTER_GTID_WAIT(%s, %s)", 0
        return "SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)", 0

    def promote_sql(self) -> list[str]:
        return [f"STOP {self._replica}", f"RESET {self._replica} ALL", *self.unfence_sql()]

    def semi_sync_sql(self, primary: bool, timeout_ms: int, strict: bool = False) -> list[str]:
        """Semi-sync for one role. A replica must not have the primary side on: in MariaDB
        that stalls its SQL thread when it has no replicas of its own. `strict`: the primary
        waits for an acknowledgement however long it takes, even with no replica connected
        (the timeout at its maximum, wait-no-replica on): it never turns asynchronous by
        itself."""
        if strict:
            timeout_ms = self.strict_timeout_ms
        if self.is_mariadb:
            if primary:
                wait = ["SET GLOBAL rpl_semi_sync_master_wait_no_slave = ON"] if strict else []
                return [
                    "SET GLOBAL rpl_semi_sync_slave_enabled = OFF",
                    "SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC'",
                    *wait,
                    f"SET GLOBAL rpl_semi_sync_master_timeout = {int(timeout_ms)}",
                    "SET GLOBAL rpl_semi_sync_master_enabled = ON",
                ]
            return [
                "SET GLOBAL rpl_semi_sync_master_enabled = OFF",
                "SET GLOBAL rpl_semi_sync_slave_enabled = ON",
                # STOP SLAVE on a semi-sync replica first tries to kill its dump thread on the
                # source; with a hung source that waits this long (default 5 s, capped by
                # slave_net_timeout): it is paid on every promotion and repoint
                "SET GLOBAL rpl_semi_sync_slave_kill_conn_timeout = 1",
            ]
        if primary:
            no_replica = ["SET GLOBAL rpl_semi_sync_source_wait_no_replica = ON"] if strict else []
            return [
                "SET GLOBAL rpl_semi_sync_replica_enabled = OFF",
                "SET GLOBAL rpl_semi_sync_source_wait_point = 'AFTER_SYNC'",
                *no_replica,
                f"SET GLOBAL rpl_semi_sync_source_timeout = {int(timeout_ms)}",
                "SET GLOBAL rpl_semi_sync_source_enabled = ON",
            ]
        return [
            "SET GLOBAL rpl_semi_sync_source_enabled = OFF",
            "SET GLOBAL rpl_semi_sync_replica_enabled = ON",
        ]

    def relax_semi_sync_sql(self) -> list[str]:
        """A strict primary let go (semi_sync_fallback): semi-sync primary off. Commits
        waiting for an acknowledgement return at once (measured on MariaDB 10.11) and later
        ones do not wait; the replicas' semi-sync side stays on, so turning the primary's
        back on needs no reconnection (they still count as its semi-sync clients)."""
        if self.is_mariadb:
            return ["SET GLOBAL rpl_semi_sync_master_enabled = OFF"]
        return ["SET GLOBAL rpl_semi_sync_source_enabled = OFF"]

    def tls_clause(self, tls: Tls | None) -> tuple[str, tuple[str, ...]]:
        """The CHANGE MASTER/REPLICATION SOURCE options that make replication use TLS as
        the pool's sessions do, with their %s values: MASTER_SSL=1, the CA (and a client
        certificate) at the same paths on the replica's host, the server's name checked
        for verify_identity. Nothing for a pool without TLS: the source's settings are
        then left as they were (a replica set up with TLS by hand keeps it)."""
        if tls is None:
            return "", ()
        word = "SOURCE" if self._uses_source() else "MASTER"
        parts, values = [f"{word}_SSL=1"], []
        for option, path in (("CA", tls.ca_file), ("CERT", tls.cert_file), ("KEY", tls.key_file)):
            if path is not None:
                parts.append(f"{word}_SSL_{option}=%s")
                values.append(path)
        if tls.required:
            verify = 1 if tls.mode == "verify_identity" else 0
            parts.append(f"{word}_SSL_VERIFY_SERVER_CERT={verify}")
        return ", " + ", ".join(parts), tuple(values)

    def heartbeat_clause(self, period: float) -> tuple[str, tuple[float, ...]]:
        """The CHANGE MASTER/REPLICATION SOURCE option that makes the source send a
        heartbeat every `period` seconds while it has nothing else to send (mpp sets its
        own poll interval). The servers' default is half of slave_net_timeout (30 s): a
        replica then shows no sign of a silent source for that long; with the interval,
        its received-heartbeat count moves every cycle while the source is alive."""
        word = "SOURCE" if self._uses_source() else "MASTER"
        return f", {word}_HEARTBEAT_PERIOD=%s", (round(max(0.001, period), 3),)

    def _uses_source(self) -> bool:
        return not self.is_mariadb and self.version >= (8, 0, 23)

    def repoint_sql(self) -> tuple[list[str], str, str]:
        """([stop, prepare...], change-source with %s host, port, user, password, start).

        MariaDB: a node that was a primary has a stale gtid_slave_pos, so the replica position
        is first set to everything the node has (gtid_current_pos: binlog and applied alike).
        A node with local (errant) transactions then fails loudly (error 1236) instead of
        silently skipping them, and MASTER_GTID_WAIT (which reads gtid_slave_pos) works for
        it at the next switchover.
        """
        if self.is_mariadb:
            change = (
                "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, "
                "MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1"
            )
            prepare = ["STOP SLAVE", "SET GLOBAL gtid_slave_pos = @@global.gtid_current_pos"]
            return prepare, change, "START SLAVE"
        elif self.version >= (8, 0, 23):
            change = (
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s, SOURCE_PORT=%s, SOURCE_USER=%s, "
                "SOURCE_PASSWORD=%s, SOURCE_AUTO_POSITION=1, SOURCE_CONNECT_RETRY=1"
            )
        else:
            change = (
                "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, "
                "MASTER_PASSWORD=%s, MASTER_AUTO_POSITION=1, MASTER_CONNECT_RETRY=1"
            )
        return [f"STOP {self._replica}"], change, f"START {self._replica}"

    def replication(self, row: dict[str, Any] | None) -> Replication | None:
        """A SHOW SLAVE/REPLICA STATUS row (dict cursor) -> Replication, or None if no row."""
        if not row:
            return None
        col = _columns(row)
        read_pos, exec_pos = _int(col("Read_Master_Log_Pos")), _int(col("Exec_Master_Log_Pos"))
        same_file = col("Master_Log_File") == col("Relay_Master_Log_File")
        pending = max(0, read_pos - exec_pos) if same_file else None
        behind = col("Seconds_Behind_Master")
        return Replication(
            source_host=str(col("Master_Host") or ""),
            source_port=_int(col("Master_Port")),
            io_running=str(col("Slave_IO_Running") or "No"),
            sql_running=col("Slave_SQL_Running") == "Yes",
            last_io_errno=_int(col("Last_IO_Errno")),
            last_io_error=str(col("Last_IO_Error") or ""),
            last_sql_errno=_int(col("Last_SQL_Errno")),
            last_sql_error=str(col("Last_SQL_Error") or ""),
            seconds_behind=None if behind is None else _int(behind),
            relay_pending_bytes=pending,
            using_gtid=str(col("Using_Gtid") or col("Auto_Position") or ""),
            gtid_io_pos=str(col("Gtid_IO_Pos") or col("Retrieved_Gtid_Set") or ""),
            # MASTER_DELAY / SOURCE_DELAY: MariaDB and MySQL both name the column SQL_Delay
            sql_delay=_int(col("SQL_Delay")),
        )


def detect(version: str) -> Flavor:
    """'10.11.19-MariaDB-0+deb12u1' -> mariadb 10.11.19; '8.0.36' -> mysql 8.0.36.

    MariaDB before 11 greets with '5.5.5-10.11.19-MariaDB...' (for old clients' sake):
    libmariadb strips that prefix, PyMySQL does not, and both must read 10.11.19."""
    numbers = re.match(r"(?:5\.5\.5-)?(\d+)\.(\d+)\.(\d+)", version)
    parsed = (
        (int(numbers.group(1)), int(numbers.group(2)), int(numbers.group(3)))
        if numbers
        else (0, 0, 0)
    )
    return Flavor("mariadb" if "mariadb" in version.lower() else "mysql", parsed)


# MySQL 8.0.22+ column names for the MariaDB/old-MySQL names used above.
_RENAMED = {
    "Read_Master_Log_Pos": "Read_Source_Log_Pos",
    "Exec_Master_Log_Pos": "Exec_Source_Log_Pos",
    "Master_Log_File": "Source_Log_File",
    "Relay_Master_Log_File": "Relay_Source_Log_File",
    "Seconds_Behind_Master": "Seconds_Behind_Source",
    "Master_Host": "Source_Host",
    "Master_Port": "Source_Port",
    "Slave_IO_Running": "Replica_IO_Running",
    "Slave_SQL_Running": "Replica_SQL_Running",
}


def _columns(row: dict[str, Any]) -> Any:
    def col(name: str) -> Any:
        if name in row:
            return row[name]
        return row.get(_RENAMED.get(name, name))

    return col


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
