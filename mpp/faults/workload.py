"""Clients that write while faults happen, and keep an exact record of what was acknowledged.

Safety is judged from the client's side: a write the server answered OK is a promise, and
the record of those promises (id and time) is what the watchers later check against the
surviving primary. An INSERT that got no answer is ambiguous (it may or may not have
committed) and is kept apart: it is never counted as lost.

Three kinds of client, because applications differ in how they find the primary:

- `Writer` finds the writable node by itself after every error (a client behind a correct
  router or with a discovery library);
- `StaleClient` keeps writing to one address whatever happens (a cached address);
- `PatientClient` sends one INSERT per second to one address, each with a long timeout in a
  connection of its own (an application without a short read timeout).

All write as the sandbox's `app` user, which lacks SUPER, so read_only stops them as it
stops a real application.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import pymysql

from ._sql import (
    TABLE,
    WRITE_TIMEOUT,
    Background,
    Conn,
    app_connect,
    drop,
    err_text,
    now,
    root_sql,
    table_name,
)

__all__ = [
    "REFUSED_BY_READ_ONLY",
    "TABLE",
    "WRITE_TIMEOUT",
    "Ack",
    "PatientClient",
    "StaleClient",
    "Writer",
    "create_table",
]

# ER_OPTION_PREVENTS_STATEMENT (read_only) and ER_READ_ONLY_MODE: the server refused the
# INSERT before doing anything, so the write certainly did not happen.
REFUSED_BY_READ_ONLY = (1290, 1836)


@dataclass
class Ack:
    """One acknowledged write: the id the server said OK to, when, and which node."""

    id: int
    at: float
    node: str
    sent: float | None = None  # when the write went out, where the workload records it


def create_table(d: Path, node: str = "db1", table: str = TABLE) -> None:
    """The workloads' table, created through the binlog on the primary so that every
    replica gets it the way it gets the writes."""
    root_sql(d, node, f"CREATE TABLE IF NOT EXISTS app.{table_name(table)} (id INT PRIMARY KEY)")


def _insert_sql(table: str) -> str:
    return f"INSERT INTO {table_name(table)} (id) VALUES (%s)"


class Writer(Background):
    """Small autocommit INSERTs as fast as possible; finds the writable node by itself.

    After any error it drops its connection and probes every node concurrently (short
    timeouts; a node still being probed is not probed twice), and takes the first one that
    answers @@read_only = 0. An INSERT that got an OK packet is acknowledged; one that got
    no answer is ambiguous (it may or may not have committed) and is never counted as lost.
    """

    def __init__(
        self, nodes: dict[str, int], first_id: int = 1, table: str = TABLE, rate: float = 0.0
    ) -> None:
        super().__init__("writer")
        self.pause = 1.0 / rate if rate > 0 else 0.0  # 0: flat out
        self.nodes = nodes
        self.next_id = first_id
        self.acks: list[Ack] = []
        self.ambiguous: list[int] = []
        self.errors: list[tuple[float, str, str]] = []
        self.connects: list[tuple[float, str]] = []
        self._sql = _insert_sql(table)
        self._pool = ThreadPoolExecutor(max_workers=2 * len(nodes), thread_name_prefix="find")
        self._inflight: dict[str, Future[tuple[str, Conn, int]]] = {}

    # probing ---------------------------------------------------------------------------

    def _probe(self, name: str) -> tuple[str, Conn, int]:
        conn = app_connect(self.nodes[name])
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@global.read_only")
                row = cur.fetchone()
            return name, conn, int(row[0]) if row else 1
        except BaseException:
            conn.close()
            raise

    @staticmethod
    def _discard(f: Future[tuple[str, Conn, int]]) -> None:
        with contextlib.suppress(Exception):
            f.result()[1].close()

    def find_primary(self, round_seconds: float = 0.05) -> tuple[str, Conn] | None:
        """The first node that answers read_only = 0 within `round_seconds`, with an open
        connection to it; probes still running carry over to the next call."""
        for name in self.nodes:
            if name not in self._inflight:
                self._inflight[name] = self._pool.submit(self._probe, name)
        deadline = time.monotonic() + round_seconds
        while True:
            chosen: tuple[str, Conn] | None = None
            for name, f in list(self._inflight.items()):
                if not f.done():
                    continue
                del self._inflight[name]
                try:
                    _, conn, read_only = f.result()
                except Exception:
                    continue
                if read_only == 0 and chosen is None:
                    chosen = (name, conn)
                else:
                    conn.close()
            if chosen is not None:
                return chosen
            left = deadline - time.monotonic()
            if not self._inflight or left <= 0:
                return None
            wait(list(self._inflight.values()), timeout=left, return_when=FIRST_COMPLETED)

    # writing ---------------------------------------------------------------------------

    def run(self) -> None:
        conn: Conn | None = None
        node = ""
        while not self.stop.is_set():
            if conn is None:
                found = self.find_primary()
                if found is None:
                    time.sleep(0.005)
                    continue
                node, conn = found
                self.connects.append((now(), node))
            i = self.next_id
            self.next_id += 1
            try:
                with conn.cursor() as cur:
                    cur.execute(self._sql, (i,))
                self.acks.append(Ack(i, now(), node))
                if self.pause:
                    self.stop.wait(self.pause)
            except Exception as err:
                code = err.args[0] if isinstance(err, pymysql.MySQLError) and err.args else 0
                if code not in REFUSED_BY_READ_ONLY:  # refused: certainly not written
                    self.ambiguous.append(i)
                if len(self.errors) < 200:
                    self.errors.append((now(), node, err_text(err)))
                with contextlib.suppress(Exception):
                    conn.close()
                conn = None
        drop(conn)

    def close(self) -> None:
        """Stop writing and let go of the probe pool without waiting for probes stuck on a
        hung node (their connections are closed when they finish)."""
        self.stop.set()
        self.join(timeout=10)
        for f in self._inflight.values():
            f.add_done_callback(self._discard)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # reading the record ----------------------------------------------------------------

    def snapshot(self) -> list[Ack]:
        return list(self.acks)

    def acked_ids(self) -> set[int]:
        return {a.id for a in self.snapshot()}

    def first_ack(self, after: float, exclude: str = "", only: str = "") -> Ack | None:
        for a in self.snapshot():
            if a.at > after and a.node != exclude and (not only or a.node == only):
                return a
        return None

    def longest_gap(self, start: float, end: float) -> tuple[float, float, float]:
        """Longest interval in [start, end] with no acknowledged write: (gap, from, to)."""
        times = [start, *[a.at for a in self.snapshot() if start < a.at < end], end]
        best = (0.0, start, start)
        for a, b in itertools.pairwise(times):
            if b - a > best[0]:
                best = (b - a, a, b)
        return best


class StaleClient(Background):
    """A client that keeps writing to one address (the old primary) whatever happens.

    With the defaults it tries every 10 ms with 0.5 s timeouts. As a "patient writer"
    (timeout=60, pause=0) it is an application writing as fast as it can to db1 with no
    short read timeout, as most applications are configured: one of its INSERTs is in
    flight when the primary hangs, and it waits for the answer however late it comes.
    """

    def __init__(
        self,
        node: str,
        port: int,
        first_id: int,
        timeout: float = WRITE_TIMEOUT,
        pause: float = 0.01,
        name: str = "stale",
        table: str = TABLE,
    ) -> None:
        super().__init__(name)
        self.node = node
        self.port = port
        self.timeout = timeout
        self.pause = pause
        self.next_id = first_id
        self.acks: list[Ack] = []
        self.refused = 0
        self.ambiguous: list[int] = []
        self.first_error = ""
        self.errors: list[tuple[float, str]] = []
        self._sql = _insert_sql(table)

    def run(self) -> None:
        conn: Conn | None = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = app_connect(self.port, timeout=self.timeout)
                i = self.next_id
                self.next_id += 1
                try:
                    with conn.cursor() as cur:
                        cur.execute(self._sql, (i,))
                    self.acks.append(Ack(i, now(), self.node))
                except pymysql.MySQLError as err:
                    if err.args and err.args[0] in REFUSED_BY_READ_ONLY:
                        self.refused += 1
                    else:
                        self.ambiguous.append(i)
                    raise
            except Exception as err:
                self.first_error = self.first_error or err_text(err)
                self.errors.append((now(), err_text(err)[:100]))
                with contextlib.suppress(Exception):
                    if conn is not None:
                        conn.close()
                conn = None
                self.stop.wait(max(self.pause, 0.05))
                continue
            if self.pause:
                self.stop.wait(self.pause)
        drop(conn)


class PatientClient(Background):
    """One INSERT per second to one address, each with a long timeout (60 s), each in its
    own connection: a client without a read timeout, as most applications are."""

    def __init__(self, port: int, first_id: int, timeout: float = 60.0, table: str = TABLE) -> None:
        super().__init__("patient")
        self.port = port
        self.next_id = first_id
        self.timeout = timeout
        self.tries = 0
        self.acks: list[tuple[int, float, float]] = []  # (id, sent, acknowledged)
        self.errors: list[str] = []
        self.threads: list[threading.Thread] = []
        self._sql = _insert_sql(table)

    def _one(self, i: int) -> None:
        sent = now()
        try:
            conn = app_connect(self.port, timeout=self.timeout)
            try:
                with conn.cursor() as cur:
                    cur.execute(self._sql, (i,))
                self.acks.append((i, sent, now()))
            finally:
                conn.close()
        except Exception as err:
            self.errors.append(err_text(err)[:100])

    def run(self) -> None:
        while not self.stop.is_set():
            self.tries += 1
            t = threading.Thread(target=self._one, args=(self.next_id,), daemon=True)
            self.next_id += 1
            t.start()
            self.threads.append(t)
            self.stop.wait(1.0)

    def close(self, wait_seconds: float = 5.0) -> None:
        """Stop trying; give the tries in flight a few seconds to end (they are daemons)."""
        self.stop.set()
        self.join(timeout=5)
        deadline = time.monotonic() + wait_seconds
        for t in self.threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))

    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in self.errors:
            counts[e[:60]] = counts.get(e[:60], 0) + 1
        counts["acknowledged"] = len(self.acks)
        counts["still waiting"] = self.tries - len(self.acks) - len(self.errors)
        return counts
