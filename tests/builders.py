"""Plain-value builders for logic tests: specs and observations without any server."""

from __future__ import annotations

from mpp.model import NodeSpec, NodeType, Observation, PoolSpec, Replication


def ring_spec(n: int = 3, *, fail_point: int = 4, hostile: bool = False) -> PoolSpec:
    return PoolSpec(
        name="main",
        nodes=tuple(
            NodeSpec(
                f"db{i + 1}",
                NodeType.PRIMARY if i == 0 else NodeType.SECONDARY,
                f"127.0.0.1:{3306 + i}",
            )
            for i in range(n)
        ),
        fail_point=fail_point,
        hostile_takeover=hostile,
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
