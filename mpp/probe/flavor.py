"""MySQL versus MariaDB: every SQL difference mpp cares about, in one place.

Detected from the server's version string once per connection. Callers ask a Flavor for
SQL text or hand it a raw row to normalise; nothing else in mpp says `if mariadb`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mpp.model import Replication


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
        """The trivial query of MPP's connect check, also reading read_only and GTIDs."""
        gtid = "@@global.gtid_current_pos" if self.is_mariadb else "@@global.gtid_executed"
        return f"SELECT @@global.read_only, {gtid}"

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
        )


def detect(version: str) -> Flavor:
    """'10.11.19-MariaDB-0+deb12u1' -> mariadb 10.11.19; '8.0.36' -> mysql 8.0.36."""
    numbers = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
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
