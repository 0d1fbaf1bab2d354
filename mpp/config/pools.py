"""A pool and its nodes as configured: what to poll, with which account, under which
policies."""

from __future__ import annotations

import zoneinfo
from typing import Annotated, Literal

from croniter import croniter
from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from mpp.config.values import (
    Address,
    Duration,
    EnvName,
    FileName,
    Printable,
    _key_error,
    _Strict,
    parse_duration,
    split_address,
)
from mpp.logic import registry
from mpp.model import PoolSpec


def _fallback(value: object) -> float | None:
    """semi_sync_fallback: "never" (None) or a duration."""
    if value == "never" or value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as err:
        raise ValueError(f'{err}; or "never" (strict semi-sync is never relaxed)') from None


Fallback = Annotated[float | None, BeforeValidator(_fallback)]


def _semi_sync(value: object) -> object:
    if isinstance(value, bool) or value == "strict":
        return value
    raise ValueError(
        f'{value!r}: semi_sync is true, false or "strict" (never asynchronous by the server itself)'
    )


SemiSync = Annotated[Literal["strict"] | bool, BeforeValidator(_semi_sync)]


class NodeConfig(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    address: Address
    type: Literal["primary", "secondary"] = "secondary"
    # where the other nodes replicate from this one, when their network is not mpp's (a
    # management network, a proxy in front of the node); None: `address`
    replication_address: Address | None = None
    # where the node runs (docs/sites.md): a failover prefers its failed primary's site
    site: (
        Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] | None
    ) = None
    # may mpp promote it by its own choice: "prefer" wins at equal data, "never" stays a
    # replica unless the operator names it (switchover --to, takeover --to)
    promotion: Literal["prefer", "normal", "never"] = "normal"
    # a second way in that a full server still answers, for the fence of a primary that
    # refuses mpp (1040 too many connections): MariaDB's extra_port, MySQL's admin_address
    # and admin_port. Without one (or a node agent) mpp does not fail over a primary that
    # answers but refuses it: its clients may still be writing (docs/fencing.md)
    admin_address: Address | None = None

    @property
    def host(self) -> str:
        return split_address(self.address)[0]

    @property
    def port(self) -> int:
        return split_address(self.address)[1]

    @property
    def source(self) -> str:
        """HOST:PORT a replica of this node names in CHANGE MASTER (and so reports back)."""
        return self.replication_address or self.address

    @property
    def source_host_port(self) -> tuple[str, int]:
        return split_address(self.source)


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


class ScheduleConfig(_Strict):
    """`[[pool.schedule]]`: a planned switchover at the times a cron expression names
    ("follow the sun"), with the safety of `mpp switchover`."""

    # five fields (minute hour day month weekday), or six with seconds last
    cron: Annotated[str, Field(min_length=1, max_length=200)]
    switchover_to: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] | None = None
    timeout: Annotated[Duration, Field(gt=0)] | None = None  # None: the pool's switchover_timeout
    timezone: Annotated[str, Field(min_length=1, max_length=64)] = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) not in (5, 6) or not croniter.is_valid(value):
            raise ValueError(
                f"{value!r} is not a cron expression: five fields (minute hour day month "
                'weekday), e.g. "0 8 * * 1-5", or six with seconds last'
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f'{value!r} is not a time zone; use e.g. "UTC" or "Europe/Paris"'
            ) from None
        return value


