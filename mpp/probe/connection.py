"""Where and how mpp connects to a server: one Target per node, and the one way to open a
connection with every socket operation bounded (the probes and the executor share it).

The probe's driver is mysqlclient (C, libmariadb) where it can be imported: it costs about a
quarter of PyMySQL's CPU per probe (docs/benchmarks.md, "Probe cost per driver"), which is
what lets one process poll a thousand nodes. PyMySQL stays the executor's driver, and the
probe's for the targets libmariadb cannot serve with the same meaning (`probe_driver`).
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
import operator
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pymysql
from pydantic import SecretStr
from pymysql.constants import CLIENT

from mpp.config import Config, ConfigError, PoolConfig
from mpp.config.values import split_address
from mpp.probe.lean import LeanCursor

log = logging.getLogger("mpp")


@dataclass(frozen=True)
class Tls:
    """The pool's TLS settings, with the paths resolved against the config's directory."""

    mode: str  # "preferred", "required", "verify_ca", "verify_identity"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @property
    def required(self) -> bool:
        return self.mode != "preferred"


class TlsRefused(pymysql.err.OperationalError):
    """The pool requires TLS and the server did not offer it: the session is not used."""


@functools.lru_cache(maxsize=64)
def _context(tls: Tls) -> ssl.SSLContext:
    """One context per pool's settings (loading a CA per connect would cost each probe):
    unverified for preferred/required, the CA for verify_ca, and the node's name or IP
    for verify_identity (PyMySQL passes the host as server_hostname)."""
    ctx = (
        ssl.create_default_context(cafile=tls.ca_file)
        if tls.ca_file
        else ssl.create_default_context()
    )
    if tls.mode in ("preferred", "required"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif tls.mode == "verify_ca":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
    if tls.cert_file and tls.key_file:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    return ctx


def encrypted(conn: pymysql.connections.Connection[Any]) -> bool:
    """The session runs over TLS (PyMySQL keeps the socket it wrapped as `_sock`)."""
    return isinstance(getattr(conn, "_sock", None), ssl.SSLSocket)


@dataclass(frozen=True)
class Target:
    node: str
    host: str
    port: int
    user: str
    password: SecretStr
    connect_timeout: float
    query_timeout: float
    source_address: str | None = None  # [mpp] source_address: where the session comes from
    tls: Tls | None = None  # None: no TLS (the pool's tls = "off")

    def __repr__(self) -> str:  # the password must never reach a log line
        return f"Target({self.node}@{self.host}:{self.port})"


def open_connection(
    t: Target, read_timeout: float | None = None, multi_statements: bool = False
) -> pymysql.connections.Connection[Any]:
    """A connection with every socket operation bounded (probe and executor alike).
    `multi_statements` lets the probe send its fixed statements in one round trip; the
    executor's sessions, whose statements take parameters, keep it off (a parameter can
    then never carry a second statement)."""
    conn = pymysql.connect(
        host=t.host,
        port=t.port,
        user=t.user,
        # bytes: PyMySQL encodes a str password as Latin-1 and dies on any other character
        # (a '€' in the password stopped `mpp run` with a traceback); the server compares
        # the bytes the account was created with, which is UTF-8 from every modern client
        password=t.password.get_secret_value().encode("utf-8"),
        connect_timeout=t.connect_timeout,
        read_timeout=read_timeout or t.query_timeout,
        write_timeout=t.query_timeout,
        autocommit=True,
        bind_address=t.source_address,
        # tls = "off" (the default): no TLS at all, not even PyMySQL's attempt (a TLS
        # handshake costs ~58 ms per connect here); otherwise the pool's context
        ssl_disabled=t.tls is None,
        # preferred: PyMySQL's own preferred mode (TLS when offered, unverified); stricter
        # modes: the pool's context, which PyMySQL then requires
        ssl=_context(t.tls) if t.tls is not None and t.tls.required else None,
        client_flag=CLIENT.MULTI_STATEMENTS if multi_statements else 0,
    )
    if t.tls is not None and t.tls.required and not encrypted(conn):
        conn.close()  # PyMySQL goes on in clear text when the server offers no TLS
        raise TlsRefused(2026, f'{t.node} offers no TLS and the pool requires tls = "{t.tls.mode}"')
    return conn


def pool_targets(config: Config, pool: PoolConfig) -> dict[str, Target]:
    """Where and how to connect to each node (the password is read once, here)."""
    password = config.password(pool)
    return {
        n.name: Target(
            node=n.name,
            host=n.host,
            port=n.port,
            user=pool.user,
            password=password,
            connect_timeout=config.mpp.connect_timeout,
            query_timeout=config.query_timeout,
            source_address=config.mpp.source_address,
            tls=pool_tls(config, pool),
        )
        for n in pool.node
    }


def admin_targets(config: Config, pool: PoolConfig) -> dict[str, Target]:
    """Each node's admin path (its admin_address), for the nodes that have one: where the
    executor goes when a node's main port refuses it (mpp.act.executor)."""
    main = pool_targets(config, pool)
    out = {}
    for n in pool.node:
        if n.admin_address is not None:
            host, port = split_address(n.admin_address)
            out[n.name] = replace(main[n.name], host=host, port=port)
    return out


