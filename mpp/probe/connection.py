"""Where and how mpp connects to a server: one Target per node, and the one way to open a
connection with every socket operation bounded (the probes and the executor share it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymysql
from pydantic import SecretStr
from pymysql.constants import CLIENT

from mpp.config import Config, PoolConfig


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

    def __repr__(self) -> str:  # the password must never reach a log line
        return f"Target({self.node}@{self.host}:{self.port})"


def open_connection(
    t: Target, read_timeout: float | None = None, multi_statements: bool = False
) -> pymysql.connections.Connection[Any]:
    """A connection with every socket operation bounded (probe and executor alike).
    `multi_statements` lets the probe send its fixed statements in one round trip; the
    executor's sessions, whose statements take parameters, keep it off (a parameter can
    then never carry a second statement)."""
    return pymysql.connect(
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
        # TLS negotiation costs ~58 ms per connect with PyMySQL's default "preferred" mode;
        # monitoring over loopback/LAN runs without it for now.
        ssl_disabled=True,
        client_flag=CLIENT.MULTI_STATEMENTS if multi_statements else 0,
    )


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
        )
        for n in pool.node
    }
