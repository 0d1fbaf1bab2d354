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

import asyncio
import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from mpp.model import Observation
from mpp.probe.answer import answer_complete
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
        # the probe on the event loop (start_on_loop): the kept session's socket to peek
        # at, the batch it sends, and the poll waiting for its answer
        self._peek: socket.socket | None = None
        self._sent = b""
        self._waiting: (
            tuple[asyncio.AbstractEventLoop, Executor, asyncio.Future[Observation], float, float]
            | None
        ) = None

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
        return self._read(conn, flavor, started, t0, sent=False)

    def _batch(self, flavor: Flavor) -> str:
        # both statements in one round trip: on a slow management link (200 ms each way)
        # a probe is then one RTT, not two, inside the same deadline
        beat = f"; {flavor.heartbeat_sql}" if self.heartbeat else ""
        return f"{flavor.health(self.clients)}; {flavor.replica_status_sql}{beat}"

    def _read(
        self, conn: Any, flavor: Flavor, started: float, t0: float, sent: bool
    ) -> Observation:
        """The batch's answer as an Observation: sent here and read (`sent` False), or sent
        on the event loop and read now that it is all in (True)."""
        try:
            with self.driver.cursor(conn) as cur:
                if sent:
                    cur.received()
                else:
                    cur.execute(self._batch(flavor))
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
        if self.driver.reads_on_loop and not conn.client_flag & _DEPRECATE_EOF:
            # answer.py reads EOF-framed answers; a dup of the socket, only ever peeked at
            self._peek = socket.socket(fileno=os.dup(conn.fileno()))
            self._sent = self._batch(self._flavor).encode("utf-8")
        return conn, self._flavor

    # --- the probe on the event loop ------------------------------------------------------
    # A thread hop per probe (loop -> pool -> loop) cost about as much CPU as the probe itself
    # at a thousand nodes (docs/benchmarks.md). On a kept mysqlclient session the batch is
    # sent on the loop and its answer read there, but only once a peek at the socket shows
    # all of it (answer_complete): libmariadb's reads block, and nothing may block the loop.
    # Connecting (and a kept session that died: one fresh connect) stays in a thread.

    def start_on_loop(
        self, loop: asyncio.AbstractEventLoop, threads: Executor
    ) -> asyncio.Future[Observation] | None:
        """Begin this poll on the event loop, or None when it is for a thread (`probe`): no
        kept session yet, a driver that cannot, a probe still running in a thread."""
        if self._peek is None:
            return None
        if not self._busy.acquire(blocking=False):
            return None  # `probe` in the thread says so
        peek, conn = self._peek, self._conn
        if peek is None or conn is None or self._flavor is None:
            self._busy.release()  # a thread's probe dropped the session meanwhile
            return None
        started, t0 = time.time(), time.perf_counter()
        answer: asyncio.Future[Observation] = loop.create_future()
        try:
            conn.send_query(self._sent)
            loop.add_reader(peek.fileno(), self._readable, _FIRST_LOOK)
        except BaseException as err:
            self._drop()  # a session that cannot take a query: a fresh connect, in the thread
            self._busy.release()
            if isinstance(err, self._errors):
                return None
            raise
        self._waiting = (loop, threads, answer, started, t0)
        return answer

    def abandon(self) -> None:
        """The poll on the loop had no whole answer by the deadline: the session is dropped
        (its answer may still come, mid-way), closed in a thread, and the prober freed."""
        if self._waiting is None:
            return
        loop, threads, answer, _, _ = self._waiting
        self._waiting = None
        answer.cancel()
        if self._peek is not None:
            loop.remove_reader(self._peek.fileno())
        conn, self._conn, self._flavor = self._conn, None, None
        self._close_peek()
        self._busy.release()
        if conn is not None:
            threads.submit(_close_quietly, conn)

    def _readable(self, wait: float) -> None:
        if self._waiting is None or self._peek is None:
            return
        loop, threads, answer, started, t0 = self._waiting
        peek = self._peek
        loop.remove_reader(peek.fileno())
        try:
            seen: bytes | None = peek.recv(MOST_PEEKED, _PEEK)
        except BlockingIOError:
            seen = None  # woken for nothing
        except OSError:
            seen = b""  # the driver's read reports what went wrong
        if seen is None or (seen and not answer_complete(seen) and not _peer_closed(seen, peek)):
            if seen is not None and len(seen) >= MOST_PEEKED:
                # a socket only peeked at does not grow its buffer (~64 KiB of data here),
                # so the peek might never see such an answer's end: read in a thread
                self._waiting = None
                self._in_thread(loop, threads, answer, self._read_rest, started, t0)
                return
            # the rest is on its way (a batch's results come one by one)
            loop.call_later(wait, self._rearm, answer, min(2 * wait, _LAST_LOOK))
            return
        self._waiting = None
        try:
            assert self._conn is not None and self._flavor is not None
            self._failure = None
            seen_obs = self._read(self._conn, self._flavor, started, t0, sent=True)
        except BaseException as err:  # a bug, not the server: the prober must not stay busy
            self._drop()
            self._busy.release()
            answer.set_exception(err)
            return
        if self._failure in _SESSION_LOST:
            # the kept session died: one fresh connect tells a dead server from a killed
            # session (_probe), in a thread, as a connect may take its whole timeout; the
            # lock goes with it (no other probe or close() between the two)
            self._in_thread(loop, threads, answer, self._connect_again, started, t0)
            return
        self._busy.release()
        answer.set_result(seen_obs)

    def _in_thread(
        self,
        loop: asyncio.AbstractEventLoop,
        threads: Executor,
        answer: asyncio.Future[Observation],
        work: Callable[[float, float], Observation],
        started: float,
        t0: float,
    ) -> None:
        """The rest of this poll in a thread (`work` releases the lock it inherits), its
        outcome passed on to the poll on the loop."""
        try:
            done = threads.submit(work, started, t0)
        except BaseException:  # the pool shut down: mpp is stopping
            self._drop()
            self._busy.release()
            answer.cancel()
            return

        def settle(done: Future[Observation]) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_pass_on, done, answer)

        done.add_done_callback(settle)

    def _connect_again(self, started: float, t0: float) -> Observation:
        """In a thread, with the lock held: the one fresh connect after a lost session."""
        try:
            return self._probe_once(started)
        finally:
            self._busy.release()

    def _read_rest(self, started: float, t0: float) -> Observation:
        """In a thread: the answer of a batch sent on the loop, read blocking (bounded by
        the driver's read timeout), with the one fresh connect if the session died."""
        try:
            assert self._conn is not None and self._flavor is not None
            self._failure = None
            seen = self._read(self._conn, self._flavor, started, t0, sent=True)
            return self._probe_once(started) if self._failure in _SESSION_LOST else seen
        finally:
            self._busy.release()

    def _rearm(self, answer: asyncio.Future[Observation], wait: float) -> None:
        if self._waiting is not None and self._waiting[2] is answer and self._peek is not None:
            self._waiting[0].add_reader(self._peek.fileno(), self._readable, wait)

    def _close_peek(self) -> None:
        if self._peek is not None:
            self._peek.close()
            self._peek = None

    def _drop(self) -> None:
        self._close_peek()
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


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


