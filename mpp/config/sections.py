"""The daemon-wide sections: [mpp], [etcd], [api], [agent], [notify], [router]."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Annotated

from pydantic import (
    BeforeValidator,
    Field,
    model_validator,
)

from mpp.config.values import (
    Duration,
    Email,
    EnvName,
    FileName,
    Listen,
    Printable,
    _file_name,
    _key_error,
    _Strict,
)

_ETCD_URL = re.compile(r"^etcd://([^/]+)(/[^\x00-\x1f\x7f]*)?\Z", re.ASCII)
_HOST_PORT = re.compile(r"^[A-Za-z0-9._-]+:\d{1,5}\Z", re.ASCII)


def _state_url(value: str) -> str:
    if value.startswith("sqlite://") and value != "sqlite://":
        return _file_name(value)
    match = _ETCD_URL.match(value)
    if match and all(_HOST_PORT.match(h) for h in match.group(1).split(",")):
        return value
    raise ValueError(
        f'{value!r} is not a supported store; use "sqlite://PATH" (e.g. '
        '"sqlite:///var/lib/mpp/state.db", or "sqlite://state.db" beside the config file) '
        'or "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]" (e.g. "etcd://10.0.0.1:2379,'
        '10.0.0.2:2379,10.0.0.3:2379/mpp")'
    )


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f'{value!r} is not an IP address of this host, e.g. "10.0.0.5"') from None


class MppSection(_Strict):
    state: Annotated[str, BeforeValidator(lambda v: _state_url(str(v)))] = "sqlite://state.db"
    interval: Annotated[Duration, Field(gt=0)] = 1.0
    connect_timeout: Annotated[Duration, Field(gt=0)] = 1.0
    query_timeout: Annotated[Duration, Field(gt=0)] | None = None
    # several `mpp run` may share the store (sites on etcd, a standby instance): the one
    # holding the leadership lease decides and acts, the others follow; `name` says who
    name: Printable = Field(default_factory=socket.gethostname, min_length=1)
    leader_ttl: Annotated[Duration, Field(ge=2)] = 10.0
    # the site this instance runs in (docs/sites.md), as nodes name theirs; None: not said
    site: (
        Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] | None
    ) = None
    # pools shared among the instances on one store (mpp.run.shards): each pool has its own
    # lease and the live instances spread the pools; false: one instance leads them all
    shard: bool = False
    # the local address every session to the servers comes from (a multi-homed host: the
    # monitoring network); None: whatever the routing table picks
    source_address: Annotated[str, BeforeValidator(lambda v: _ip(str(v)))] | None = None

    @model_validator(mode="after")
    def _ttl_covers_interval(self) -> MppSection:
        if self.leader_ttl < 2 * self.interval:
            raise _key_error(
                "leader_ttl",
                f"{self.leader_ttl:g}s is shorter than two poll intervals "
                f"({2 * self.interval:g}s); raise it, e.g. leader_ttl = "
                f'"{max(10.0, 3 * self.interval):g}s"',
            )
        return self


@dataclass(frozen=True)
class EtcdLocation:
    endpoints: tuple[str, ...]  # http://HOST:PORT
    prefix: str


class EtcdSection(_Strict):
    """Credentials and TLS for an etcd:// store (etcd's own user and certificates)."""

    user: Printable | None = None  # etcd authentication (`etcdctl auth enable`)
    password_env: EnvName | None = None
    password_file: FileName | None = None
    tls: bool | None = None  # https; on by default when a CA or a client certificate is set
    ca_file: FileName | None = None  # verify etcd's certificate with this CA (else the system's)
    cert_file: FileName | None = None  # client certificate, for etcd --client-cert-auth
    key_file: FileName | None = None
    timeout: Annotated[Duration, Field(gt=0)] = 2.0  # per request, then the next endpoint
    # the local address the store's connections come from (a multi-homed host whose etcd
    # is on another network than its servers'); None: whatever the routing table picks
    source_address: Annotated[str, BeforeValidator(lambda v: _ip(str(v)))] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> EtcdSection:
        has_password = self.password_env is not None or self.password_file is not None
        if self.user is not None and (self.password_env is None) == (self.password_file is None):
            raise _key_error(
                "password_file",
                f"user {self.user!r} needs exactly one of password_env (an environment "
                "variable's name) or password_file (a file holding the password)",
            )
        if self.user is None and has_password:
            raise _key_error("user", 'a password is set but no user; set user = "..."')
        if (self.cert_file is None) != (self.key_file is None):
            raise _key_error("cert_file", "set both cert_file and key_file, or neither")
        if self.tls is False and (self.ca_file or self.cert_file):
            raise _key_error("tls", "tls = false with ca_file/cert_file set; remove one")
        return self

    @property
    def uses_tls(self) -> bool:
        return bool(self.tls) or (
            self.tls is None and (self.ca_file is not None or self.cert_file is not None)
        )


