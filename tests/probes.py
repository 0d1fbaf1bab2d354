"""Asking real servers from a test: app-user connections, where new connections to a port
land (by @@server_id: the sandbox gives dbN server_id N), a node's replication role, and
mpp's HTTP API."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias

import pymysql

from mpp import faults, sandbox
from mpp.faults import wait_for

Connection: TypeAlias = "pymysql.connections.Connection[Any]"


def app_connect(port: int, timeout: float = 5.0) -> Connection:
    """A new connection as the sandbox's app user to 127.0.0.1:port (a node, or a proxy):
    the fault harness's, with the longer timeout tests want."""
    return faults.app_connect(port, timeout)


def query_one(conn: Connection, sql: str, args: Any = None) -> Any:
    """The first column of the first row (None without one)."""
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
        return row[0] if row else None


def routes_to(
    port: int,
    expected: set[int],
    tries: int = 4,
    timeout: float = 20.0,
    connect_timeout: float = 2.0,
    explain: Callable[[], str] = str,
) -> list[int | None]:
    """Wait until `tries` new connections in a row to `port` all reach a server whose
    @@server_id is in `expected`; the ids they reached. On timeout the error has the last
    ids seen and `explain()` (a proxy's stats, say)."""
    seen: list[int | None] = []

    def check() -> bool:
        seen[:] = [sandbox.server_id_at(port, timeout=connect_timeout) for _ in range(tries)]
        return all(s in expected for s in seen)

    try:
        wait_for(f"port {port} to route to {expected}", check, timeout)
    except AssertionError as err:
        raise AssertionError(f"{err}; last seen {seen}\n{explain()}") from None
    return seen


def node_port(directory: Path, node: str) -> int:
    """The port of a sandbox's node."""
    return next(n.port for n in sandbox.status(directory) if n.name == node)


def role(directory: Path, node: str) -> tuple[int, int | None]:
    """(read_only, source port or None) of a sandbox's node, as the server itself says."""
    conn = sandbox.admin_connect(directory, node)
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SELECT @@global.read_only AS ro")
            read_only = int(cur.fetchone()["ro"])  # type: ignore[index]
            cur.execute("SHOW SLAVE STATUS")
            row: Any = cur.fetchone()
    finally:
        conn.close()
    return read_only, (int(row["Master_Port"]) if row else None)


def http(url: str, method: str = "GET", token: str | None = None) -> tuple[int, str]:
    """(status, body) of one HTTP request; (0, the error) when nothing answers."""
    request = urllib.request.Request(url, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError as err:
        return 0, str(err)


def metric(text: str, series: str) -> float | None:
    """The value of one series in a Prometheus text exposition, None if it is not there."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None
