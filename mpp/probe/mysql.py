"""Reading one server: connect, trivial query, replication health, under a hard deadline.

One NodeProber per node keeps its connection between cycles (a fresh connect per poll costs
more than the probe itself), and drops it on any error so the next poll starts clean.
Every socket operation has a timeout: a SIGSTOPped mysqld still completes the TCP
handshake in the kernel, so a connect timeout alone would hang the probe for good.

The driver is mysqlclient where `connection.probe_driver` allows it, else PyMySQL: both
read the same two statements in one round trip and give the same Observation; an error is
classified by its client errno alike (libmariadb and PyMySQL share the CR_* numbers).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from mpp.model import Observation
from mpp.probe.connection import Driver, Target, probe_driver
from mpp.probe.flavor import Flavor, detect

# Client-side errnos that mean "no server answered", as opposed to a server that answered
# with an error (access denied, too many connections): only the first is FAILED_OFFLINE.
_UNREACHABLE = {2002, 2003, 2006, 2013, 2055}
_QUERY_FAILED = "query failed"


class _NoReplicationStatus(Exception):
    """The answer lacked its second result set (never seen from a real server)."""


class NodeProber:
    def __init__(
        self,
        target: Target,
        driver: Driver | None = None,
        heartbeat: bool = False,
        clients: bool = False,
    ) -> None:
        self.target = target
        self.driver = driver or probe_driver(target)
        self._errors: tuple[type[Exception], ...] = (*self.driver.errors, _NoReplicationStatus)
        self.heartbeat = heartbeat  # also read mpp's heartbeat row (pool key heartbeat)
        self.clients = clients  # also count semi-sync replicas (strict semi-sync, heartbeat)
        self._conn: Any = None
        self._flavor: Flavor | None = None
        self._busy = threading.Lock()
        # what the last failed attempt was doing and the server's error number, read by
        # _probe: the retry is decided on the code, never on the text mpp wrote about it
        self._failure: tuple[str, int] | None = None

    def probe(self) -> Observation:
        """One poll; never raises, never blocks past the timeouts."""
        started = time.time()
        if not self._busy.acquire(blocking=False):
            return Observation(
                self.target.node,
                started,
                reachable=False,
                error="previous probe still running: server not answering",
            )
        try:
            return self._probe(started)
        finally:
            self._busy.release()

    def close(self) -> None:
        with self._busy:
            self._drop()

    def _probe(self, started: float) -> Observation:
        kept = self._conn is not None
        self._failure = None
        seen = self._probe_once(started)
        if kept and self._failure in _SESSION_LOST:
            # the kept session died, not necessarily the server: a KILL of mpp's session (a
            # server out of connections evicting it, an operator) reads exactly like a crash.
            # One fresh connect tells them apart: "connection refused" is a dead server,
            # 1040 a full one that must not be taken for dead (its clients still write)
            return self._probe_once(started)
        return seen

    def _probe_once(self, started: float) -> Observation:
        t0 = time.perf_counter()
        try:
            conn, flavor = self._connection()
        except self._errors as err:
            return self._failed(started, err, "cannot connect")
        try:
            # both statements in one round trip: on a slow management link (200 ms each way)
            # a probe is then one RTT, not two, inside the same deadline
            with self.driver.cursor(conn) as cur:
                beat = f"; {flavor.heartbeat_sql}" if self.heartbeat else ""
                health = flavor.health(self.clients)
                cur.execute(f"{health}; {flavor.replica_status_sql}{beat}")
                row = cur.fetchone() or (None, "", "", None, None, None, None, None, None)
                if not cur.nextset():
                    raise _NoReplicationStatus(0, "no replication status in the answer")
                status = cur.fetchone()
                names = [c[0] for c in cur.description or ()]
                replication = flavor.replication(
                    dict(zip(names, status, strict=True)) if status else None
                )
                heartbeat = flavor.heartbeat_value(cur) if self.heartbeat else None
        except self._errors as err:
            self._drop()
            return self._failed(started, err, _QUERY_FAILED)
        return Observation(
            node=self.target.node,
            at=started,
            reachable=True,
            latency_ms=(time.perf_counter() - t0) * 1000.0,
            version=".".join(map(str, flavor.version)),
            flavor=flavor.name,
            read_only=_flag(row[0]),
            gtid_executed=str(row[1] or ""),
            gtid_binlog=str(row[2] or ""),
            semi_sync_primary=_flag(row[3]),
            semi_sync_replica=_flag(row[4]),
            **flavor.semi_sync_settings(row),
            semi_sync_strict=_flag(row[7]),
            semi_sync_clients=None if row[8] is None else int(row[8]),
            heartbeat=heartbeat,
            replication=replication,
        )

    def _connection(self) -> tuple[Any, Flavor]:
        if self._conn is not None and self._flavor is not None:
            return self._conn, self._flavor
        conn = self.driver.connect(self.target)
        self._conn, self._flavor = conn, detect(conn.get_server_info())
        return conn, self._flavor

    def _drop(self) -> None:
        if self._conn is not None:
            # closing a broken socket may fail; the connection is gone either way
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
        self._flavor = None

    def _failed(self, started: float, err: Exception, what: str) -> Observation:
        self._drop()
        code = err.args[0] if err.args and isinstance(err.args[0], int) else 0
        self._failure = (what, code)
        text = str(err.args[1]) if len(err.args) > 1 else str(err) or type(err).__name__
        return Observation(
            node=self.target.node,
            at=started,
            reachable=code not in _UNREACHABLE and code != 0,
            error=f"{what}: {code} {text}".strip() if code else f"{what}: {text}",
        )


# a query on the kept session failed because the session went away (2006 gone, 2013 lost)
_SESSION_LOST = {(_QUERY_FAILED, 2006), (_QUERY_FAILED, 2013)}


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(int(value))
