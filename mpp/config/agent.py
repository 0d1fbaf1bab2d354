"""The node agent's config file (`mpp agent --config FILE`): one per database host.

Its own small file rather than a section of mpp.toml: it lives on the database host, names
one server, and holds what only that host knows (how mysqld is started). Two ways to hold
mysqld, as the Solaris process monitor and Patroni do:

- `command`: the agent starts mysqld as its own child and sees its exit at once;
- `pid_file` (+ `start`): mysqld is started by someone else (systemd, an init script); the
  agent watches the process named in the pid file and runs `start` to bring it back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, SecretStr, model_validator

from mpp.config.loading import parse_as, read_toml
from mpp.config.sections import _ETCD_URL, EtcdLocation, EtcdSection, _ip, _state_url
from mpp.config.values import (
    Address,
    ConfigError,
    Duration,
    EnvName,
    FileName,
    Printable,
    _key_error,
    _Strict,
    split_address,
)


class MysqldConfig(_Strict):
    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = None
    pid_file: Annotated[str, Field(min_length=1)] | None = None
    start: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = None
    # the Solaris process monitor's defaults: at most 2 restarts within 5 minutes, then the
    # node is left failed for the operator (and mpp fails it over)
    retry_limit: Annotated[int, Field(ge=0, le=100)] = 2
    retry_interval: Annotated[Duration, Field(gt=0)] = 300.0
    # when the agent stops a child mysqld: SIGTERM, then SIGKILL after this long
    stop_timeout: Annotated[Duration, Field(gt=0, le=3600)] = 60.0

    @model_validator(mode="after")
    def _one_way(self) -> MysqldConfig:
        if (self.command is None) == (self.pid_file is None):
            raise ValueError(
                'set either command = ["/usr/sbin/mariadbd", ...] (the agent starts mysqld) '
                'or pid_file = "..." with start = [...] (the agent watches it)'
            )
        if self.pid_file is not None and self.start is None:
            raise ValueError('pid_file needs start = [...], e.g. ["systemctl", "start", "mariadb"]')
        if self.command is not None and self.start is not None:
            raise ValueError("start is for pid_file; with command the agent starts mysqld itself")
        return self


class DepthConfig(_Strict):
    """The agent's in-depth probes of its own server, each on its own schedule."""

    address: Address = "127.0.0.1:3306"
    user: Annotated[Printable, Field(min_length=1)] = "mpp"
    password_env: EnvName | None = None
    password_file: FileName | None = None
    ping_interval: Annotated[Duration, Field(gt=0, le=3600)] = 1.0
    # a write into `schema` with sql_log_bin = 0 in its session: never replicated
    write_interval: Annotated[Duration, Field(gt=0, le=3600)] = 10.0
    write_timeout: Annotated[Duration, Field(gt=0, le=600)] = 5.0  # longer: stalled
    connect_timeout: Annotated[Duration, Field(gt=0, le=60)] = 1.0
    schema_name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")] = "mpp_agent"
    # the local address the agent's own sessions to its server come from (its probes, the
    # fence); None: whatever the routing table picks (127.0.0.1 for a local server)
    source_address: Annotated[str, BeforeValidator(lambda v: _ip(str(v)))] | None = None

    @property
    def host(self) -> str:
        return split_address(self.address)[0]

    @property
    def port(self) -> int:
        return split_address(self.address)[1]

    @model_validator(mode="after")
    def _one_secret(self) -> DepthConfig:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError(
                "set exactly one of password_env (an environment variable's name) or "
                "password_file (a file holding the password)"
            )
        return self


class AgentConfig(_Strict):
    path: Path
    node: Annotated[Printable, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    pool: Annotated[Printable, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")] = "main"
    # where the agent writes what it sees, as JSON, for mpp and for people (replaced
    # atomically at every change); none: the log only
    report_file: Annotated[str, Field(min_length=1)] | None = None
    mysqld: MysqldConfig
    probe: DepthConfig | None = None  # none: supervision only
    # mpp's store, as in mpp.toml's [mpp] state: the agent's reports go there (each one
    # renews its fence lease) and it reads the pool's state there; none: report_file only
    store: Annotated[str, BeforeValidator(lambda v: _state_url(str(v)))] | None = None
    etcd: EtcdSection | None = None  # etcd's user and TLS, as mpp.toml's [etcd]
    # the fence lease: reports every fence_ttl/3; not renewed for fence_ttl and without a
    # majority of the pool in reach, the agent makes its writable server read-only
    fence_ttl: Annotated[Duration, Field(ge=0.5, le=600)] = 6.0
    # the pool's other nodes' mysqld (HOST:PORT), probed by TCP connect for the majority
    peers: tuple[Address, ...] = ()
    # the local address the peer checks come from (a multi-homed host: the pool's network)
    source_address: Annotated[str, BeforeValidator(lambda v: _ip(str(v)))] | None = None

    @model_validator(mode="after")
    def _store_needs(self) -> AgentConfig:
        if self.store is not None and self.probe is None:
            raise _key_error(
                "store",
                "set, but [probe] is not: the agent reads read_only and fences "
                "through the [probe] session; add [probe] (address, user, password_file)",
            )
        if self.etcd is not None and (self.store is None or not _ETCD_URL.match(self.store)):
            raise _key_error(
                "etcd",
                'set, but store is not an etcd store; set store = "etcd://HOST:PORT'
                '[,...][/PREFIX]" or remove the [etcd] section',
            )
        return self

    # what mpp.store.open_store reads, under the names mpp.toml's Config gives them
    @property
    def state_path(self) -> Path:
        assert self.store is not None
        return self.resolve(self.store.removeprefix("sqlite://"))

    @property
    def etcd_location(self) -> EtcdLocation | None:
        match = _ETCD_URL.match(self.store or "")
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
        return self._secret("etcd", e.password_env, e.password_file)

    def password(self) -> SecretStr:
        """The probe account's password, read now; errors name the key."""
        assert self.probe is not None
        return self._secret("probe", self.probe.password_env, self.probe.password_file)

    def _secret(self, section: str, env: str | None, file_name: str | None) -> SecretStr:
        if env is not None:
            value = os.environ.get(env)
            if value is None:
                raise ConfigError(
                    f"{self.path}: {section}.password_env: environment variable {env} is not set"
                )
            return SecretStr(value)
        assert file_name is not None
        file = self.resolve(file_name)
        try:
            return SecretStr(file.read_text(encoding="utf-8").rstrip("\r\n"))
        except (OSError, UnicodeDecodeError) as err:
            why = err.strerror if isinstance(err, OSError) else "not UTF-8"
            raise ConfigError(
                f"{self.path}: {section}.password_file: cannot read {file} ({why})"
            ) from None

    def resolve(self, name: str) -> Path:
        """A path in the file, relative to the file's directory."""
        p = Path(name)
        return p if p.is_absolute() else self.path.parent / p


def load_agent(path: Path) -> AgentConfig:
    """Read and validate an agent config; every failure a one-line ConfigError."""
    raw = read_toml(path)
    if "path" in raw:  # AgentConfig.path is where the file was read from
        raise ConfigError(f"{path}: path: unknown key (misspelt?); see docs/agent.md")
    return parse_as(AgentConfig, {**raw, "path": path.resolve()}, path)
