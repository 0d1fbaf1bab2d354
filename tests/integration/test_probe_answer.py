"""mpp/probe/answer.py on real answers: the bytes a real mariadbd sends for a probe's batch
and for the shapes around it, peeked at on the socket as the event loop would see them.

For each answer the whole of it must read complete and no shorter prefix may: a prefix
taken for complete would end the probe's read before the rest came (and leave it on the
session for the next query). Fed in chunks of any size it must read the same. The driver
then reads the same bytes, and nothing may be left on the socket after it, so the answer
peeked at is exactly one answer; and Answer's values must be the driver's, value for value
and type for type.
"""

from __future__ import annotations

import importlib
import os
import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mpp import sandbox
from mpp.probe.answer import Answer, ResultSet, ServerError, answer_complete
from mpp.probe.flavor import detect
from tests.ports import Ports

# mysqlclient has no type stubs: imported as mpp/probe/connection.py does
MySQLdb: Any = importlib.import_module("MySQLdb")
MULTI_STATEMENTS: int = importlib.import_module("MySQLdb.constants.CLIENT").MULTI_STATEMENTS
_DEPRECATE_EOF = 1 << 24  # CLIENT_DEPRECATE_EOF: the framing answer.py reads needs it off


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, ports: Ports) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("answers")
    sandbox.up(d, nodes=2, base_port=ports.block(2), topology="primary-replica")
    try:
        yield d
    finally:
        sandbox.destroy(d)


def _connect(d: Path, node: str) -> Any:
    port = {n.name: n.port for n in sandbox.status(d)}[node]
    return MySQLdb.connect(
        host="127.0.0.1",
        port=port,
        user=sandbox.MPP_USER,
        password=(d / "mpp.password").read_text().strip(),
        client_flag=MULTI_STATEMENTS,
        autocommit=True,
    )


