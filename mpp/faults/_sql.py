"""The few connection helpers every part of the harness shares.

They live apart from the injectors, workloads and watchers so that none of those has to
import another just to open a session.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from pathlib import Path
from typing import Any, TypeAlias

import pymysql
import pymysql.connections
import pymysql.cursors

from mpp import sandbox

HOST = "127.0.0.1"

# Short enough that a hung (SIGSTOPped) server cannot block a client for long: the kernel
# still completes its TCP handshake, so only read/write timeouts ever fire.
WRITE_TIMEOUT = 0.5

# The table the workloads write to. "bench" because the benches created it first; keeping
# the name keeps their data where it always was.
TABLE = "bench"

# a string: PyMySQL's Connection is generic only in its type stubs
Conn: TypeAlias = "pymysql.connections.Connection[pymysql.cursors.Cursor]"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def now() -> float:
    """Wall clock, not monotonic: mpp stamps its history events with time.time() too, and
    the benches compare the two."""
    return time.time()


def err_text(err: BaseException) -> str:
    """A server error as its code and message (what a person compares between runs)."""
    if isinstance(err, pymysql.MySQLError) and len(err.args) > 1:
        return f"{err.args[0]} {err.args[1]}"
    return f"{type(err).__name__}: {err}"


def table_name(table: str) -> str:
    """The table's name, checked: it is put into SQL text, where no placeholder can go."""
    if not _IDENTIFIER.match(table):
        raise ValueError(f"not a plain table name: {table!r}")
    return table


def app_connect(port: int, timeout: float = WRITE_TIMEOUT, host: str = HOST) -> Conn:
    """A session as the sandbox's `app` user: it has no SUPER, so read_only stops it the way
    it stops a real application (root would write through read_only)."""
    return pymysql.connect(
        host=host,
        port=port,
        user=sandbox.APP_USER,
        password=sandbox.APP_PASSWORD,
        database=sandbox.APP_DATABASE,
        autocommit=True,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        ssl_disabled=True,
    )


def root_sql(d: Path, node: str, sql: str, timeout: float = 2.0) -> list[Any]:
    """One statement as root in a session of its own, with a deadline (a hung node must
    not hang the checker)."""
    conn = sandbox.admin_connect(d, node, connect_timeout=timeout, read_timeout=timeout)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def slave_status(d: Path, node: str, timeout: float = 2.0) -> dict[str, Any]:
    """SHOW SLAVE STATUS as column -> value ({} on a node that replicates from nobody): the
    injectors read it to undo exactly what they changed, the watchers to judge a fault."""
    conn = sandbox.admin_connect(d, node, connect_timeout=timeout, read_timeout=timeout)
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SHOW SLAVE STATUS")
            row: dict[str, Any] | None = cur.fetchone()
        return dict(row) if row else {}
    finally:
        conn.close()


def ports(d: Path) -> dict[str, int]:
    """Node name -> port, as the workloads address nodes (by port, like a client would)."""
    return {n.name: n.port for n in sandbox.status(d)}


class Background(threading.Thread):
    """A harness thread (workload or watcher) that runs until `close`: a daemon, so a
    scenario that fails half-way never leaves the test process waiting on it."""

    def __init__(self, name: str) -> None:
        super().__init__(daemon=True, name=name)
        self.stop = threading.Event()

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=5)


def drop(conn: Conn | None) -> None:
    """Close a session that may already be broken (a killed or hung server)."""
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()
