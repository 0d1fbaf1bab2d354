"""The agent's admin session to its own server: is it writable, and the fence itself.

The fence is the executor's (mpp.act.executor), done from beside the server: read_only
(super_read_only on MySQL) requested in a session of its own, client sessions killed while
it is pending, then once more after. What is killed is `Flavor.client_threads_sql`: every
session except this one, the server's own threads (`system user`, `event_scheduler`,
`Daemon`), its replication threads (`Slave_IO`, `Slave_SQL`, `Slave_worker`), the `Binlog
Dump` threads of its replicas (they only read; a read-only server sends them nothing new,
and cutting them would only delay their catch-up), and the sessions of the agent's own
account (mpp's probes use it too: killing them would only make the node flap). Everyone
else, the application above all, is cut off and reconnects wherever writes go now.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import pymysql
from pydantic import SecretStr

from mpp.act.executor import kill_clients
from mpp.config.agent import DepthConfig
from mpp.probe.connection import Target, open_connection
from mpp.probe.flavor import detect

_FENCE_SECONDS = 10.0  # read_only waits for commits in progress; a hung one is killed meanwhile


class LocalServer:
    """One held session for the checks; the fence opens its own."""

    def __init__(self, cfg: DepthConfig, password: SecretStr, node: str) -> None:
        self.target = Target(
            node=node,
            host=cfg.host,
            port=cfg.port,
            user=cfg.user,
            password=password,
            connect_timeout=cfg.connect_timeout,
            query_timeout=max(cfg.connect_timeout, 1.0),
            source_address=cfg.source_address,
        )
        self._conn: Any = None

    def writable(self) -> bool | None:
        """The server takes writes (read_only off; on MySQL super_read_only implies
        read_only, so one variable answers for both); None when the server does not
        answer (nothing to fence then, or nothing we can do)."""
        try:
            if self._conn is None:
                self._conn = open_connection(self.target)
            with self._conn.cursor() as cur:
                cur.execute("SELECT @@global.read_only")
                row = cur.fetchone()
            return row is not None and int(row[0]) == 0
        except Exception:  # any failure: unknown, and a fresh session next time
            self.close()
            return None

    def fence(self) -> str:
        """Make the server read-only and cut its clients off; what was done, in words.
        Raises pymysql.MySQLError when the server could not be made read-only."""
        request = _ReadOnly(self.target)
        conn = open_connection(self.target, _FENCE_SECONDS)
        killed = 0
        try:
            flavor = detect(conn.get_server_info())  # type: ignore[no-untyped-call]
            deadline = time.monotonic() + _FENCE_SECONDS
            while not request.done.wait(0.05) and time.monotonic() < deadline:
                killed += kill_clients(conn, flavor)  # a commit read_only waits for
            if request.failure is not None:
                raise request.failure
            if not request.done.is_set():
                raise pymysql.err.OperationalError(2013, "read_only not set in time")
            killed += kill_clients(conn, flavor)
        finally:
            conn.close()
        return f"read_only on, {killed} client session(s) killed"

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None


class _ReadOnly:
    """SET GLOBAL read_only in a session of its own: it waits for commits in progress,
    and the killing goes on meanwhile from the other session."""

    def __init__(self, target: Target) -> None:
        self.done = threading.Event()
        self.failure: BaseException | None = None
        threading.Thread(target=self._run, args=(target,), daemon=True, name="read-only").start()

    def _run(self, target: Target) -> None:
        try:
            conn = open_connection(target, _FENCE_SECONDS)
            try:
                with conn.cursor() as cur:
                    for sql in detect(conn.get_server_info()).fence_sql():  # type: ignore[no-untyped-call]
                        cur.execute(sql)
            finally:
                conn.close()
        except BaseException as err:  # reported by fence(), in the agent's thread
            self.failure = err
        finally:
            self.done.set()
