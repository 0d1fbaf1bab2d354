"""mpp's heartbeat row: written through the ACTIVE primary every `heartbeat` seconds, in a
thread of its own, so a hung primary never holds up the poll loop.

The row (mpp.heartbeat, one row) carries mpp's clock and is replicated like any write; each
replica's probe reads its copy (mpp.probe.flavor.heartbeat_sql) and the logic confirms a
primary mpp cannot reach as down when the row stopped arriving on every replica
(mpp.logic.failover.semisync). Which node gets it is the loop's choice (`aim`): only the
ACTIVE node, once it is a writable primary with a replica to acknowledge, so the row is
never an errant transaction anywhere.

Every write is bounded twice: by the session's read timeout here, and on the server by its
WHERE (a write run later than one period after mpp sent it changes nothing, so none queued
on a hung primary lands when it resumes, after its failover). A write that finds no table
creates the schema and the row first, through the same primary (replicated too).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import pymysql

from mpp.config import Config, PoolConfig
from mpp.probe.connection import Target, open_connection, pool_targets
from mpp.probe.flavor import Flavor, detect

log = logging.getLogger("mpp.heartbeat")


class HeartbeatWriter:
    """One pool's heartbeat: at most one writer thread, aimed at one node."""

    def __init__(self, config: Config, pool: PoolConfig) -> None:
        self.pool = pool.name
        self.period = pool.heartbeat
        self.targets = pool_targets(config, pool)
        self._lock = threading.Lock()
        self._beat: _Beat | None = None

    @property
    def node(self) -> str | None:
        beat = self._beat
        return beat.target.node if beat is not None else None

    def aim(self, node: str | None) -> None:
        """Write through `node` from now on; None: nowhere. A writer still blocked on the
        previous node is left to time out on its own (it writes nothing more)."""
        with self._lock:
            if self._beat is not None and self._beat.target.node == node:
                return
            if self._beat is not None:
                self._beat.stop()
                self._beat = None
            if node is not None:
                self._beat = _Beat(self.pool, self.targets[node], self.period)
                self._beat.start()

    def close(self) -> None:
        self.aim(None)


class _Beat(threading.Thread):
    def __init__(self, pool: str, target: Target, period: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{target.node}")
        self.pool = pool
        self.target = target
        self.period = period
        self.stopped = threading.Event()
        self.writes = 0
        self._error = ""
        self._conn: Any = None
        self._flavor: Flavor | None = None

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        # The first write half a period after the aim, which the loop makes right after a
        # poll: with the period at the interval, each replica's copy is then about half a
        # period old at its probe rather than a whole one. A hung primary's row passes two
        # periods of age at the second poll after its last write instead of the third (the
        # hung-primary RTO measured 0.5 s shorter on average), and a replica may lag by
        # 1.5 periods, not one, before its row looks stale.
        next_at = time.monotonic() + self.period / 2
        self.stopped.wait(self.period / 2)
        try:
            while not self.stopped.is_set():
                self.write_once()
                next_at += self.period
                # a write that took longer than a period is not made up for: the next one
                # carries the clock of when it is sent, which is what the replicas compare
                next_at = max(next_at, time.monotonic())
                self.stopped.wait(max(0.0, next_at - time.monotonic()))
        finally:
            self._drop()

    def write_once(self) -> None:
        try:
            conn, flavor = self._connection()
            if self.stopped.is_set():
                # aimed elsewhere while connecting (to a hung server, say, that answered
                # when it resumed): nothing is sent after that
                return
            sent = time.time()
            with conn.cursor() as cur:
                try:
                    cur.execute(flavor.heartbeat_write_sql, (sent, sent + self.period))
                except pymysql.MySQLError as err:
                    if err.args[0] not in flavor.heartbeat_missing:
                        raise
                    for sql in flavor.heartbeat_setup_sql:
                        cur.execute(sql)
                    cur.execute(flavor.heartbeat_write_sql, (sent, sent + self.period))
            self.writes += 1
            if self._error:
                log.info("pool=%s heartbeat through %s again", self.pool, self.target.node)
                self._error = ""
        except pymysql.MySQLError as err:
            self._drop()
            text = f"{err.args[0]} {err.args[1]}" if len(err.args) > 1 else str(err)
            if text != self._error:
                log.warning(
                    "pool=%s heartbeat through %s not written: %s",
                    self.pool,
                    self.target.node,
                    text,
                )
                self._error = text

    def _connection(self) -> tuple[Any, Flavor]:
        if self._conn is not None and self._flavor is not None:
            return self._conn, self._flavor
        # a write slower than about a period tells the replicas nothing they can use, and
        # a hung server must not keep this thread for long (it writes nothing meanwhile)
        conn = open_connection(self.target, max(1.0, 2 * self.period))
        self._conn, self._flavor = conn, detect(conn.get_server_info())  # type: ignore[no-untyped-call]
        return conn, self._flavor

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
        self._flavor = None