class PoolConfig(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    logic: str = "failover"  # a registered logic (mpp.logic.registry)
    topology: Literal["master-master", "primary-replica"] = "master-master"
    fail_point: Annotated[int, Field(ge=1, le=1000)] = 4
    max_lag: Duration = 10.0
    hostile_takeover: bool = False
    user: Annotated[Printable, Field(min_length=1)] = "mpp"
    password_env: EnvName | None = None
    password_file: FileName | None = None
    # primary-replica topology: what failover, switchover and rejoin may do
    auto_failover: bool = True
    auto_rejoin: bool = True
    confirm_with_replicas: bool = True
    fast_fail: bool = True
    failover_block: Duration = 60.0
    catchup_timeout: Annotated[Duration, Field(gt=0)] = 10.0
    switchover_timeout: Annotated[Duration, Field(gt=0)] = 10.0
    # true: AFTER_SYNC with semi_sync_timeout, after which the server itself turns
    # asynchronous; "strict": it never does (docs/topology.md), only mpp may relax it, after
    # semi_sync_fallback with every semi-sync replica down
    semi_sync: SemiSync = False
    semi_sync_fallback: Fallback = None
    # seconds between mpp's heartbeat rows through the ACTIVE primary (0: none): confirms a
    # hung primary through its replicas without waiting for their slave_net_timeout
    heartbeat: Annotated[Duration, Field(ge=0, le=3600)] = 0.0
    # master-master: repoint around a failed ring member, re-insert it when it returns
    ring_repair: bool = False
    semi_sync_timeout: Annotated[Duration, Field(gt=0)] = 30.0
    # "manual": a failover never moves the writes to another site by itself (docs/sites.md)
    cross_site: Literal["auto", "manual"] = "auto"
    repl_user: Annotated[Printable, Field(min_length=1)] = "repl"
    repl_password_env: EnvName | None = None
    repl_password_file: FileName | None = None
    # TLS for every MySQL session mpp opens to this pool's servers (probes, executor) and
    # for the replication it sets up (docs/security.md): "off" (the default, what a fresh
    # sandbox serves), "preferred" (encrypt when the server offers it), "required"
    # (encrypt, unverified), "verify_ca" (the server's certificate signed by ca_file),
    # "verify_identity" (and its name or IP matching the node's address)
    tls: Literal["off", "preferred", "required", "verify_ca", "verify_identity"] = "off"
    ca_file: FileName | None = None
    cert_file: FileName | None = None  # a client certificate, for servers that ask for one
    key_file: FileName | None = None
    # logic = "cluster" (docs/logic.md): the fewest nodes kept in service, and how many good
    # polls in a row bring a node that left service back
    min_nodes: Annotated[int, Field(ge=1, le=1000)] = 1
    return_after: Annotated[int, Field(ge=1, le=1000)] = 2
    # node agents (docs/agent.md): how long a primary's write probe may stall before it is
    # failing, and the margin past a fence lease's TTL before promoting past its primary
    write_stall_grace: Annotated[Duration, Field(gt=0, le=3600)] = 10.0
    fence_margin: Annotated[Duration, Field(ge=0, le=600)] = 2.0
    # several mpp instances on one store (docs/sites.md): "leader", the leader's probe alone
    # decides that a node does not answer; "majority", every instance probes and a node is
    # failed only when the leader's probe and a majority of the fresh views agree
    quorum: Literal["leader", "majority"] = "leader"
    hooks: HooksConfig = HooksConfig()
    schedule: list[ScheduleConfig] = Field(default_factory=list)
    node: Annotated[list[NodeConfig], Field(min_length=1)]

    @field_validator("logic")
    @classmethod
    def _known_logic(cls, value: str) -> str:
        known = registry.names()
        if value not in known:
            raise ValueError(
                f"no logic named {value!r}; registered: {', '.join(map(repr, known))} "
                f'(a plug-in adds names through the "{registry.ENTRY_POINT_GROUP}" '
                "entry-point group)"
            )
        return value

    @property
    def repoints(self) -> bool:
        """Does mpp change this pool's replication (and so need the repl account)?"""
        return self.topology == "primary-replica" or self.ring_repair

    @model_validator(mode="after")
    def _check(self) -> PoolConfig:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError(
                "set exactly one of password_env (an environment variable's name) or "
                "password_file (a file holding the password)"
            )
        names = [n.name for n in self.node]
        if self.min_nodes > len(names):
            raise ValueError(
                f"min_nodes = {self.min_nodes} but the pool has {len(names)} node(s): "
                "lower min_nodes or add [[pool.node]] entries"
            )
        for entry in self.schedule:
            if self.topology != "primary-replica":
                raise ValueError(
                    '[[pool.schedule]] switches over: it needs topology = "primary-replica"'
                )
            if entry.switchover_to is not None and entry.switchover_to not in names:
                raise ValueError(
                    f"schedule switchover_to = {entry.switchover_to!r} is not a node of this "
                    f"pool; nodes: {', '.join(names)}"
                )
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"node names must be unique; repeated: {', '.join(dupes)}")
        addresses = [n.address for n in self.node]
        addresses += [n.replication_address for n in self.node if n.replication_address]
        dupes = sorted({a for a in addresses if addresses.count(a) > 1})
        if dupes:
            raise ValueError(f"node addresses must be unique; repeated: {', '.join(dupes)}")
        if self.repoints and (self.repl_password_env is None) == (self.repl_password_file is None):
            what = (
                'topology "primary-replica" repoints replicas'
                if self.topology == "primary-replica"
                else "ring_repair repoints ring members"
            )
            raise ValueError(
                f"{what}, so set exactly one of "
                "repl_password_env or repl_password_file (the password of repl_user)"
            )
        if self.tls in ("verify_ca", "verify_identity") and self.ca_file is None:
            raise ValueError(f'tls = "{self.tls}" checks the server against ca_file: set it')
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both, or neither")
        if self.tls in ("off", "preferred") and any((self.ca_file, self.cert_file, self.key_file)):
            raise ValueError(
                'ca_file, cert_file and key_file need tls = "required" or stricter '
                f'(tls = "{self.tls}" uses none of them)'
            )
        if self.cross_site == "manual":
            unsited = [n.name for n in self.node if n.site is None]
            if unsited:
                raise _key_error(
                    "cross_site",
                    '"manual" keeps failovers inside the primary\'s site, so every '
                    f'[[pool.node]] needs site = "NAME"; missing on: {", ".join(unsited)}',
                )
        if self.semi_sync_fallback is not None and self.semi_sync != "strict":
            raise ValueError(
                'semi_sync_fallback relaxes strict semi-sync: set semi_sync = "strict", '
                "or remove semi_sync_fallback (semi_sync = true falls back after "
                "semi_sync_timeout by itself)"
            )
        if self.heartbeat and self.topology != "primary-replica":
            raise ValueError('heartbeat needs topology = "primary-replica" (or heartbeat = 0)')
        if 0 < self.heartbeat < 0.1:
            raise ValueError('heartbeat is at least "100ms" (or 0: no heartbeat)')
        primaries = [n.name for n in self.node if n.type == "primary"]
        if len(primaries) != 1:
            raise ValueError(
                f'a pool needs exactly one node with type = "primary"; found {len(primaries)}'
                + (f" ({', '.join(primaries)})" if primaries else "")
            )
        return self

    def spec(self) -> PoolSpec:
        """The part of the pool the pure logic may see (no addresses' secrets, no I/O)."""
        from mpp.config.spec import pool_spec  # spec.py reads PoolConfig: imported late

        return pool_spec(self)
