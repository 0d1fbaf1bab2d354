"""Plain-value builders for logic tests: specs and observations without any server."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from mpp.model import (
    FailoverPolicy,
    NodeSpec,
    NodeType,
    Observation,
    PoolSpec,
    Replication,
    ReplicationPolicy,
    Topology,
)


def ring_spec(
    n: int = 3, *, fail_point: int = 4, hostile: bool = False, name: str = "main"
) -> PoolSpec:
    return PoolSpec(
        name=name,
        nodes=tuple(
            NodeSpec(
                f"db{i + 1}",
                NodeType.PRIMARY if i == 0 else NodeType.SECONDARY,
                f"127.0.0.1:{3306 + i}",
            )
            for i in range(n)
        ),
        fail_point=fail_point,
        failover=FailoverPolicy(hostile_takeover=hostile),
    )


def _source(spec: PoolSpec, name: str) -> str:
    """In MPP's ring each node replicates from the one before it."""
    names = [n.name for n in spec.nodes]
    return spec.nodes[names.index(name) - 1].address


def observe(spec: PoolSpec, kinds: dict[str, str], at: float = 0.0) -> dict[str, Observation]:
    """kinds: node -> "good" | "offline" | "service" | "sql_stopped" | "io_down" | "lag"."""
    out: dict[str, Observation] = {}
    for node in spec.nodes:
        kind = kinds.get(node.name, "good")
        host, _, port = _source(spec, node.name).rpartition(":")
        if kind == "offline":
            out[node.name] = Observation(node.name, at, reachable=False, error="2003 refused")
            continue
        if kind == "service":
            out[node.name] = Observation(node.name, at, reachable=True, error="1045 denied")
            continue
        rep = Replication(
            source_host=host,
            source_port=int(port),
            io_running="Connecting" if kind == "io_down" else "Yes",
            sql_running=kind != "sql_stopped",
            last_sql_errno=1062 if kind == "sql_stopped" else 0,
            last_sql_error="Duplicate entry" if kind == "sql_stopped" else "",
            seconds_behind=None if kind == "io_down" else (600 if kind == "lag" else 0),
        )
        out[node.name] = Observation(
            node.name, at, reachable=True, read_only=False, gtid_executed="0-1-1", replication=rep
        )
    return out


_REPLICATION_KEYS = {f.name for f in fields(ReplicationPolicy)}


def star_spec(n: int = 3, **options: Any) -> PoolSpec:
    """A primary-replica pool: db1 primary, the rest replicas of whoever is primary.
    options: ReplicationPolicy keys (auto_failover, semi_sync, ...) or PoolSpec fields."""
    spec = ring_spec(n)
    policy = {k: options.pop(k) for k in list(options) if k in _REPLICATION_KEYS}
    if "hostile_takeover" in options:
        options["failover"] = FailoverPolicy(hostile_takeover=options.pop("hostile_takeover"))
    return replace(
        spec,
        topology=Topology.PRIMARY_REPLICA,
        replication=ReplicationPolicy(**policy),
        **options,
    )


def star(
    spec: PoolSpec,
    kinds: dict[str, str],
    source: str = "db1",
    gtids: dict[str, str] | None = None,
    at: float = 0.0,
) -> dict[str, Observation]:
    """kinds: node -> "primary" | "replica" | "io_lost" | "sql_stopped" | "offline" |
    "fenced" (read-only, replicating from nobody) | "lagging"; default: db named `source` is
    the primary and every other node its healthy replica. gtids: node -> executed position."""
    gtids = gtids or {}
    addr = spec.spec(source).address
    host, _, port = addr.rpartition(":")
    out: dict[str, Observation] = {}
    for node in spec.nodes:
        kind = kinds.get(node.name, "primary" if node.name == source else "replica")
        pos = gtids.get(node.name, "0-1-10")
        if kind == "offline":
            out[node.name] = Observation(node.name, at, reachable=False, error="2003 refused")
            continue
        if kind in ("primary", "fenced", "writable_orphan"):
            out[node.name] = Observation(
                node.name,
                at,
                reachable=True,
                read_only=kind == "fenced",
                gtid_executed=pos,
                gtid_binlog=pos,
            )
            continue
        rep = Replication(
            source_host=host,
            source_port=int(port),
            io_running="Connecting" if kind in ("io_lost", "broken") else "Yes",
            sql_running=kind not in ("sql_stopped", "broken"),
            last_sql_errno=1062 if kind in ("sql_stopped", "broken") else 0,
            seconds_behind=None
            if kind in ("io_lost", "broken")
            else (600 if kind == "lagging" else 0),
            gtid_io_pos=pos,
        )
        out[node.name] = Observation(
            node.name,
            at,
            reachable=True,
            read_only=True,
            gtid_executed=pos,
            gtid_binlog=pos,
            replication=rep,
        )
    return out
