"""Plain-value builders for tests: specs, observations and pool states without any server,
and the configs tests give mpp (as a document, parsed, or written as a TOML file)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from mpp.config import Config, parse
from mpp.model import (
    FailoverPolicy,
    NodeSpec,
    NodeState,
    NodeType,
    Observation,
    PoolSpec,
    PoolState,
    Replication,
    ReplicationPolicy,
    State,
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


def pool_state(
    *nodes: tuple[str, State, int | None], name: str = "main", cycle: int = 6, **pool: Any
) -> PoolState:
    """A pool's state from (node, state, lag) triples."""
    return PoolState(name, tuple(NodeState(n, s, lag=lag) for n, s, lag in nodes), cycle, **pool)


# -- configs ----------------------------------------------------------------------------------

Doc = dict[str, Any]


def nodes(count: int = 3, ports: Sequence[int] | None = None) -> list[Doc]:
    """[[pool.node]] entries db1..dbN on 127.0.0.1, db1 the primary; ports default to 1..N
    (nothing listens there: for configs that are only parsed)."""
    ports = list(ports) if ports is not None else list(range(1, count + 1))
    return [
        {"name": f"db{i + 1}", "address": f"127.0.0.1:{p}", "type": "secondary" if i else "primary"}
        for i, p in enumerate(ports)
    ]


def pool(
    name: str = "main", count: int = 3, *, ports: Sequence[int] | None = None, **keys: Any
) -> Doc:
    """A [[pool]] of `count` nodes (see `nodes`) whose password nobody needs; `keys` are
    the pool's other keys (or `node=[...]`, its own nodes)."""
    return {"name": name, "password_env": "UNUSED", "node": nodes(count, ports), **keys}


def config_doc(*pools: Doc, **sections: Any) -> Doc:
    """A whole config: the sections given ([mpp], [api], [router], ...) and the pools (one
    3-node pool "main" when none is given)."""
    return {**sections, "pool": list(pools) or [pool()]}


def config(doc: Doc, path: Path = Path("/tmp/mpp-test.toml")) -> Config:
    """The doc parsed as mpp parses a file; `path` is only what messages name."""
    return parse(doc, path)


def merged(doc: Mapping[str, Any], changes: Mapping[str, Any]) -> Doc:
    """doc with changes laid over it: tables merge key by key, anything else is replaced."""
    out = dict(doc)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are all valid in a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def _is_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _table(doc: Mapping[str, Any], prefix: str) -> list[str]:
    lines = [f"{k} = {_value(v)}" for k, v in doc.items() if not _is_table(v)]
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            lines += ["", f"[{name}]", *_table(value, name + ".")]
        elif _is_tables(value):
            for item in value:
                lines += ["", f"[[{name}]]", *_table(item, name + ".")]
    return lines


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping) or _is_tables(value)


def config_text(doc: Mapping[str, Any]) -> str:
    """The doc as a TOML file: `key = value` lines, then its tables and arrays of tables."""
    return "\n".join(_table(doc, "")).lstrip("\n") + "\n"


def write_config(path: Path, doc: Mapping[str, Any]) -> Path:
    path.write_text(config_text(doc))
    return path
