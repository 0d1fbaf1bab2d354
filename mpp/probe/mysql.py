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
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from mpp.model import Observation
from mpp.probe.answer import Answer, AnswerCursor, KnownColumns, MalformedAnswer, ServerError
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
        self._errors: tuple[type[Exception], ...] = (
            *self.driver.errors,
            _NoReplicationStatus,
            ServerError,
        )
        self.heartbeat = heartbeat  # also read mpp's heartbeat row (pool key heartbeat)
        self.clients = clients  # also count semi-sync replicas (strict semi-sync, heartbeat)
        self._conn: Any = None
        self._flavor: Flavor | None = None
        self._busy = threading.Lock()
        # what the last failed attempt was doing and the server's error number, read by
        # _probe: the retry is decided on the code, never on the text mpp wrote about it
        self._failure: tuple[str, int] | None = None
        # the probe on the event loop (start_on_loop): the kept session's socket, the batch
        # as the packet written to it, the poll waiting for its answer and the answer so far
        self._socket: socket.socket | None = None
        self._query = b""
        self._answer = _NO_ANSWER
        # the batch's column definitions as the last answer sent them (answer.py): the same
        # bytes every poll, compared at once instead of read one by one
        self._known: KnownColumns = {}
        # False once an answer outgrew what the loop reads (MOST_READ): the driver reads
        # this node's answers from then on, in a thread, bounded by its own limits
        self._on_loop = True
        # where a session dropped on the loop is closed: libmariadb's close writes COM_QUIT
        # and may block up to its write timeout (set by start_on_loop)
        self._closer: Executor | None = None
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
            self._closer = None  # closed before this returns
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
        return self._read(conn, flavor, started, t0, None)

    def _batch(self, flavor: Flavor) -> str:
        # both statements in one round trip: on a slow management link (200 ms each way)
        # a probe is then one RTT, not two, inside the same deadline
        beat = f"; {flavor.heartbeat_sql}" if self.heartbeat else ""
        return f"{flavor.health(self.clients)}; {flavor.replica_status_sql}{beat}"

    def _read(
        self, conn: Any, flavor: Flavor, started: float, t0: float, answer: Answer | None
    ) -> Observation:
        """The batch's answer as an Observation: sent here and read by the driver (`answer`
        None), or sent on the event loop and read there (the whole `answer`)."""
        try:
            reader: Any = self.driver.cursor(conn) if answer is None else AnswerCursor(answer)
            with reader as cur:
                if answer is not None:
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
        if (
            self.driver.reads_on_loop
            and self._on_loop
            and not conn.client_flag & _DEPRECATE_EOF
            and conn.character_set_name().startswith("utf8")
        ):
            # answer.py reads EOF-framed answers and UTF-8 text; a dup of the socket, which
            # the loop writes the batch to and reads its answer from (never the driver's)
            self._socket = socket.socket(fileno=os.dup(conn.fileno()))
            self._query = _com_query(self._batch(self._flavor).encode("utf-8"))
        return conn, self._flavor

    # --- the probe on the event loop ------------------------------------------------------
    # A thread hop per probe (loop -> pool -> loop) cost about as much CPU as the probe itself
    # at a thousand nodes (docs/benchmarks.md). On a kept mysqlclient session the loop sends
    # the batch itself and reads the answer as it comes (answer.py), never blocking: a
    # libmariadb read blocks until its whole answer is in, up to a whole-second timeout.
    # libmariadb is only left out of these commands: it starts each of its own afresh, so
    # the thread's probe on the same session, and its close, work as before.
    # Connecting (and a kept session that died: one fresh connect) stays in a thread.

    def start(
        self, loop: asyncio.AbstractEventLoop, threads: Executor
    ) -> asyncio.Future[Observation]:
        """Begin this poll: on the loop where it can (`start_on_loop`), else `probe` in one of
        `threads`. Whoever waits for it with a deadline calls `abandon` when it passes."""
        return self.start_on_loop(loop, threads) or loop.run_in_executor(threads, self.probe)

    def start_on_loop(
        self, loop: asyncio.AbstractEventLoop, threads: Executor
    ) -> asyncio.Future[Observation] | None:
        """Begin this poll on the event loop, or None when it is for a thread (`probe`): no
        kept session yet, a driver that cannot, a probe still running in a thread."""
        if self._socket is None:
            return None
        if not self._busy.acquire(blocking=False):
            return None  # `probe` in the thread says so
        sock = self._socket
        if sock is None or self._conn is None or self._flavor is None:
            self._busy.release()  # a thread's probe dropped the session meanwhile
            return None
        started, t0 = time.time(), time.perf_counter()
        answer: asyncio.Future[Observation] = loop.create_future()
        self._closer = threads
        try:
            # ~300 bytes into an idle session's empty send buffer: all of it, or a session
            # not worth keeping
            if sock.send(self._query, socket.MSG_DONTWAIT) != len(self._query):
                raise OSError("the batch did not fit the socket's buffer")
            loop.add_reader(sock.fileno(), self._readable)
        except BaseException as err:
            self._drop()  # a session that cannot take a query: a fresh connect, in the thread
            self._busy.release()
            if isinstance(err, OSError):
                return None
            raise
        self._waiting = (loop, threads, answer, started, t0)
        self._answer = Answer(self._known)
        return answer

    def abandon(self) -> None:
        """The poll on the loop had no whole answer by the deadline: the session is dropped
        (its answer may still come, mid-way), closed in a thread, and the prober freed."""
        if self._waiting is None:
            return
        loop, _, answer, _, _ = self._waiting
        self._waiting = None
        answer.cancel()
        if self._socket is not None:
            loop.remove_reader(self._socket.fileno())
        self._drop()
        self._busy.release()

    def _readable(self) -> None:
        if self._waiting is None or self._socket is None:
            return
        loop, threads, answer, started, t0 = self._waiting
        sock, whole = self._socket, self._answer
        try:
            chunk = sock.recv(_CHUNK, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return  # woken for nothing
        except OSError as err:
            chunk, lost = b"", str(err.strerror or err)
        else:
            lost = "the server closed the session"
        failure: ServerError | None = None
        try:
            done = whole.feed(chunk) if chunk else False
            if whole.size > MOST_READ:  # what the loop holds per session is bounded
                self._on_loop = False
                failure = ServerError(
                    _TOO_LARGE, f"an answer past {MOST_READ} bytes: read in a thread from now on"
                )
            elif chunk and not done:
                return  # the rest is on its way (a batch's results come one by one)
        except MalformedAnswer as err:
            failure = err
        except BaseException as err:  # a bug, not the server: the prober must not stay busy
            self._end_with(loop, sock, answer, err)
            return
        try:
            # this poll ends here, whatever the answer
            self._waiting, self._answer = None, _NO_ANSWER
            loop.remove_reader(sock.fileno())
            if not chunk:
                # EOF or a reset: the kept session died, not necessarily the server. One
                # fresh connect tells a dead server from a killed session (_probe), in a
                # thread, as a connect may take its whole timeout; the lock goes with it
                # (no other probe or close() between the two)
                self._failed(started, ServerError(_LOST, lost), _QUERY_FAILED)
                self._in_thread(loop, threads, answer, self._connect_again, started, t0)
                return
            if failure is not None:
                seen = self._failed(started, failure, _QUERY_FAILED)
            else:
                assert self._conn is not None and self._flavor is not None
                seen = self._read(self._conn, self._flavor, started, t0, whole)
        except BaseException as err:
            self._end_with(loop, sock, answer, err)
            return
        self._busy.release()
        if not answer.done():  # a caller's cancel without abandon: nobody is waiting
            answer.set_result(seen)

    def _end_with(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        answer: asyncio.Future[Observation],
        err: BaseException,
    ) -> None:
        """A bug met mid-poll: the session dropped, the prober freed, the error passed on."""
        self._waiting, self._answer = None, _NO_ANSWER
        try:
            with contextlib.suppress(Exception):  # not registered any more: nothing to do
                loop.remove_reader(sock.fileno())
            self._drop()
        finally:
            self._busy.release()
            if not answer.done():
                answer.set_exception(err)

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

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _drop(self) -> None:
        self._close_socket()
        conn, self._conn, self._flavor = self._conn, None, None
        if conn is None:
            return
        if self._closer is not None:  # polled on the loop: this may be the loop's thread
            try:
                self._closer.submit(_close_quietly, conn)
                return
            except RuntimeError:  # the pool shut down: mpp is stopping
                pass
        _close_quietly(conn)  # closing a broken socket may fail; it is gone either way

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


def _com_query(sql: bytes) -> bytes:
    """The batch as one COM_QUERY packet (sequence 0, as every command starts)."""
    body = b"\x03" + sql
    if len(body) >= 0xFFFFFF:
        raise ValueError("a probe batch is a few hundred bytes")
    return len(body).to_bytes(3, "little") + b"\x00" + body


_DEPRECATE_EOF = 1 << 24  # CLIENT_DEPRECATE_EOF: answers without the EOF packets answer.py reads
_LOST = 2013  # CR_SERVER_LOST: the session ended mid-answer (the drivers' number for it)
_TOO_LARGE = 2020  # CR_NET_PACKET_TOO_LARGE: an answer larger than the reader takes
_CHUNK = 1 << 16  # bytes asked of the socket per read (a probe's answer is ~3.5 KB)
MOST_READ = 1 << 20  # bytes one answer may hold before the session is dropped
_NO_ANSWER = Answer()

# a query on the kept session failed because the session went away (2006 gone, 2013 lost)
_SESSION_LOST = {(_QUERY_FAILED, 2006), (_QUERY_FAILED, _LOST)}


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(int(value))
