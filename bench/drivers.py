"""The probe of one node-cycle, per driver and shape, for bench/poll.py (issue 12).

Every variant reads what mpp/probe/mysql.py reads each cycle (the Flavor's health_sql and
replica_status_sql, on a connection kept between cycles), turns it into the same
Observation, and is bounded by the same deadline as mpp's PoolWorker.observe. They differ
in the driver, the number of round trips and whether a thread carries the probe:

- pymysql-mpp: mpp's own NodeProber on PyMySQL (its fallback driver; one thread per probe);
- pymysql-multi: PyMySQL, one round trip (CLIENT.MULTI_STATEMENTS), one thread per probe;
- asyncmy-multi / asyncmy-two: asyncmy on the event loop, no threads, one or two round trips;
- mysqlclient-multi / mysqlclient-two: mysqlclient (libmariadb), one or two round trips, one
  thread per probe, through MySQLdb's cursor;
- mysqlclient-mpp: mpp's own NodeProber on its mysqlclient driver (one round trip, the
  driver's low-level reads of mpp/probe/lean.py instead of the cursor; one thread per probe).
- mysqlclient-mpp-loop: mpp's own NodeProber as the daemon runs it: a kept session's poll
  written and its answer read on the event loop, past libmariadb (NodeProber.start_on_loop,
  mpp/probe/answer.py; since 2026-12-04, before that libmariadb read once a peek showed the
  whole answer), a first connect in a thread.

asyncmy is optional (`pip install -e '.[bench]'`; mysqlclient is mpp's probe driver): both
are imported here through importlib, so a missing one is a skipped column with a message,
and mypy and ruff pass without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import pymysql
from pymysql.constants import CLIENT

from mpp.model import Observation
from mpp.probe.connection import PYMYSQL, Driver, Target, probe_driver
from mpp.probe.flavor import Flavor, detect
from mpp.probe.mysql import NodeProber
from mpp.run.daemon import probe_deadline

# in the order of the columns; the first one is the reference of every ratio
VARIANTS = (
    "pymysql-mpp",
    "pymysql-multi",
    "asyncmy-multi",
    "asyncmy-two",
    "mysqlclient-multi",
    "mysqlclient-two",
    "mysqlclient-mpp",
    "mysqlclient-mpp-loop",
)
# the variant that needs which optional package
NEEDS = {
    "asyncmy-multi": "asyncmy",
    "asyncmy-two": "asyncmy",
    "mysqlclient-multi": "MySQLdb",
    "mysqlclient-two": "MySQLdb",
    "mysqlclient-mpp": "MySQLdb",
    "mysqlclient-mpp-loop": "MySQLdb",
}


def missing(variant: str) -> str | None:
    """Why a variant cannot run here (its driver is not installed), or None."""
    module = NEEDS.get(variant)
    if module is None:
        return None
    try:
        importlib.import_module(module)
    except ImportError as err:
        package = "mysqlclient" if module == "MySQLdb" else module
        return f"{package} is not installed ({err}); pip install -e '.[bench]'"
    return None


def deadline_of(connect_timeout: float, query_timeout: float, interval: float) -> float:
    """mpp's probe deadline (mpp.run.daemon.probe_deadline)."""
    return probe_deadline(connect_timeout, query_timeout, interval)


class Prober(Protocol):
    node: str

    async def probe(self) -> Observation: ...

    def close(self) -> None: ...


def _timed_out(node: str, started: float, deadline: float) -> Observation:
    return Observation(
        node, started, reachable=False, error=f"no answer within {deadline:.1f}s (server hung?)"
    )


def _observation(
    node: str, started: float, t0: float, flavor: Flavor, row: Any, replica: dict[str, Any] | None
) -> Observation:
    """What NodeProber._probe builds from the two results."""
    row = row or (None, "", "", None, None)
    return Observation(
        node=node,
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
        replication=flavor.replication(replica),
    )


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(int(value))


def _as_dict(description: Any, row: Any) -> dict[str, Any] | None:
    if row is None or description is None:
        return None
    return {d[0]: v for d, v in zip(description, row, strict=False)}


def _failed(node: str, started: float, err: BaseException) -> Observation:
    return Observation(node, started, reachable=False, error=f"{type(err).__name__}: {err}")


# -- threaded variants: a blocking probe in a thread pool, under an asyncio deadline ----------


