"""Configuration: TOML in, validated pydantic models out, or a ConfigError that names the
file, the key and what is allowed. Nothing past this module sees raw TOML.

Secrets are referenced (password_env / password_file), never written in the file, and are
read only when a connection needs them, so read-only commands such as `mpp status` work for
an operator who cannot see the monitoring password.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from mpp.model import NodeSpec, NodeType, PoolSpec

DEFAULT_CONFIG = "mpp.toml"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class ConfigError(Exception):
    """A configuration problem, worded for the operator who has to fix the file."""


def parse_duration(value: Any) -> float:
    """'500ms', '2s', '1m', '1h' or a plain number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError('expected a duration such as "500ms", "2s" or "1m"')
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(
                f'{value!r} is not a duration; write it like "500ms", "2s", "1m" or "1h"'
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeConfig(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    address: str
    type: Literal["primary", "secondary"] = "secondary"

    @field_validator("address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f'{value!r} is not HOST:PORT, e.g. "127.0.0.1:3306"')
        return value

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])


class HooksConfig(_Strict):
    """Operator commands run around topology changes; environment documented in docs."""

    pre_failover: str | None = None
    post_failover: str | None = None
    pre_switchover: str | None = None
    post_switchover: str | None = None
    on_state_change: str | None = None
    timeout: Annotated[Duration, Field(gt=0)] = 10.0
    abort_on_failure: bool = True  # a failing pre_* hook aborts the failover/switchover

    def commands(self) -> tuple[tuple[str, str], ...]:
        names = (
            "pre_failover",
            "post_failover",
            "pre_switchover",
            "post_switchover",
            "on_state_change",
        )
        return tuple((n, c) for n in names if (c := getattr(self, n)))


class PoolConfig(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    logic: Literal["failover"] = "failover"
    topology: Literal["master-master", "primary-replica"] = "master-master"
    fail_point: Annotated[int, Field(ge=1, le=1000)] = 4
    max_lag: Duration = 10.0
    hostile_takeover: bool = False
    user: Annotated[str, Field(min_length=1)] = "mpp"
    password_env: str | None = None
    password_file: str | None = None
    # primary-replica topology: what failover, switchover and rejoin may do
    auto_failover: bool = True
    auto_rejoin: bool = True
    confirm_with_replicas: bool = True
    fast_fail: bool = True
    failover_block: Duration = 60.0
    catchup_timeout: Annotated[Duration, Field(gt=0)] = 10.0
    switchover_timeout: Annotated[Duration, Field(gt=0)] = 10.0
    semi_sync: bool = False
    semi_sync_timeout: Annotated[Duration, Field(gt=0)] = 30.0
    repl_user: str = "repl"
    repl_password_env: str | None = None
    repl_password_file: str | None = None
    hooks: HooksConfig = HooksConfig()
    node: Annotated[list[NodeConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _check(self) -> PoolConfig:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError(
                "set exactly one of password_env (an environment variable's name) or "
                "password_file (a file holding the password)"
            )
        names = [n.name for n in self.node]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"node names must be unique; repeated: {', '.join(dupes)}")
        addresses = [n.address for n in self.node]
        dupes = sorted({a for a in addresses if addresses.count(a) > 1})
        if dupes:
            raise ValueError(f"node addresses must be unique; repeated: {', '.join(dupes)}")
        if self.topology == "primary-replica" and (self.repl_password_env is None) == (
            self.repl_password_file is None
        ):
            raise ValueError(
                'topology "primary-replica" repoints replicas, so set exactly one of '
                "repl_password_env or repl_password_file (the password of repl_user)"
            )
        primaries = [n.name for n in self.node if n.type == "primary"]
        if len(primaries) != 1:
            raise ValueError(
                f'a pool needs exactly one node with type = "primary"; found {len(primaries)}'
                + (f" ({', '.join(primaries)})" if primaries else "")
            )
        return self

    def spec(self) -> PoolSpec:
        """The part of the pool the pure logic may see (no addresses' secrets, no I/O)."""
        return PoolSpec(
            name=self.name,
            nodes=tuple(NodeSpec(n.name, NodeType(n.type), n.address) for n in self.node),
            fail_point=self.fail_point,
            max_lag=self.max_lag,
            hostile_takeover=self.hostile_takeover,
            topology=self.topology,
            logic=self.logic,
            auto_failover=self.auto_failover,
            auto_rejoin=self.auto_rejoin,
            confirm_with_replicas=self.confirm_with_replicas,
            fast_fail=self.fast_fail,
            failover_block=self.failover_block,
            catchup_timeout=self.catchup_timeout,
            semi_sync=self.semi_sync,
            hooks=self.hooks.commands(),
            abort_on_hook_failure=self.hooks.abort_on_failure,
        )


_ETCD_URL = re.compile(r"^etcd://([^/]+)(/.*)?$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9._-]+:\d{1,5}$")


def _state_url(value: str) -> str:
    if value.startswith("sqlite://") and value != "sqlite://":
        return value
    match = _ETCD_URL.match(value)
    if match and all(_HOST_PORT.match(h) for h in match.group(1).split(",")):
        return value
    raise ValueError(
        f'{value!r} is not a supported store; use "sqlite://PATH" (e.g. '
        '"sqlite:///var/lib/mpp/state.db", or "sqlite://state.db" beside the config file) '
        'or "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]" (e.g. "etcd://10.0.0.1:2379,'
        '10.0.0.2:2379,10.0.0.3:2379/mpp")'
    )


class MppSection(_Strict):
    state: Annotated[str, BeforeValidator(lambda v: _state_url(str(v)))] = "sqlite://state.db"
    interval: Annotated[Duration, Field(gt=0)] = 1.0
    connect_timeout: Annotated[Duration, Field(gt=0)] = 1.0
    query_timeout: Annotated[Duration, Field(gt=0)] | None = None
    # several `mpp run` may share the store (sites on etcd, a standby instance): the one
    # holding the leadership lease decides and acts, the others follow; `name` says who
    name: str = Field(default_factory=socket.gethostname, min_length=1)
    leader_ttl: Annotated[Duration, Field(ge=2)] = 10.0

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


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f'{value!r} is not HOST:PORT to listen on, e.g. "127.0.0.1:8080"')
    return value


Listen = Annotated[str, BeforeValidator(lambda v: _listen(str(v)))]


class EtcdSection(_Strict):
    """Credentials and TLS for an etcd:// store (etcd's own user and certificates)."""

    user: str | None = None  # etcd authentication (`etcdctl auth enable`)
    password_env: str | None = None
    password_file: str | None = None
    tls: bool | None = None  # https; on by default when a CA or a client certificate is set
    ca_file: str | None = None  # verify etcd's certificate with this CA (else the system's)
    cert_file: str | None = None  # client certificate, for etcd --client-cert-auth
    key_file: str | None = None
    timeout: Annotated[Duration, Field(gt=0)] = 2.0  # per request, then the next endpoint

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
    token_file: str | None = None  # bearer token for mutations; without it they answer 401
    open_reads: bool = True  # read and check endpoints need no token


class AgentSection(_Strict):
    """HAProxy agent-check listener served by `mpp run`."""

    listen: Listen = "127.0.0.1:9800"


class WebhookTarget(_Strict):
    url: Annotated[str, Field(pattern=r"^https?://")]
    timeout: Duration = 2.0
    retries: Annotated[int, Field(ge=0, le=10)] = 3


class EmailTarget(_Strict):
    smtp: Listen = "127.0.0.1:25"
    sender: str = "mpp@localhost"
    to: Annotated[list[str], Field(min_length=1)]
    timeout: Duration = 5.0


class NotifySection(_Strict):
    """Where state/status changes are sent; throttled per node so flapping cannot flood."""

    throttle: Duration = 60.0
    webhook: list[WebhookTarget] = []
    email: list[EmailTarget] = []


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


def _key_error(key: str, message: str) -> ValidationError:
    """An error on a nested key from a validator of an enclosing model: pydantic prefixes
    the location, so the operator reads `router.pool: ...` rather than `router: ...`."""
    return ValidationError.from_exception_data(
        "RouterSection",
        [
            InitErrorDetails(
                type=PydanticCustomError("value_error", "{message}", {"message": message}),
                loc=(key,),
                input=None,
            )
        ],
    )


class Config(_Strict):
    mpp: MppSection = MppSection()
    etcd: EtcdSection | None = None
    pool: Annotated[list[PoolConfig], Field(min_length=1)]
    api: ApiSection | None = None
    agent: AgentSection | None = None
    notify: NotifySection = NotifySection()
    router: RouterSection | None = None
    path: Path = Path(DEFAULT_CONFIG)

    @field_validator("router")
    @classmethod
    def _router_pool(cls, value: RouterSection | None, info: ValidationInfo) -> Any:
        """Fill in the pool (the only one, when there is one) and the wait (that pool's
        switchover_timeout), so the router never has to guess."""
        pools: list[PoolConfig] | None = info.data.get("pool")
        if value is None or not pools:  # no router, or the pools are wrong already
            return value
        names = [p.name for p in pools]
        name = value.pool
        if name is None:
            if len(pools) > 1:
                raise _key_error(
                    "pool",
                    f"required with several pools ({', '.join(names)}): "
                    'name the pool the router serves, e.g. pool = "main"',
                )
            name = names[0]
        if name not in names:
            raise _key_error("pool", f"no pool named {name!r} (pools: {', '.join(names)})")
        pool = pools[names.index(name)]
        wait = pool.switchover_timeout if value.switchover_wait is None else value.switchover_wait
        return value.model_copy(update={"pool": name, "switchover_wait": wait})

    @model_validator(mode="after")
    def _etcd_needs_an_etcd_store(self) -> Config:
        if self.etcd is not None and not _ETCD_URL.match(self.mpp.state):
            raise ValueError(
                "[etcd] is set but [mpp] state is not an etcd store; set state = "
                '"etcd://HOST:PORT[,...][/PREFIX]" or remove the [etcd] section'
            )
        return self

    @model_validator(mode="after")
    def _unique_pools(self) -> Config:
        names = [p.name for p in self.pool]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pool names must be unique; repeated: {', '.join(dupes)}")
        return self

    @property
    def state_path(self) -> Path:
        """The SQLite file (only meaningful with a sqlite:// store)."""
        raw = Path(self.mpp.state.removeprefix("sqlite://"))
        return raw if raw.is_absolute() else self.path.parent / raw

    @property
    def etcd_location(self) -> EtcdLocation | None:
        """Where the etcd store is, or None for the embedded SQLite store."""
        match = _ETCD_URL.match(self.mpp.state)
        if match is None:
            return None
        scheme = "https" if self.etcd is not None and self.etcd.uses_tls else "http"
        hosts = tuple(f"{scheme}://{h}" for h in match.group(1).split(","))
        return EtcdLocation(hosts, (match.group(2) or "/mpp").rstrip("/") or "/mpp")

    def etcd_password(self) -> SecretStr | None:
        """The [etcd] user's password, read now (None without a user)."""
        e = self.etcd
        if e is None or e.user is None:
            return None
        return self._secret("[etcd]", "password", e.password_env, e.password_file, e.user)

    @property
    def state_location(self) -> str:
        """The store, as a person would name it in a log line."""
        return self.mpp.state if self.etcd_location else str(self.state_path)

    @property
    def query_timeout(self) -> float:
        return self.mpp.query_timeout or self.mpp.connect_timeout

    def get_pool(self, name: str) -> PoolConfig:
        for pool in self.pool:
            if pool.name == name:
                return pool
        known = ", ".join(p.name for p in self.pool)
        raise ConfigError(f"{self.path}: no pool named {name!r} (pools: {known})")

    def find_node(self, name: str) -> tuple[PoolConfig, NodeConfig]:
        """A node by name, or by POOL/NAME when two pools share a node name."""
        pool_name, _, node_name = name.rpartition("/")
        found = [
            (p, n)
            for p in self.pool
            if not pool_name or p.name == pool_name
            for n in p.node
            if node_name in (n.name, n.address)
        ]
        if not found:
            raise ConfigError(f"{self.path}: no node named {name!r}")
        if len(found) > 1:
            pools = ", ".join(p.name for p, _ in found)
            raise ConfigError(f"node {name!r} is in several pools ({pools}); write POOL/{name}")
        return found[0]

    def resolve(self, relative: str) -> Path:
        """A path from the config file, relative to the file's own directory."""
        path = Path(relative)
        return path if path.is_absolute() else self.path.parent / path

    def password(self, pool: PoolConfig) -> SecretStr:
        """The pool's monitoring password, read now; errors name the key and the fix."""
        where = f"pool {pool.name!r}"
        return self._secret(where, "password", pool.password_env, pool.password_file, pool.user)

    def repl_password(self, pool: PoolConfig) -> SecretStr:
        """The replication account's password, for CHANGE MASTER when repointing."""
        return self._secret(
            f"pool {pool.name!r}",
            "repl_password",
            pool.repl_password_env,
            pool.repl_password_file,
            pool.repl_user,
        )

    def _secret(
        self, where: str, key: str, env: str | None, file_name: str | None, user: str
    ) -> SecretStr:
        """`where`: "pool 'main'" or "[etcd]", for the message."""
        if env is not None:
            value = os.environ.get(env)
            if value is None:
                raise ConfigError(
                    f"{self.path}: {where} key {key}_env: environment variable "
                    f"{env} is not set; export it or use {key}_file"
                )
            return SecretStr(value)
        if file_name is None:
            raise ConfigError(
                f"{self.path}: {where}: set {key}_env or {key}_file for user {user!r}"
            )
        file = self.resolve(file_name)
        try:
            return SecretStr(file.read_text().rstrip("\r\n"))
        except OSError as err:
            raise ConfigError(
                f"{self.path}: {where} key {key}_file: cannot read {file} "
                f"({err.strerror}); create it with the password of user {user!r}"
            ) from err


def default_path() -> Path:
    return Path(os.environ.get("MPP_CONFIG", DEFAULT_CONFIG))


def load(path: Path | None = None) -> Config:
    """Read and validate a config file; every failure is a ConfigError naming file and key."""
    path = path or default_path()
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file; pass --config FILE, set MPP_CONFIG, or run "
            "`mpp sandbox up` to write one"
        ) from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return parse(raw, path)


def parse(raw: dict[str, Any], path: Path) -> Config:
    try:
        return Config.model_validate({**raw, "path": path.resolve()})
    except ValidationError as err:
        raise ConfigError(_explain(err, raw, path)) from None


def _explain(err: ValidationError, raw: dict[str, Any], path: Path) -> str:
    lines = [f"{path}: invalid configuration"]
    for problem in err.errors():
        key = _key_path(problem["loc"], raw)
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key (misspelt?); see docs/configuration.md for the keys"
        elif problem["type"] == "missing":
            message = "required key is missing"
        elif problem["type"] == "literal_error":
            message = f"got {problem['input']!r}; " + message.replace("Input should be", "allowed:")
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def _key_path(loc: tuple[int | str, ...], raw: Any) -> str:
    """('pool', 0, 'node', 1, 'address') -> 'pool[0] (main).node[1] (db2).address'."""
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                label += f" ({node['name']})"
            parts[-1] += label
        else:
            parts.append(item)
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"