def pool_tls(config: Config, pool: PoolConfig) -> Tls | None:
    """The pool's TLS settings for its sessions and its replication; None when off."""
    if pool.tls == "off":
        return None

    def path(name: str | None) -> str | None:
        return str(config.resolve(name)) if name is not None else None

    return Tls(pool.tls, path(pool.ca_file), path(pool.cert_file), path(pool.key_file))


# -- the probe's driver ----------------------------------------------------------------------


@dataclass(frozen=True)
class Driver:
    """How a probe opens its connection, reads its answers and what the driver raises. Both
    give a cursor with DB-API's `execute`, `fetchone`, `nextset` and `description` (as a
    context manager), and errors whose args are (errno, message), so the probe reads their
    answers the same way."""

    name: str  # "mysqlclient" or "pymysql"
    connect: Callable[[Target], Any]
    errors: tuple[type[Exception], ...]
    cursor: Callable[[Any], Any] = operator.methodcaller("cursor")  # the driver's own
    # a kept session's socket may be written and read on the event loop, past the driver
    # (mpp/probe/mysql.py: NodeProber.start_on_loop); mysqlclient's connections, plain TCP
    reads_on_loop: bool = False

    def __repr__(self) -> str:
        return f"Driver({self.name})"


def _pymysql_probe_connection(t: Target) -> Any:
    return open_connection(t, multi_statements=True)


PYMYSQL = Driver("pymysql", _pymysql_probe_connection, (pymysql.MySQLError,))


def _whole_seconds(seconds: float) -> int:
    """libmariadb takes its socket timeouts in whole seconds (MYSQL_OPT_*_TIMEOUT are unsigned
    ints): rounded up, never 0 (which would mean no timeout). The probe's hard deadline is
    the daemon's asyncio one, which may be shorter: a probe still blocked past it is skipped
    by the next cycle (NodeProber's lock), and its thread ends at this timeout."""
    return max(1, math.ceil(seconds))


def _mysqlclient(module: Any) -> Driver:
    client = importlib.import_module("MySQLdb.constants.CLIENT")

    def connect(t: Target) -> Any:
        return module.connect(
            host=t.host,
            port=t.port,
            user=t.user,
            # a str goes to libmariadb as UTF-8, the bytes the account was created with
            password=t.password.get_secret_value(),
            connect_timeout=_whole_seconds(t.connect_timeout),
            read_timeout=_whole_seconds(t.query_timeout),
            write_timeout=_whole_seconds(t.query_timeout),
            autocommit=True,  # the server's default: no round trip at connect
            ssl_mode="DISABLED",  # only TLS-off targets come here (probe_driver)
            client_flag=client.MULTI_STATEMENTS,
        )

    # the low-level reads (mpp/probe/lean.py): ~14 % less CPU per probe than MySQLdb's cursor
    return Driver("mysqlclient", connect, (module.MySQLError,), LeanCursor, reads_on_loop=True)


@functools.cache
def _installed() -> tuple[Driver | None, str]:
    """mysqlclient's Driver, or None and why not (logged once by the daemon)."""
    wanted = os.environ.get("MPP_PROBE_DRIVER", "mysqlclient")
    if wanted == "pymysql":
        return None, "MPP_PROBE_DRIVER=pymysql"
    if wanted != "mysqlclient":
        raise ConfigError(
            f"environment MPP_PROBE_DRIVER={wanted!r}: set it to mysqlclient (the default) "
            "or pymysql, or unset it"
        )
    try:
        module = importlib.import_module("MySQLdb")
    except ImportError as err:  # pip install without libmariadb-dev / a compiler: PyMySQL
        return None, f"mysqlclient (MySQLdb) cannot be imported: {err}"
    return _mysqlclient(module), ""


def probe_driver(t: Target) -> Driver:
    """mysqlclient, except where libmariadb would not mean what the config says; PyMySQL then.

    - TLS (any `tls` but "off"): libmariadb 3.3 (Debian 12's) has one switch,
      MYSQL_OPT_SSL_VERIFY_SERVER_CERT, that checks the CA *and* the host name, so
      `verify_ca` (CA only) cannot be had, and its "preferred" is not PyMySQL's (mysqlclient
      emulates ssl_mode on MariaDB's library). mpp's TLS tests pin PyMySQL's meaning of each
      mode (no byte in clear text when required, the CA and the name checked as the mode
      says); a TLS probe is dominated by its handshakes anyway, not by the driver.
    - `[mpp] source_address`: mysqlclient has no way to bind the client's address.
    - host "localhost": libmariadb goes to the Unix socket for it; mpp means TCP.
    - MPP_PROBE_DRIVER=pymysql (the benchmarks' baseline), or MySQLdb not importable.
    """
    driver, _ = _installed()
    if driver is None or t.tls is not None or t.source_address is not None:
        return PYMYSQL
    if t.host == "localhost":
        return PYMYSQL
    return driver


def probe_driver_note() -> str:
    """One line for the log: which driver the probes use, and why when it is the fallback."""
    driver, why = _installed()
    if driver is not None:
        version = importlib.import_module("MySQLdb").version_info
        return (
            f"probe driver: mysqlclient {'.'.join(map(str, version[:3]))} (PyMySQL for TLS, "
            "source_address and localhost targets)"
        )
    return f"probe driver: PyMySQL ({why})"