class _Threaded:
    """Runs a blocking `probe()` as PoolWorker.observe does: in the shared thread pool,
    abandoned at the deadline (the thread finishes in the background, bounded by the
    driver's socket timeouts, and the node's next probe is skipped while it runs)."""

    def __init__(
        self, sync: Callable[[], Observation], node: str, pool: ThreadPoolExecutor, deadline: float
    ) -> None:
        self.node = node
        self._sync = sync
        self._pool = pool
        self._deadline = deadline

    async def probe(self) -> Observation:
        started = time.time()
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._pool, self._sync), self._deadline
            )
        except TimeoutError:
            return _timed_out(self.node, started, self._deadline)


class _BlockingMulti:
    """One round trip (health_sql; replica_status_sql) on a kept connection, blocking, or two
    with multi=False; `connect` opens it with CLIENT.MULTI_STATEMENTS and every socket
    operation bounded."""

    def __init__(
        self, target: Target, connect: Callable[[Target], Any], errors: Any, multi: bool = True
    ) -> None:
        self.target = target
        self._multi = multi
        self._connect = connect
        self._errors = errors  # the driver's base exception class
        self._conn: Any = None
        self._flavor: Flavor | None = None
        self._busy = threading.Lock()

    def probe(self) -> Observation:
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

    def _probe(self, started: float) -> Observation:
        t0 = time.perf_counter()
        try:
            if self._conn is None or self._flavor is None:
                self._conn = self._connect(self.target)
                self._flavor = detect(self._conn.get_server_info())
            flavor = self._flavor
            cur = self._conn.cursor()
            try:
                if self._multi:
                    cur.execute(f"{flavor.health_sql}; {flavor.replica_status_sql}")
                    row = cur.fetchone()
                    cur.nextset()
                else:
                    cur.execute(flavor.health_sql)
                    row = cur.fetchone()
                    cur.execute(flavor.replica_status_sql)
                replica = _as_dict(cur.description, cur.fetchone())
            finally:
                cur.close()
        except self._errors as err:
            self.close()
            return _failed(self.target.node, started, err)
        return _observation(self.target.node, started, t0, flavor, row, replica)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
        self._flavor = None


def _pymysql_multi(t: Target) -> Any:
    """mpp's open_connection (mpp/probe/connection.py) plus CLIENT.MULTI_STATEMENTS."""
    return pymysql.connect(
        host=t.host,
        port=t.port,
        user=t.user,
        password=t.password.get_secret_value().encode("utf-8"),
        connect_timeout=t.connect_timeout,
        read_timeout=t.query_timeout,
        write_timeout=t.query_timeout,
        autocommit=True,
        bind_address=t.source_address,
        ssl_disabled=True,
        client_flag=CLIENT.MULTI_STATEMENTS,
    )


def _mysqlclient_connect(t: Target) -> Any:
    mysqldb = importlib.import_module("MySQLdb")
    client = importlib.import_module("MySQLdb.constants.CLIENT")
    # libmariadb takes whole seconds for its timeouts
    whole = max(1, math.ceil(t.query_timeout))
    return mysqldb.connect(
        host=t.host,
        port=t.port,
        user=t.user,
        password=t.password.get_secret_value(),
        connect_timeout=max(1, math.ceil(t.connect_timeout)),
        read_timeout=whole,
        write_timeout=whole,
        autocommit=True,
        client_flag=client.MULTI_STATEMENTS,
    )


# -- asyncio variant: asyncmy on the event loop, the deadline cancels the probe ---------------


class _Asyncmy:
    def __init__(self, target: Target, deadline: float, multi: bool) -> None:
        self.node = target.node
        self.target = target
        self._deadline = deadline
        self._multi = multi
        self._asyncmy = importlib.import_module("asyncmy")
        self._conn: Any = None
        self._flavor: Flavor | None = None

    async def probe(self) -> Observation:
        started = time.time()
        try:
            return await asyncio.wait_for(self._probe(started), self._deadline)
        except TimeoutError:
            self.close()  # the protocol is mid-answer: the connection cannot be reused
            return _timed_out(self.node, started, self._deadline)
        except Exception as err:  # any driver or socket error: the next probe starts clean
            self.close()
            return _failed(self.node, started, err)

    async def _probe(self, started: float) -> Observation:
        t0 = time.perf_counter()
        t = self.target
        if self._conn is None or self._flavor is None:
            self._conn = await self._asyncmy.connect(
                host=t.host,
                port=t.port,
                user=t.user,
                password=t.password.get_secret_value(),
                connect_timeout=t.connect_timeout,
                read_timeout=t.query_timeout,
                autocommit=True,
            )
            self._flavor = detect(self._conn.get_server_info())
        flavor = self._flavor
        async with self._conn.cursor() as cur:
            if self._multi:  # asyncmy always sets CLIENT.MULTI_STATEMENTS
                await cur.execute(f"{flavor.health_sql}; {flavor.replica_status_sql}")
                row = await cur.fetchone()
                await cur.nextset()
            else:
                await cur.execute(flavor.health_sql)
                row = await cur.fetchone()
                await cur.execute(flavor.replica_status_sql)
            replica = _as_dict(cur.description, await cur.fetchone())
        return _observation(self.node, started, t0, flavor, row, replica)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()  # closes the transport at once, no round trip
        self._conn = None
        self._flavor = None