def _answer(conn: Any, sql: str) -> bytes:
    """The whole answer to `sql`, peeked at once the server has sent nothing for 0.3 s."""
    peek = socket.socket(fileno=os.dup(conn.fileno()))
    try:
        conn.send_query(sql.encode())
        seen = b""
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 0.3:
            select.select([peek], [], [], 0.05)
            try:
                now = peek.recv(1 << 20, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                now = b""
            if len(now) > len(seen):
                seen, quiet_since = now, time.monotonic()
        return seen
    finally:
        peek.close()


def _read_all(conn: Any) -> list[Any]:
    """What the driver makes of the answer (each result's rows, or the error that ended it)."""
    results: list[Any] = []
    try:
        conn.read_query_result()
        while True:
            result = conn.store_result()
            results.append(None if result is None else result.fetch_row(0))
            if conn.next_result() != 0:
                break
    except MySQLdb.MySQLError as err:
        results.append(err.args[0])
    return results


def _left_on_socket(conn: Any) -> bytes:
    peek = socket.socket(fileno=os.dup(conn.fileno()))
    try:
        return peek.recv(1 << 16, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return b""
    finally:
        peek.close()


def _prefixes(size: int) -> Iterator[int]:
    """Every prefix of a small answer; of a large one the first 5,000, every 97th and the
    last 600 (a row of 70,000 bytes has no boundary inside it to get wrong)."""
    if size <= 6000:
        yield from range(size)
        return
    yield from range(5000)
    yield from range(5000, size - 600, 97)
    yield from range(size - 600, size)


# an untrusted value that ends like the batch's last EOF packet (length 5, 0xFE, status
# without SERVER_MORE_RESULTS_EXISTS): a row's content is never taken for framing
_LOOKS_LIKE_EOF = "CONCAT(REPEAT('a', 20), CHAR(5, 0, 0, 9, 254, 0, 0, 2, 0))"

BATCHES: dict[str, Callable[[Any], str]] = {
    "probe on a replica": lambda f: f"{f.health(True)}; {f.replica_status_sql}",
    "probe with the heartbeat row, no such table": lambda f: (
        f"{f.health(True)}; {f.replica_status_sql}; {f.heartbeat_sql}"
    ),
    "an OK alone": lambda f: "DO 1",
    "an OK, then a result set": lambda f: "DO 1; SELECT 1",
    "an error mid-batch ends it": lambda f: "SELECT 1; SELECT * FROM no_such.t; SELECT 2",
    "no rows": lambda f: "SELECT 1 FROM DUAL WHERE 1 = 0",
    "a row of 70,000 bytes": lambda f: "SELECT REPEAT('x', 70000), 2",
    "a row that ends like the final EOF": lambda f: f"SELECT {_LOOKS_LIKE_EOF}; SELECT 1",
    "many rows": lambda f: "SELECT seq, REPEAT('y', seq) FROM seq_1_to_300",
    "values of each type a probe may read": lambda f: (
        "SELECT 1.5e0, CAST(2.25 AS DECIMAL(5, 2)), CAST('x' AS BINARY), NULL, -7, "
        "18446744073709551615, 'é ✓', CAST(3 AS FLOAT), @@global.read_only, "
        "@@global.rpl_semi_sync_master_timeout, @@global.rpl_semi_sync_master_wait_point"
    ),
}


@pytest.mark.parametrize("node", ["db1", "db2"])
@pytest.mark.parametrize("what", list(BATCHES))
def test_only_the_whole_answer_reads_complete(servers: Path, node: str, what: str) -> None:
    conn = _connect(servers, node)
    try:
        assert not conn.client_flag & _DEPRECATE_EOF, "EOF packets are what answer.py reads"
        flavor = detect(conn.get_server_info())
        whole = _answer(conn, BATCHES[what](flavor))
        assert whole, "the server answered"
        assert answer_complete(whole), f"{what}: the whole answer ({len(whole)} bytes)"
        early = [k for k in _prefixes(len(whole)) if answer_complete(whole[:k])]
        assert not early, f"{what}: prefixes taken for the whole: {early[:5]}"
        for size in (1, 7, 100, 1460):
            chunked = Answer()
            parts = [whole[k : k + size] for k in range(0, len(whole), size)]
            assert [chunked.feed(part) for part in parts] == [False] * (len(parts) - 1) + [True]
        results = _read_all(conn)
        assert results, "the driver read it"
        mine = _values(whole)
        assert mine == results, f"{what}: Answer's values are the driver's"
        assert [_types(r) for r in mine] == [_types(r) for r in results]
        assert _left_on_socket(conn) == b"", "the peeked answer was all of it"
        assert _read_all_again_works(conn)
    finally:
        conn.close()


def _values(whole: bytes) -> list[Any]:
    """Answer's results in _read_all's shape."""
    answer = Answer()
    assert answer.feed(whole)
    return [
        r.rows if isinstance(r, ResultSet) else r.args[0] if isinstance(r, ServerError) else r
        for r in answer.results
    ]


def _types(result: Any) -> Any:
    if isinstance(result, tuple):
        return tuple(tuple(type(v).__name__ for v in row) for row in result)
    return type(result).__name__


def _read_all_again_works(conn: Any) -> bool:
    """The session is still in step after the batch: a new query reads its own answer."""
    conn.query(b"SELECT 42")
    rows = conn.store_result().fetch_row(0)
    return bool(rows == ((42,),))


def test_the_probe_batch_on_a_replica_is_three_results(servers: Path) -> None:
    """The shape the probe relies on: health, replica status, then the heartbeat error."""
    conn = _connect(servers, "db2")
    try:
        flavor = detect(conn.get_server_info())
        sql = f"{flavor.health(True)}; {flavor.replica_status_sql}; {flavor.heartbeat_sql}"
        assert answer_complete(_answer(conn, sql))
        results = _read_all(conn)
        assert len(results) == 3 and results[2] == 1146, results  # no mpp.heartbeat table
        assert results[1] and results[1][0][0], "db2 replicates: one status row"
    finally:
        conn.close()
