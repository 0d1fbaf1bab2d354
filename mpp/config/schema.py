"""The whole configuration file, with the cross-section rules and the secrets' readers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mpp.config.checkpoints import CheckpointConfig
from mpp.config.pools import NodeConfig, PoolConfig
from mpp.config.sections import (
    _ETCD_URL,
    AgentSection,
    ApiSection,
    EtcdLocation,
    EtcdSection,
    MppSection,
    NotifySection,
    RouterSection,
)
from mpp.config.values import DEFAULT_CONFIG, ConfigError, _key_error, _Strict


class Config(_Strict):
    mpp: MppSection = MppSection()
    etcd: EtcdSection | None = None
    pool: Annotated[list[PoolConfig], Field(min_length=1)]
    api: ApiSection | None = None
    agent: AgentSection | None = None
    notify: NotifySection = NotifySection()
    router: RouterSection | None = None
    # [[checkpoint]]: MPP's checkpoints, probed by this instance (mpp.run.reach)
    checkpoint: list[CheckpointConfig] = Field(default_factory=list)
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

    @model_validator(mode="after")
    def _unique_checkpoints(self) -> Config:
        names = [c.name for c in self.checkpoint]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"[[checkpoint]] names must be unique; repeated: {', '.join(dupes)}")
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

    def check_secrets(self) -> None:
        """Read every secret `mpp run` will need, and forget them: a missing or unreadable
        one then stops the start before the store or a port exists (no partial start)."""
        self.etcd_password()
        for pool in self.pool:
            self.password(pool)
            if pool.repoints:
                self.repl_password(pool)

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
        except UnicodeDecodeError:
            raise ConfigError(
                f"{self.path}: {where} key {key}_file: {file} is not UTF-8; write the "
                f"password of user {user!r} as UTF-8 text"
            ) from None
