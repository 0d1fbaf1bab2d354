"""Wiring the nodes together with GTID replication, once per sandbox: a master-master ring
(db1 <- dbN, db2 <- db1, ...) or a primary-replica star (db1 -> every other node, read_only),
then the ``app`` database created through the binlog to prove that it flows."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pymysql.cursors

from mpp.sandbox.accounts import APP_DATABASE, REPL_PASSWORD, REPL_USER, ROOT_PASSWORD
from mpp.sandbox.errors import SandboxError
from mpp.sandbox.layout import HOST
from mpp.sandbox.processes import POLL
from mpp.sandbox.sessions import root_connect
from mpp.sandbox.state import NodeRecord, State

_REPLICATION_TIMEOUT = 20.0


def _sources(state: State) -> dict[str, NodeRecord]:
    """Which node each node replicates from, per topology."""
    recs = state.nodes
    if len(recs) == 1:
        return {}
    if state.topology == "master-master":
        # db1 <- dbN, db2 <- db1, ...; for two nodes this is simply db1 <-> db2.
        return {rec.name: recs[i - 1] for i, rec in enumerate(recs)}
    return {rec.name: recs[0] for rec in recs[1:]}


def _describe_replication(state: State) -> str:
    names = [r.name for r in state.nodes]
    if len(names) == 1:
        return "replication: none (single node)"
    if state.topology == "master-master":
        if len(names) == 2:
            return f"replication: {names[0]}<->{names[1]}"
        return "replication: ring " + "->".join([*names, names[0]])
    return f"replication: {names[0]} -> {', '.join(names[1:])} (replicas read_only)"


def configure_replication(
    state: State, targets: list[NodeRecord], say: Callable[[str], None]
) -> None:
    """Point each target at its source and wait until its IO and SQL threads run.

    ``targets`` is the whole topology the first time and only re-initialised nodes later:
    repointing the others would undo a failover that mpp performed in the meantime.
    """
    sources = _sources(state)
    whole_topology = len(targets) == len(state.nodes)
    targets = [rec for rec in targets if rec.name in sources]
    if whole_topology:
        say(_describe_replication(state))
    for rec in targets:
        source = sources[rec.name]
        if not whole_topology:
            say(f"replication: {rec.name} <- {source.name} (re-initialised node)")
        with root_connect(rec.port, ROOT_PASSWORD) as conn, conn.cursor() as cur:
            if state.topology == "primary-replica":
                cur.execute("SET GLOBAL read_only = ON")
            cur.execute("STOP SLAVE")
            cur.execute(
                "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, "
                "MASTER_PASSWORD = %s, MASTER_CONNECT_RETRY = 1, "
                "MASTER_USE_GTID = slave_pos",
                (HOST, source.port, REPL_USER, REPL_PASSWORD),
            )
            cur.execute("START SLAVE")
    _wait_replicating(targets)
    if targets:
        say("replication: all IO and SQL threads running")
    if whole_topology and state.topology == "primary-replica" and state.read_only_start:
        # the one writable node, once: later restarts of it start read-only (see server.py)
        with root_connect(state.nodes[0].port, ROOT_PASSWORD) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL read_only = OFF")


def _slave_status(rec: NodeRecord) -> dict[str, Any] | None:
    with (
        root_connect(rec.port, ROOT_PASSWORD) as conn,
        conn.cursor(pymysql.cursors.DictCursor) as cur,
    ):
        cur.execute("SHOW SLAVE STATUS")
        row: dict[str, Any] | None = cur.fetchone()
        return row


def _wait_replicating(targets: list[NodeRecord]) -> None:
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
        time.sleep(POLL)


def create_app_database(state: State, say: Callable[[str], None]) -> None:
    """Create the ``app`` database on db1 and wait until every node has it."""
    # Created only now, through the binlog, so that it exercises replication and every
    # node gets it with the same GTID.
    first = state.nodes[0]
    with root_connect(first.port, ROOT_PASSWORD) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{APP_DATABASE}`")
    deadline = time.monotonic() + _REPLICATION_TIMEOUT
    pending = list(state.nodes)
    while pending:
        for rec in list(pending):
            with root_connect(rec.port, ROOT_PASSWORD) as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                    (APP_DATABASE,),
                )
                if cur.fetchone() is not None:
                    pending.remove(rec)
        if not pending:
            break
        if time.monotonic() > deadline:
            missing = ", ".join(r.name for r in pending)
            raise SandboxError(
                f"database `{APP_DATABASE}` created on {first.name} did not reach {missing} "
                f"within {_REPLICATION_TIMEOUT:.0f} s; check SHOW SLAVE STATUS there"
            )
        time.sleep(POLL)
    say(f"app: database `{APP_DATABASE}` created on {first.name}, present on every node")