class ApiSection(_Strict):
    """The REST API and HTTP checks served by `mpp run`."""

    listen: Listen = "127.0.0.1:8080"
    token_file: FileName | None = None  # bearer token for mutations; without it they answer 401
    open_reads: bool = True  # read and check endpoints need no token
    # connections held at once; at the cap the oldest idle one makes room (docs/security.md)
    max_connections: Annotated[int, Field(ge=1, le=100_000)] = 256
    # a request's head must arrive within this, from the connect or the previous response
    header_timeout: Annotated[Duration, Field(gt=0, le=300)] = 5.0
    # HTTPS: the API's certificate (chain) and key; both or neither (none: plain HTTP)
    cert_file: FileName | None = None
    key_file: FileName | None = None

    @model_validator(mode="after")
    def _https(self) -> ApiSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both for HTTPS, or neither")
        return self


class AgentSection(_Strict):
    """HAProxy agent-check listener served by `mpp run`."""

    listen: Listen = "127.0.0.1:9800"
    # connections held at once; at the cap the oldest one still waiting for its request
    # line makes room
    max_connections: Annotated[int, Field(ge=1, le=100_000)] = 256


class WebhookTarget(_Strict):
    url: Annotated[Printable, Field(pattern=r"^https?://\S+$")]
    timeout: Duration = 2.0
    retries: Annotated[int, Field(ge=0, le=10)] = 3


class EmailTarget(_Strict):
    smtp: Listen = "127.0.0.1:25"
    sender: Email = "mpp@localhost"
    to: Annotated[list[Email], Field(min_length=1)]
    timeout: Duration = 5.0


class NotifySection(_Strict):
    """Where state/status changes are sent; throttled per node so flapping cannot flood."""

    throttle: Duration = 60.0
    webhook: list[WebhookTarget] = Field(default_factory=list)
    email: list[EmailTarget] = Field(default_factory=list)


class RouterSection(_Strict):
    """The built-in layer-4 router served by `mpp run` (docs/router.md)."""

    rw: Listen | None = None  # each new connection goes to the pool's ACTIVE node
    ro: Listen | None = None  # least connections over readable STANDBYs, else the ACTIVE node
    pool: Annotated[str, Field(min_length=1)] | None = None  # resolved by Config: never None
    max_connections: Annotated[int, Field(ge=1, le=100_000)] = 1000  # per port
    connect_timeout: Annotated[Duration, Field(gt=0)] = 1.0  # router -> server TCP connect
    # how long a new rw connection waits for a primary during a switchover or failover;
    # None: the pool's switchover_timeout (resolved by Config)
    switchover_wait: Duration | None = None

    @model_validator(mode="after")
    def _ports(self) -> RouterSection:
        if self.rw is None and self.ro is None:
            raise ValueError('set rw and/or ro, e.g. rw = "127.0.0.1:6446"')
        if self.rw is not None and self.rw == self.ro:
            raise ValueError(f"rw and ro must be different addresses; both are {self.rw!r}")
        return self
