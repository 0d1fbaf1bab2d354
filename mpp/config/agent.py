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

from pydantic import Field, SecretStr, model_validator

from mpp.config.loading import parse_as, read_toml
from mpp.config.values import (
    Address,
    ConfigError,
    Duration,
    EnvName,
    FileName,
    Printable,
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

    def password(self) -> SecretStr:
        """The probe account's password, read now; errors name the key."""
        assert self.probe is not None
        if self.probe.password_env is not None:
            value = os.environ.get(self.probe.password_env)
            if value is None:
                raise ConfigError(
                    f"{self.path}: probe.password_env: environment variable "
                    f"{self.probe.password_env} is not set"
                )
            return SecretStr(value)
        assert self.probe.password_file is not None
        file = self.resolve(self.probe.password_file)
        try:
            return SecretStr(file.read_text(encoding="utf-8").rstrip("\r\n"))
        except (OSError, UnicodeDecodeError) as err:
            why = err.strerror if isinstance(err, OSError) else "not UTF-8"
            raise ConfigError(
                f"{self.path}: probe.password_file: cannot read {file} ({why})"
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
