"""The node agent's config file (`mpp agent --config FILE`): one per database host.

Its own small file rather than a section of mpp.toml: it lives on the database host, names
one server, and holds what only that host knows (how mysqld is started). Two ways to hold
mysqld, as the Solaris process monitor and Patroni do:

- `command`: the agent starts mysqld as its own child and sees its exit at once;
- `pid_file` (+ `start`): mysqld is started by someone else (systemd, an init script); the
  agent watches the process named in the pid file and runs `start` to bring it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from mpp.config.loading import parse_as, read_toml
from mpp.config.values import ConfigError, Duration, Printable, _Strict


class MysqldConfig(_Strict):
    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = (
        None
    )
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


class AgentConfig(_Strict):
    path: Path
    node: Annotated[Printable, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    pool: Annotated[Printable, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")] = "main"
    # where the agent writes what it sees, as JSON, for mpp and for people (replaced
    # atomically at every change); none: the log only
    report_file: Annotated[str, Field(min_length=1)] | None = None
    mysqld: MysqldConfig

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
