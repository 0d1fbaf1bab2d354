"""Faults put into a sandbox node: the failures a manager must survive, made on purpose.

Process faults go through mpp.sandbox (which only ever signals a mariadbd it started, and
waits for a killed one to be gone), so a scenario cannot hit another test's server. The SQL
faults are the two states a manager exists to prevent or detect: a second writable node
(split brain) and a primary that lacks writes it acknowledged.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from mpp import sandbox

from ._sql import TABLE, table_name

__all__ = ["Fault", "delete_unlogged", "hang", "inject", "kill", "resume", "set_read_only"]

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
