"""The embedded store: one SQLite file in WAL mode.

WAL lets `mpp status` read while `mpp run` writes; BEGIN IMMEDIATE takes the write lock
before the version check, so compare-and-set is atomic across processes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

from mpp.model import AgentReport, Event, PoolState, ReachReport, SiteView
from mpp.store import codec
from mpp.store.contract import (
    Events,
    Followed,
    Leader,
    NotLeader,
    Snapshot,
    Store,
    StoreError,
    Version,
)
from mpp.store.owners import vanished_here

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pool_state (
    pool    TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    state   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS event (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     REAL NOT NULL,
    pool   TEXT NOT NULL,
    node   TEXT NOT NULL,
    kind   TEXT NOT NULL,
    old    TEXT NOT NULL,
    new    TEXT NOT NULL,
    reason TEXT NOT NULL,
    change_kind TEXT,
    action_kind TEXT
);
CREATE INDEX IF NOT EXISTS event_pool ON event (pool, id);
CREATE TABLE IF NOT EXISTS agent_report (
    pool   TEXT NOT NULL,
    node   TEXT NOT NULL,
    report TEXT NOT NULL,
    PRIMARY KEY (pool, node)
);
CREATE TABLE IF NOT EXISTS reach (
    instance TEXT PRIMARY KEY,
    report   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS site_view (
    pool  TEXT NOT NULL,
    owner TEXT NOT NULL,
    view  TEXT NOT NULL,
    PRIMARY KEY (pool, owner)
);
CREATE TABLE IF NOT EXISTS pool_lease (
    pool    TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS member (
    owner   TEXT PRIMARY KEY,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS leader (
    one     INTEGER PRIMARY KEY CHECK (one = 1),
    owner   TEXT NOT NULL,
    expires REAL NOT NULL
);
"""


_BUSY_SECONDS = 10.0
_M = TypeVar("_M", bound=Callable[..., Any])