def _pass_on(done: Future[Observation], answer: asyncio.Future[Observation]) -> None:
    """The thread's outcome to the poll on the loop, as it is, unless the deadline came first."""
    if answer.done():
        return
    if done.cancelled():
        answer.cancel()
    elif (error := done.exception()) is not None:
        answer.set_exception(error)
    else:
        answer.set_result(done.result())


def _peer_closed(seen: bytes, peek: socket.socket) -> bool:
    """The server closed the connection after these bytes (it crashed, or ended the session
    mid-answer): the driver's read then ends at once, with its error, and need not wait
    for the deadline. POLLRDHUP: the peer's FIN, which a peek of the bytes before it hides."""
    poller = select.poll()
    poller.register(peek.fileno(), select.POLLRDHUP)
    return any(events & (select.POLLRDHUP | select.POLLHUP) for _, events in poller.poll(0))


_DEPRECATE_EOF = 1 << 24  # CLIENT_DEPRECATE_EOF: answers without the EOF packets answer.py reads
_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT
_FIRST_LOOK, _LAST_LOOK = 0.00025, 0.032  # seconds before looking again at a partial answer
# bytes: a larger answer is read in a thread (a probe's is ~3.5 KB; a socket only peeked
# at holds ~64 KiB of data before the server must wait)
MOST_PEEKED = 1 << 15

# a query on the kept session failed because the session went away (2006 gone, 2013 lost)
_SESSION_LOST = {(_QUERY_FAILED, 2006), (_QUERY_FAILED, 2013)}


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(int(value))
