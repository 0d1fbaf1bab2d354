"""In-depth probes of the agent's own server: an admin ping, and a write that must commit.

A server can answer pings and still not commit: a full disk or binlog disk, a lock held on
the table, a stuck commit. mpp's poll sees a server that answers; only a write shows the
rest. The write goes into the agent's own schema with `sql_log_bin = 0` in its session, so
it is never replicated (nor does its schema reach the replicas), and it is timed: its
commit latency is reported, and one that does not finish within `write_timeout` is a
stall, its own status with its own message. The stalled statement is then killed from a
fresh session, so stalls cannot pile up connections on the server.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import pymysql
from pydantic import SecretStr

from mpp.config.agent import DepthConfig


@dataclass(frozen=True)
class Depth:
    """The latest of each probe: ok, how long it took, and why not."""

    ping_ok: bool | None = None
    ping_ms: float | None = None
    ping_error: str = ""
    write_status: str = "unknown"  # "ok", "stalled", "failed", "unknown"
    write_ms: float | None = None
    write_error: str = ""


def _text(err: BaseException) -> str:
    """An error as one short line (server text is shown, never interpreted)."""
    if isinstance(err, pymysql.MySQLError) and len(err.args) > 1:
        text = f"{err.args[0]} {err.args[1]}"
    else:
        text = f"{type(err).__name__}: {err}"
    return " ".join(text.split())[:300]


class DepthProbe:
    def __init__(self, cfg: DepthConfig, password: SecretStr, node: str) -> None:
        self.cfg = cfg
        self.password = password
        self.node = node
        self._conn: Any = None
        self._ready = False  # the schema and table exist on this server

    def _connect(self, read_timeout: float) -> Any:
        return pymysql.connect(
            host=self.cfg.host,
            port=self.cfg.port,
            user=self.cfg.user,
            password=self.password.get_secret_value().encode("utf-8"),
            connect_timeout=self.cfg.connect_timeout,
            read_timeout=read_timeout,
            write_timeout=read_timeout,
            autocommit=True,
            ssl_disabled=True,  # local: the agent runs beside its server
            bind_address=self.cfg.source_address,
        )

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def ping(self) -> tuple[bool, float | None, str]:
        started = time.perf_counter()
        try:
            conn = self._connect(self.cfg.connect_timeout)
            try:
                conn.ping(reconnect=False)
            finally:
                conn.close()
        except Exception as err:  # any failure of the probe is its answer
            return False, None, _text(err)
        return True, round((time.perf_counter() - started) * 1000, 2), ""

    def write(self) -> tuple[str, float | None, str]:
        """("ok" | "stalled" | "failed", commit ms, error)."""
        try:
            if self._conn is None:
                self._conn = self._connect(self.cfg.write_timeout)
                self._ready = False
            with self._conn.cursor() as cur:
                cur.execute("SET SESSION sql_log_bin = 0")
                if not self._ready:
                    schema = self.cfg.schema_name  # checked by the config: a plain name
                    cur.execute(f"CREATE DATABASE IF NOT EXISTS `{schema}`")
                    cur.execute(
                        f"CREATE TABLE IF NOT EXISTS `{schema}`.probe "
                        "(node VARCHAR(64) PRIMARY KEY, at DOUBLE NOT NULL) ENGINE=InnoDB"
                    )
                    self._ready = True
                started = time.perf_counter()
                cur.execute(
                    f"REPLACE INTO `{self.cfg.schema_name}`.probe (node, at) VALUES (%s, %s)",
                    (self.node, time.time()),
                )
                took = round((time.perf_counter() - started) * 1000, 2)
            return "ok", took, ""
        except pymysql.err.OperationalError as err:
            thread = self._thread_id()
            self._drop()
            if _timed_out(err):
                self._kill(thread)
                return "stalled", None, f"write not committed within {self.cfg.write_timeout:g} s"
            return "failed", None, _text(err)
        except Exception as err:
            self._drop()
            return "failed", None, _text(err)

    def _thread_id(self) -> int | None:
        with contextlib.suppress(Exception):
            return int(self._conn.thread_id())
        return None

    def _kill(self, thread: int | None) -> None:
        """End the stalled statement's session from a fresh one (best effort)."""
        if thread is None:
            return
        with contextlib.suppress(Exception):
            conn = self._connect(self.cfg.connect_timeout)
            try:
                with conn.cursor() as cur:
                    cur.execute("KILL %s", (thread,))
            finally:
                conn.close()

    def close(self) -> None:
        self._drop()


def _timed_out(err: BaseException) -> bool:
    """PyMySQL reports a read timeout as 2013 'Lost connection ... (timed out)'."""
    cause = err.__cause__ or err.__context__
    return isinstance(cause, TimeoutError) or "timed out" in str(err).lower()