class _MppProber:
    """mpp's NodeProber exactly as the daemon runs it; on PyMySQL (the reference) unless
    `driver` is given."""

    def __init__(
        self,
        target: Target,
        pool: ThreadPoolExecutor,
        deadline: float,
        driver: Driver = PYMYSQL,
    ) -> None:
        self.node = target.node
        self._inner = NodeProber(target, driver)
        self._run = _Threaded(self._inner.probe, target.node, pool, deadline)

    async def probe(self) -> Observation:
        return await self._run.probe()

    def close(self) -> None:
        # a probe stuck in a thread holds the prober's lock until its socket times out
        threading.Thread(target=self._inner.close, daemon=True).start()


class _ThreadedMulti:
    def __init__(
        self,
        target: Target,
        pool: ThreadPoolExecutor,
        deadline: float,
        connect: Callable[[Target], Any],
        errors: Any,
        multi: bool = True,
    ) -> None:
        self.node = target.node
        self._inner = _BlockingMulti(target, connect, errors, multi)
        self._run = _Threaded(self._inner.probe, target.node, pool, deadline)

    async def probe(self) -> Observation:
        return await self._run.probe()

    def close(self) -> None:
        threading.Thread(target=self._inner.close, daemon=True).start()


class _MppOnLoop:
    """mpp's NodeProber polled as PoolWorker.probe polls it: on the loop when it can, else
    in a thread, dropped at the deadline."""

    def __init__(self, target: Target, pool: ThreadPoolExecutor, deadline: float) -> None:
        self.node = target.node
        self._inner = NodeProber(target, probe_driver(target))
        assert self._inner.driver.reads_on_loop, "the sandbox's targets are mysqlclient's"
        self._pool = pool
        self._deadline = deadline

    async def probe(self) -> Observation:
        started = time.time()
        loop = asyncio.get_running_loop()
        future = self._inner.start(loop, self._pool)
        done, _ = await asyncio.wait([future], timeout=self._deadline)
        if future in done:
            return future.result()
        self._inner.abandon()
        return _timed_out(self.node, started, self._deadline)

    def close(self) -> None:
        threading.Thread(target=self._inner.close, daemon=True).start()


@dataclass
class ProberSet:
    """The probers of one variant over the node entries, and the threads they need."""

    variant: str
    probers: list[Prober]
    threads: ThreadPoolExecutor | None

    def close(self) -> None:
        for p in self.probers:
            p.close()
        if self.threads is not None:
            self.threads.shutdown(wait=False, cancel_futures=True)


def make(variant: str, targets: list[Target], deadline: float) -> ProberSet:
    """The probers of `variant`, one per target; threaded variants get mpp's pool size."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    threaded = not variant.startswith("asyncmy")
    # make_workers: max(4, 2 x nodes) probe threads (a hung node's probe may still hold one)
    pool = (
        ThreadPoolExecutor(max_workers=max(4, 2 * len(targets)), thread_name_prefix="probe")
        if threaded
        else None
    )
    probers: list[Prober] = []
    for t in targets:
        if variant == "pymysql-mpp":
            assert pool is not None
            probers.append(_MppProber(t, pool, deadline))
        elif variant == "mysqlclient-mpp-loop":
            assert pool is not None
            probers.append(_MppOnLoop(t, pool, deadline))
        elif variant == "mysqlclient-mpp":
            assert pool is not None
            chosen = probe_driver(t)
            assert chosen.name == "mysqlclient", "the sandbox's targets are mysqlclient's"
            probers.append(_MppProber(t, pool, deadline, chosen))
        elif variant == "pymysql-multi":
            assert pool is not None
            probers.append(_ThreadedMulti(t, pool, deadline, _pymysql_multi, pymysql.MySQLError))
        elif variant.startswith("mysqlclient"):
            assert pool is not None
            errors = importlib.import_module("MySQLdb").MySQLError
            multi = variant == "mysqlclient-multi"
            probers.append(_ThreadedMulti(t, pool, deadline, _mysqlclient_connect, errors, multi))
        else:  # asyncmy-multi, asyncmy-two
            probers.append(_Asyncmy(t, deadline, multi=variant == "asyncmy-multi"))
    return ProberSet(variant, probers, pool)
