"""Sessions to sandbox nodes: one way to connect, for setup, for tests and for benchmarks.

Every session has TLS off (the sandbox has none, and PyMySQL's "preferred" TLS costs ~58 ms
per connect) and read/write timeouts, because a SIGSTOPped server still accepts TCP
connections and would otherwise hang the caller forever.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeAlias

import pymysql
import pymysql.connections
import pymysql.cursors
import pymysql.err

from mpp.sandbox.accounts import APP_PASSWORD, APP_USER, ROOT_PASSWORD
from mpp.sandbox.errors import SandboxError
from mpp.sandbox.layout import HOST
from mpp.sandbox.state import NodeRecord, find_node, require_state

Session: TypeAlias = "pymysql.connections.Connection[pymysql.cursors.Cursor]"

# The server's answer "Access denied": proof that it runs, and a hint to try another password.
_ACCESS_DENIED = 1045


def connect(port: int, user: str, password: str, timeout: float, /, **overrides: Any) -> Session:
    """A session to 127.0.0.1:port; keyword arguments override any PyMySQL option."""
    options: dict[str, Any] = {
        "host": HOST,
        "port": port,
        "user": user,
        "password": password,
        "autocommit": True,
        "connect_timeout": timeout,
        "read_timeout": timeout,
        "write_timeout": timeout,
        "ssl_disabled": True,
    }
    options.update(overrides)
    return pymysql.connect(**options)


def root_connect(port: int, password: str, timeout: float = 5.0) -> Session:
    """A root session for setting nodes up, the password given because it changes once."""
    return connect(port, "root", password, timeout)


def root_passwords(rec: NodeRecord) -> tuple[str, str]:
    """Root passwords to try, likeliest first (install-db leaves root without one)."""
    return (ROOT_PASSWORD, "") if rec.provisioned else ("", ROOT_PASSWORD)


def accepts_connections(port: int, password: str) -> bool:
    """Whether a server answers on the port at all, which is what "started" means."""
    try:
        root_connect(port, password, timeout=1.0).close()
    except pymysql.err.OperationalError as exc:
        # "Access denied" is an answer from a running server all the same.
        return bool(exc.args and exc.args[0] == _ACCESS_DENIED)
    except (pymysql.err.MySQLError, OSError):
        return False
    return True


def root_session(rec: NodeRecord) -> Session:
    """Connect as root whether or not the node has been provisioned yet."""
    first, second = root_passwords(rec)
    try:
        return root_connect(rec.port, first)
    except pymysql.err.OperationalError as exc:
        if not (exc.args and exc.args[0] == _ACCESS_DENIED):
            raise SandboxError(f"{rec.name}: cannot connect on port {rec.port}: {exc}") from exc
    try:
        return root_connect(rec.port, second)
    except pymysql.err.MySQLError as exc:
        raise SandboxError(
            f"{rec.name}: root login refused with both the sandbox password and an empty "
            f"one ({exc}); the datadir was not made by this sandbox. Run `mpp sandbox destroy`"
        ) from exc


def admin_connect(directory: Path, name: str, **kw: Any) -> Session:
    """Open a root session to one node for a test or a benchmark; keyword arguments
    override the defaults (2 s to connect, 10 s per read or write)."""
    d = directory.resolve()
    rec = find_node(require_state(d), name)
    return connect(rec.port, "root", ROOT_PASSWORD, 10, **{"connect_timeout": 2, **kw})


def server_id_at(port: int, timeout: float = 2.0) -> int | None:
    """@@server_id of whichever server answers on 127.0.0.1:port (directly, or through a
    proxy or mpp's router) to a new app-user connection; None when nothing answers.

    The sandbox gives dbN server_id N, so tests and benchmarks use this to tell where a
    load balancer sent a connection.
    """
    try:
        conn = connect(port, APP_USER, APP_PASSWORD, timeout, autocommit=False)
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
