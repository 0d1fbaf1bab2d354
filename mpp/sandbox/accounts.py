"""The accounts every sandbox node has, and the passwords the demo and tests log in with.

Fixed passwords (the sandbox is throw-away and listens on 127.0.0.1 only) except mpp's
own, which is random per sandbox so that the demo exercises ``password_file``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pymysql.connections
import pymysql.cursors

from mpp.sandbox.layout import HOST, PASSWORD_FILE

ROOT_PASSWORD = "sandbox-root"
MPP_USER = "mpp"
APP_USER = "app"
APP_PASSWORD = "app"
APP_DATABASE = "app"
REPL_USER = "repl"
REPL_PASSWORD = "sandbox-repl"


def ensure_password(d: Path) -> str:
    """mpp's password from D/mpp.password (0600), made once and reused by every ``up``."""
    path = d / PASSWORD_FILE
    if path.exists():
        password = path.read_text().strip()
        if password:
            return password
    password = secrets.token_urlsafe(18)
    write_secret(path, password)
    return password


def write_secret(path: Path, text: str) -> None:
    """A file only its owner may read, from its first byte: created 0600 (a write then a
    chmod leaves a moment in which every local user can read it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode is ignored when the file already existed
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def provision(
    conn: pymysql.connections.Connection[pymysql.cursors.Cursor], mpp_password: str
) -> None:
    """Create the accounts on one node through a root session, unreplicated, idempotently.

    mariadb-install-db writes no binlog, so each node has to get its users locally;
    logging these statements would make every node replay the others' CREATE USERs.
    Root passwords are set last, so a node whose root password already works is known
    to have been provisioned completely.
    """
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
        everything = ("ALL PRIVILEGES ON *.*", " WITH GRANT OPTION")
        app = (f"SELECT, INSERT, UPDATE, DELETE, CREATE, DROP ON `{APP_DATABASE}`.*", "")
        accounts = [
            (MPP_USER, HOST, mpp_password, *everything),
            # mpp may come from another loopback address ([mpp] source_address): the fault
            # matrix cuts mpp's path alone that way
            (MPP_USER, "127.0.0.%", mpp_password, *everything),
            (REPL_USER, HOST, REPL_PASSWORD, "REPLICATION SLAVE ON *.*", ""),
            (APP_USER, HOST, APP_PASSWORD, *app),
            ("root", HOST, ROOT_PASSWORD, *everything),
        ]
        for user, host, password, privileges, grant_option in accounts:
            account = f"'{user}'@'{host}'"
            quoted = account.replace("%", "%%")  # the statements below take a parameter
            cur.execute(f"CREATE USER IF NOT EXISTS {quoted} IDENTIFIED BY %s", (password,))
            cur.execute(f"ALTER USER {quoted} IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT {privileges} TO {account}{grant_option}")
        cur.execute("ALTER USER 'root'@'localhost' IDENTIFIED BY %s", (ROOT_PASSWORD,))