def _retry_while_locked(step: Callable[[], object]) -> None:
    """Switching to WAL needs the file to itself and SQLite does not wait for that (no busy
    handler): a reader opening the store at that very moment (`mpp status`, a test, a
    benchmark) made `mpp run` exit with "database is locked". Retry for a while instead."""
    deadline = time.monotonic() + _BUSY_SECONDS
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _locked(method: _M) -> _M:
    @functools.wraps(method)
    def run(self: SqliteStore, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return cast(_M, run)


def _private(path: Path) -> None:
    """The state file readable by its owner only: history quotes server messages and row
    values. Created 0600 before SQLite opens it (its -wal and -shm files take the database
    file's mode), tightened if an older mpp left it 0644; a directory mpp makes is 0700."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists() and side.stat().st_mode & 0o077:
            side.chmod(0o600)


class SqliteStore(Store):
    serves_at_once = 1  # every call holds self._lock
    versions_exact = True  # is_current reads the row's version whatever `within`

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._followed: dict[str, Snapshot] = {}  # follow's states, by pool, as last decoded
        try:
            _private(path)
            # the daemon renews its lease from a worker thread while the loop commits: one
            # connection shared under a lock (sqlite3 refuses cross-thread use by default)
            self._db = sqlite3.connect(
                path, timeout=_BUSY_SECONDS, isolation_level=None, check_same_thread=False
            )
            _retry_while_locked(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
            self._db.execute("PRAGMA synchronous=NORMAL")
            _retry_while_locked(lambda: self._db.executescript(_SCHEMA))
            _retry_while_locked(self._add_tag_columns)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"cannot open state store {path}: {err}") from err

    def _add_tag_columns(self) -> None:
        """A state file written before events were tagged gets the two columns (empty)."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(event)")}
        for column in ("change_kind", "action_kind"):
            if column not in have:
                self._db.execute(f"ALTER TABLE event ADD COLUMN {column} TEXT")

    @_locked
    def load(self, pool: str) -> Snapshot | None:
        row = self._db.execute(
            "SELECT state, version FROM pool_state WHERE pool = ?", (pool,)
        ).fetchone()
        if row is None:
            return None
        try:
            return Snapshot(codec.loads(row[0]), int(row[1]))
        except (ValueError, TypeError, KeyError) as err:
            raise StoreError(
                f"{self.path}: stored state of pool {pool!r} is unreadable: {err}"
            ) from err

    @_locked
    def is_current(self, pool: str, version: int, within: float = 0.0) -> bool:
        # exact whatever `within`: the version alone is already cheap to read here, and a
        # daemon's cycle that builds on the state it last decided skips decoding the stored
        # one (~5 % of mpp's CPU at a thousand nodes, py-spy)
        row = self._db.execute("SELECT version FROM pool_state WHERE pool = ?", (pool,)).fetchone()
        return row is not None and int(row[0]) == version

    @_locked
    def follow(self, after: int | None) -> Followed:
        db = self._db
        try:
            db.execute("BEGIN")  # one snapshot of the file for both reads (WAL)
            try:
                rows = db.execute("SELECT pool, version, state FROM pool_state").fetchall()
                if after is None:
                    events: list[Any] = []
                    cursor = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM event").fetchone()[0])
                else:
                    events = db.execute(
                        "SELECT id, at, pool, node, kind, old, new, reason, change_kind, "
                        "action_kind FROM event WHERE id > ? ORDER BY id",
                        (after,),
                    ).fetchall()
                    cursor = int(events[-1][0]) if events else after
                agents = db.execute("SELECT pool, node, report FROM agent_report").fetchall()
            finally:
                db.execute("COMMIT")
            reports: dict[str, dict[str, AgentReport]] = {}
            for pool, node, text in agents:
                try:
                    reports.setdefault(str(pool), {})[str(node)] = codec.report_loads(text)
                except (ValueError, TypeError, KeyError) as err:
                    raise StoreError(
                        f"{self.path}: an agent report of pool {pool!r} is unreadable: {err}"
                    ) from err
            states = {}
            for pool, version, state in rows:
                known = self._followed.get(str(pool))
                if known is not None and known.version == int(version):
                    states[str(pool)] = known  # decoded once per version, not once per read
                    continue
                try:
                    states[str(pool)] = Snapshot(codec.loads(state), int(version))
                except (ValueError, TypeError, KeyError) as err:
                    raise StoreError(
                        f"{self.path}: stored state of pool {pool!r} is unreadable: {err}"
                    ) from err
            self._followed = states
            news = tuple(codec.event_from(row[1:]) for row in events)
            return Followed(states, news, cursor, reports)
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: cannot read the pools' states: {err}") from err

    @_locked
    def save(
        self,
        state: PoolState,
        events: Events,
        expect: Version,
        leader: str | None = None,
        scoped: bool = False,
    ) -> Version:
        with self._write() as db:
            scope = state.name if scoped else None
            if leader is not None and not self._holds(leader, time.time(), scope):
                raise NotLeader(f"{self.path}: {leader} no longer holds the leadership")
            row = db.execute(
                "SELECT version FROM pool_state WHERE pool = ?", (state.name,)
            ).fetchone()
            current = None if row is None else int(row[0])
            if current != expect:
                return None  # nothing written: committing the empty transaction is harmless
            version = (current or 0) + 1
            db.execute(
                "INSERT INTO pool_state (pool, version, state) VALUES (?, ?, ?) "
                "ON CONFLICT (pool) DO UPDATE SET version = excluded.version, "
                "state = excluded.state",
                (state.name, version, codec.dumps(state)),
            )
            db.executemany(
                "INSERT INTO event "
                "(at, pool, node, kind, old, new, reason, change_kind, action_kind) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [codec.event_values(e) for e in events],
            )
            return version

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the lock first (BEGIN IMMEDIATE) so that the checks
        inside it and the writes are atomic across processes; rolled back on any error."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException as err:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(err, sqlite3.Error):
                raise StoreError(f"cannot write state store {self.path}: {err}") from err
            raise

    @_locked
    def history(
        self, pool: str | None = None, node: str | None = None, limit: int = 50
    ) -> list[Event]:
        rows = self._db.execute(
            "SELECT at, pool, node, kind, old, new, reason, change_kind, action_kind FROM event "
            "WHERE (?1 IS NULL OR pool = ?1) AND (?2 IS NULL OR node = ?2) "
            "ORDER BY id DESC LIMIT ?3",
            (pool, node, limit),
        ).fetchall()
        return [codec.event_from(row) for row in reversed(rows)]

    # the one lease lives in `leader` (one row), a pool's own in `pool_lease`; expiry is
    # wall clock: every process sharing this file runs on the same host
    def _lease_row(self, db: sqlite3.Connection, scope: str | None) -> tuple[str, float] | None:
        if scope is None:
            row = db.execute("SELECT owner, expires FROM leader").fetchone()
        else:
            row = db.execute(
                "SELECT owner, expires FROM pool_lease WHERE pool = ?", (scope,)
            ).fetchone()
        return None if row is None else (str(row[0]), float(row[1]))

    def _holds(self, owner: str, now: float, scope: str | None = None) -> bool:
        row = self._lease_row(self._db, scope)
        return row is not None and row[0] == owner and row[1] > now

    @_locked
    def lead(self, owner: str, ttl: float, scope: str | None = None) -> bool:
        with self._write() as db:
            now = time.time()
            row = self._lease_row(db, scope)
            free = row is None or row[0] == owner or row[1] <= now or vanished_here(row[0])
            if free and scope is None:
                db.execute(
                    "INSERT INTO leader (one, owner, expires) VALUES (1, ?, ?) ON CONFLICT "
                    "(one) DO UPDATE SET owner = excluded.owner, expires = excluded.expires",
                    (owner, now + ttl),
                )
            elif free:
                db.execute(
                    "INSERT INTO pool_lease (pool, owner, expires) VALUES (?, ?, ?) ON CONFLICT "
                    "(pool) DO UPDATE SET owner = excluded.owner, expires = excluded.expires",
                    (scope, owner, now + ttl),
                )
            return free

    @_locked
    def leader(self, scope: str | None = None) -> Leader | None:
        row = self._lease_row(self._db, scope)
        if row is None or row[1] <= time.time():
            return None
        return Leader(row[0], row[1] - time.time())

    @_locked
    def resign(self, owner: str, scope: str | None = None) -> None:
        with self._write() as db:
            if scope is None:
                db.execute("DELETE FROM leader WHERE owner = ?", (owner,))
            else:
                db.execute("DELETE FROM pool_lease WHERE pool = ? AND owner = ?", (scope, owner))

    @_locked
    def join(self, owner: str, ttl: float) -> None:
        with self._write() as db:
            now = time.time()
            db.execute("DELETE FROM member WHERE expires <= ?", (now,))
            db.execute(
                "INSERT INTO member (owner, expires) VALUES (?, ?) ON CONFLICT (owner) "
                "DO UPDATE SET expires = excluded.expires",
                (owner, now + ttl),
            )

    @_locked
    def members(self) -> list[str]:
        rows = self._db.execute(
            "SELECT owner FROM member WHERE expires > ? ORDER BY owner", (time.time(),)
        ).fetchall()
        return [str(r[0]) for r in rows if not vanished_here(str(r[0]))]

    @_locked
    def leaders(self) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT pool, owner FROM pool_lease WHERE expires > ?", (time.time(),)
        ).fetchall()
        return {str(p): str(o) for p, o in rows}

    @_locked
    def pools(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT pool FROM pool_state ORDER BY pool")]

    @_locked
    def put_report(self, report: AgentReport) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO agent_report (pool, node, report) VALUES (?, ?, ?) ON CONFLICT "
                "(pool, node) DO UPDATE SET report = excluded.report",
                (report.pool, report.node, codec.report_dumps(report)),
            )

    @_locked
    def put_view(self, view: SiteView) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO site_view (pool, owner, view) VALUES (?, ?, ?) ON CONFLICT "
                "(pool, owner) DO UPDATE SET view = excluded.view",
                (view.pool, view.owner, codec.view_dumps(view)),
            )

    @_locked
    def views(self, pool: str) -> dict[str, SiteView]:
        try:
            rows = self._db.execute(
                "SELECT owner, view FROM site_view WHERE pool = ?", (pool,)
            ).fetchall()
        except sqlite3.Error as err:
            raise StoreError(f"cannot read state store {self.path}: {err}") from err
        try:
            return {owner: codec.view_loads(text) for owner, text in rows}
        except (ValueError, TypeError, KeyError) as err:
            raise StoreError(f"{self.path}: a view of pool {pool!r} is unreadable: {err}") from err

    @_locked
    def reports(self, pool: str) -> dict[str, AgentReport]:
        # read every cycle by the loop, which goes on without them on a StoreError: any
        # other exception from here would end the pool's loop
        try:
            rows = self._db.execute(
                "SELECT node, report FROM agent_report WHERE pool = ?", (pool,)
            ).fetchall()
        except sqlite3.Error as err:
            raise StoreError(f"cannot read state store {self.path}: {err}") from err
        try:
            return {node: codec.report_loads(text) for node, text in rows}
        except (ValueError, TypeError, KeyError) as err:
            raise StoreError(
                f"{self.path}: an agent report of pool {pool!r} is unreadable: {err}"
            ) from err

    @_locked
    def put_reach(self, report: ReachReport) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO reach (instance, report) VALUES (?, ?) ON CONFLICT "
                "(instance) DO UPDATE SET report = excluded.report",
                (report.instance, codec.reach_dumps(report)),
            )

    @_locked
    def reach(self) -> dict[str, ReachReport]:
        try:
            rows = self._db.execute("SELECT instance, report FROM reach").fetchall()
        except sqlite3.Error as err:
            raise StoreError(f"cannot read state store {self.path}: {err}") from err
        try:
            return {name: codec.reach_loads(text) for name, text in rows}
        except (ValueError, TypeError, KeyError) as err:
            raise StoreError(f"{self.path}: a checkpoint report is unreadable: {err}") from err

    @_locked
    def close(self) -> None:
        self._db.close()
