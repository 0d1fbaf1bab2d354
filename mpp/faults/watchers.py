"""Observers that turn a scenario into a verdict: was the pool ever unsafe, was a write lost.

The two safety properties a manager promises are checked from outside it, on the servers
themselves, so that a bug in the manager cannot hide its own failure:

- at most one writable node at any time (`ReadOnlySampler`: @@read_only on every node,
  every few ms);
- no acknowledged write missing on the final primary (`lost_ids`, fed with a workload's
  record of acknowledged ids).

The other watchers time what happens in between: when replicas notice a dead primary
(`IoWatch`), when a woken node becomes read-only (`ReadOnlyWatch`), and when a node has
caught up (`wait_caught_up`). Every probe has a deadline: a SIGSTOPped server accepts TCP
connections and then never answers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pymysql
import pymysql.cursors

from mpp import sandbox

from ._sql import (
    TABLE,
    Background,
    Conn,
    drop,
    err_text,
    now,
    root_sql,
    slave_status,
    table_name,
)

__all__ = [
    "IoWatch",
    "ReadOnlySampler",
    "ReadOnlyWatch",
    "Round",
    "gtid_binlog_pos",
    "lost_ids",
    "poll_until",
    "present_ids",
    "replica_status",
    "wait_caught_up",
    "wait_for",
]

T = TypeVar("T")

_ID_CHUNK = 1000  # ids per IN (...) list: one short statement each, whatever the table size


# --------------------------------------------------------------------------- split brain


@dataclass(frozen=True)
class Round:
    """One sample of every node, taken concurrently: `started` to `ended` is the window in
    which the values held together. None: no answer within the timeout (down or hung)."""

    started: float
    ended: float
    read_only: dict[str, int | None]
    # when each node's answer arrived: a round lasts as long as its slowest node (a hung one
    # makes it `timeout` long), so the round's window is too coarse to date one answer
    answered: dict[str, float] = field(default_factory=dict)

    @property
    def writable(self) -> list[str]:
        return sorted(n for n, v in self.read_only.items() if v == 0)


@dataclass
class _Probe:
    d: Path
    node: str
    timeout: float
    conn: Conn | None = field(default=None)

    def read_only(self) -> int | None:
        try:
            if self.conn is None:
                self.conn = sandbox.admin_connect(
                    self.d,
                    self.node,
                    connect_timeout=self.timeout,
                    read_timeout=self.timeout,
                    write_timeout=self.timeout,
                )
            with self.conn.cursor() as cur:
                cur.execute("SELECT @@global.read_only")
                row = cur.fetchone()
            return int(row[0]) if row else None
        except Exception:
            self.close()
            return None

    def timed(self) -> tuple[int | None, float]:
        """read_only and when the answer came."""
        value = self.read_only()
        return value, now()

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = None


class ReadOnlySampler(Background):
    """Samples @@read_only on every node every `every` seconds and keeps each round.

    The nodes of a round are probed at the same time (one thread each, reused connections),
    so two nodes writable in one round were writable together within that round's few
    milliseconds: the split brain that a manager must never allow. A node that does not
    answer counts as not writable in that round; a hung node thus makes rounds as long as
    `timeout` but never stops the sampling.
    """

    def __init__(
        self, d: Path, nodes: list[str] | None = None, every: float = 0.05, timeout: float = 0.5
    ) -> None:
        super().__init__("read-only-sampler")
        names = nodes if nodes is not None else [n.name for n in sandbox.status(d)]
        self.every = every
        self.rounds: list[Round] = []
        self._probes = [_Probe(d, n, timeout) for n in names]
        self._pool = ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="ro-sample")

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                started = now()
                values = list(self._pool.map(_Probe.timed, self._probes))
                self.rounds.append(
                    Round(
                        started,
                        now(),
                        {p.node: v for p, (v, _) in zip(self._probes, values, strict=True)},
                        {p.node: t for p, (_, t) in zip(self._probes, values, strict=True)},
                    )
                )
                self.stop.wait(self.every)
        finally:
            for p in self._probes:
                p.close()

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def snapshot(self, since: float = 0.0) -> list[Round]:
        return [r for r in list(self.rounds) if r.started >= since]

    def max_writable(self, since: float = 0.0) -> int:
        """The most nodes writable at once (1 is the only safe answer while a primary
        serves; 0 is an outage, 2 or more is split brain)."""
        return max((len(r.writable) for r in self.snapshot(since)), default=0)

    def worst(self, since: float = 0.0) -> Round | None:
        """The first round with the most writable nodes: when and which."""
        rounds = self.snapshot(since)
        return max(rounds, key=lambda r: len(r.writable), default=None)

    def wait_rounds(self, count: int, timeout: float = 10.0) -> bool:
        """Until `count` more rounds have been taken, so a verdict rests on fresh samples."""
        target = len(self.rounds) + count
        return poll_until(lambda: len(self.rounds) >= target or None, timeout) is not None


class ReadOnlyWatch(Background):
    """Polls @@read_only on one node (as root, short timeouts) and records each value."""

    def __init__(self, d: Path, node: str) -> None:
        super().__init__("ro-watch")
        self.d = d
        self.node = node
        self.values: list[tuple[float, str]] = []

    def run(self) -> None:
        conn: Conn | None = None
        last = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = sandbox.admin_connect(
                        self.d, self.node, connect_timeout=0.5, read_timeout=0.5, write_timeout=0.5
                    )
                with conn.cursor() as cur:
                    cur.execute("SELECT @@global.read_only")
                    row = cur.fetchone()
                value = str(int(row[0])) if row else "?"
            except Exception as err:
                value = f"(error {err_text(err)})"
                with contextlib.suppress(Exception):
                    if conn is not None:
                        conn.close()
                conn = None
            if value != last:
                self.values.append((now(), value))
                last = value
            self.stop.wait(0.01)
        drop(conn)


# --------------------------------------------------------------------------- replication


class IoWatch(Background):
    """Polls Slave_IO_Running on the replicas; records every change with its time.

    The first change after a primary fails is the floor of any failover: a manager that
    asks the replicas cannot safely act before they have noticed.
    """

    def __init__(self, d: Path, replicas: list[str], period: float = 0.02) -> None:
        super().__init__("io-watch")
        self.d = d
        self.replicas = replicas
        self.period = period
        self.changes: list[tuple[float, str, str]] = []

    def run(self) -> None:
        conns: dict[str, Conn] = {}
        last: dict[str, str] = {}
        while not self.stop.is_set():
            for name in self.replicas:
                try:
                    if name not in conns:
                        conns[name] = sandbox.admin_connect(
                            self.d, name, connect_timeout=1, read_timeout=1, write_timeout=1
                        )
                    with conns[name].cursor(pymysql.cursors.DictCursor) as cur:
                        cur.execute("SHOW SLAVE STATUS")
                        row = cur.fetchone()
                    state = str(row["Slave_IO_Running"]) if row else "(none)"
                except Exception as err:
                    state = f"(error {err_text(err)})"
                    with contextlib.suppress(Exception):
                        conns.pop(name).close()
                if last.get(name) != state:
                    last[name] = state
                    self.changes.append((now(), name, state))
            self.stop.wait(self.period)
        for c in conns.values():
            with contextlib.suppress(Exception):
                c.close()

    def first_loss(self, after: float) -> tuple[float, str, str] | None:
        for t, name, state in list(self.changes):
            if t > after and state != "Yes":
                return t, name, state
        return None


def replica_status(d: Path, node: str, timeout: float = 2.0) -> dict[str, Any]:
    """One node's SHOW SLAVE STATUS, every column ({} when it replicates from nobody): what
    the replication faults are judged on, read as root in a session of its own so that it
    answers even while the node is out of connections for everyone else (root's session
    is refused then too: call it before, or through a session held open). MariaDB 10.11
    still names the columns Slave_IO_Running, Seconds_Behind_Master, Last_IO_Errno, ...
    Seconds_Behind_Master is None while the IO thread is not connected."""
    return slave_status(d, node, timeout)


def gtid_binlog_pos(d: Path, node: str) -> str:
    """What a node has written (not gtid_slave_pos, which stays stale after a promotion)."""
    return str(root_sql(d, node, "SELECT @@global.gtid_binlog_pos")[0][0])


def wait_caught_up(d: Path, node: str, pos: str, timeout: float = 10.0) -> bool:
    """Until `node` has applied GTID position `pos` (MASTER_GTID_WAIT), so that what it
    lacks afterwards is really missing, not merely late."""
    rows = root_sql(
        d, node, f"SELECT MASTER_GTID_WAIT('{pos}', {float(timeout)})", timeout=timeout + 5
    )
    return bool(rows) and rows[0][0] is not None and int(rows[0][0]) == 0


# --------------------------------------------------------------------------- lost writes


def present_ids(
    d: Path, node: str, ids: Iterable[int], table: str = TABLE, timeout: float = 10.0
) -> set[int]:
    """Which of `ids` the node has, asked in chunks so that neither a big table nor a long
    list of ids makes one huge statement."""
    wanted = sorted({int(i) for i in ids})
    name = table_name(table)
    found: set[int] = set()
    for start in range(0, len(wanted), _ID_CHUNK):
        chunk = ", ".join(str(i) for i in wanted[start : start + _ID_CHUNK])
        rows = root_sql(d, node, f"SELECT id FROM app.{name} WHERE id IN ({chunk})", timeout)
        found.update(int(r[0]) for r in rows)
    return found


def lost_ids(
    d: Path, node: str, acked: Iterable[int], table: str = TABLE, timeout: float = 10.0
) -> list[int]:
    """Acknowledged ids the node lacks, sorted. Take the record of acknowledgements before
    calling: every id in it had committed by then, so any id missing is a lost write (on a
    replica, wait for it to catch up first)."""
    wanted = {int(i) for i in acked}
    return sorted(wanted - present_ids(d, node, wanted, table, timeout))


# --------------------------------------------------------------------------- waiting


def poll_until(check: Callable[[], T | None], timeout: float, period: float = 0.02) -> T | None:
    """Poll `check` until it returns a true value, or `timeout` seconds pass; returns its
    last value. Scenarios wait on conditions, never on sleeps
    alone, so they stay quick on an idle machine and patient on a loaded one."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(period)


def wait_for(
    what: str, check: Callable[[], bool], timeout: float = 15.0, every: float = 0.1
) -> float:
    """Call `check` every `every` seconds until it is true; the seconds that took. After
    `timeout` seconds: TimeoutError naming `what` (a test fails, a bench stops, saying why)."""
    started = time.monotonic()
    while not check():
        waited = time.monotonic() - started
        if waited > timeout:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - started
