"""A probe's reads on mysqlclient without MySQLdb's cursor: the driver's own low-level calls.

Why: MySQLdb's Cursor does, per result set, work a probe never reads (the warning count,
the affected rows, the insert id and the field flags, each a call into the C extension),
and on close drains the results it already read: one probe on a kept session cost ~162 us
of CPU through the cursor and ~139 us this way (one thread, 3 x 4,000 probes, 2026-12-03).
The probe reads small answers in order: `execute`, `fetchone`, `nextset` and `description`
over `query`, `store_result`, `fetch_row` and `next_result` of MySQLdb's documented `_mysql`
connection, which converts the values exactly as the cursor does (the connection's
converters) and raises the same errors (a failed statement of the batch raises at its
`next_result`).
"""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Any


class LeanCursor:
    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._rows: tuple[tuple[Any, ...], ...] = ()
        self._at = 0
        self.description: tuple[tuple[Any, ...], ...] | None = None

    def __enter__(self) -> LeanCursor:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        # results not read (a batch cut short, a caller's error between two reads) would be
        # read as the next query's: drained as the cursor's close does, always; while an
        # error is on its way out, a failure to drain is not put in its place (the probe
        # drops the session on the driver's errors)
        if kind is None:
            self._drain()
            return
        with contextlib.suppress(Exception):
            self._drain()

    def _drain(self) -> None:
        while self._conn.next_result() == 0:
            self._conn.store_result()

    def execute(self, sql: str) -> None:
        self._conn.query(sql.encode("utf-8"))
        self._take()

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def nextset(self) -> bool:
        if self._conn.next_result() != 0:  # -1: no more results (an error raises)
            return False
        self._take()
        return True

    def _take(self) -> None:
        result = self._conn.store_result()
        if result is None:  # a statement without a result set
            self._rows, self.description = (), None
        else:
            self._rows, self.description = result.fetch_row(0), result.describe()
        self._at = 0
