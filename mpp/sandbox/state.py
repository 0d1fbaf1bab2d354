"""sandbox.json: what the sandbox started, so that ``up`` can resume it, ``down`` can stop
exactly those processes and two callers never work on the same directory at once."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from mpp.sandbox.errors import SandboxError
from mpp.sandbox.layout import LOCK_FILE, STATE_FILE

Topology = Literal["master-master", "primary-replica"]

_STATE_FORMAT = 1


@dataclass
class NodeRecord:
    """One node as recorded: its fixed identity (name, port, server_id) and last PID."""

    name: str
    port: int
    server_id: int
    pid: int | None
    # Whether the root password is set yet; only decides which password to try first,
    # so a fresh node's error log is not cluttered with "Access denied" warnings.
    provisioned: bool = False


@dataclass
class State:
    """The whole sandbox as recorded, including which one-time setup steps are done."""

    topology: Topology
    base_port: int
    nodes: list[NodeRecord]
    replication_configured: bool = False
    app_database_created: bool = False
    # primary-replica: every node starts read-only, the primary too (see server.py)
    read_only_start: bool = False
    tls: bool = False  # the servers serve TLS with the sandbox's certificates (tls.py)


def new_state(count: int, base_port: int, topology: Topology) -> State:
    """The plan for a new sandbox: dbN on base_port + N - 1 with server_id N."""
    records = [
        NodeRecord(name=f"db{i + 1}", port=base_port + i, server_id=i + 1, pid=None)
        for i in range(count)
    ]
    return State(topology=topology, base_port=base_port, nodes=records)


def same_layout(state: State, count: int, base_port: int, topology: Topology) -> bool:
    """Whether ``up``'s options describe the sandbox already recorded."""
    return (len(state.nodes), state.base_port, state.topology) == (count, base_port, topology)


def load_state(d: Path) -> State | None:
    """The recorded state, None if there is none; a damaged file is a SandboxError."""
    path = d / STATE_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SandboxError(f"cannot read {path}: {exc}") from exc
    try:
        if raw["format"] != _STATE_FORMAT:
            raise SandboxError(f"{path} has format {raw['format']}, expected {_STATE_FORMAT}")
        topology = raw["topology"]
        if topology not in get_args(Topology):
            raise ValueError(f"unknown topology {topology!r}")
        records = [
            NodeRecord(
                name=str(n["name"]),
                port=int(n["port"]),
                server_id=int(n["server_id"]),
                pid=None if n.get("pid") is None else int(n["pid"]),
                provisioned=bool(n.get("provisioned", False)),
            )
            for n in raw["nodes"]
        ]
        return State(
            topology=topology,
            base_port=int(raw["base_port"]),
            nodes=records,
            replication_configured=bool(raw.get("replication_configured", False)),
            app_database_created=bool(raw.get("app_database_created", False)),
            read_only_start=bool(raw.get("read_only_start", False)),
            tls=bool(raw.get("tls", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SandboxError(f"{path} is damaged ({exc}); run `mpp sandbox destroy`") from exc


def save_state(d: Path, state: State) -> None:
    """Record the state after every step, so an interrupted ``up`` orphans no process."""
    # Written atomically: `down` must be able to trust it even if `up` died mid-write.
    payload = {
        "format": _STATE_FORMAT,
        "topology": state.topology,
        "base_port": state.base_port,
        "replication_configured": state.replication_configured,
        "app_database_created": state.app_database_created,
        "read_only_start": state.read_only_start,
        "tls": state.tls,
        "nodes": [
            {
                "name": r.name,
                "port": r.port,
                "server_id": r.server_id,
                "pid": r.pid,
                "provisioned": r.provisioned,
            }
            for r in state.nodes
        ],
    }
    tmp = d / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, d / STATE_FILE)


def require_state(d: Path) -> State:
    """The recorded state, for calls that make no sense before ``up``."""
    state = load_state(d)
    if state is None:
        raise SandboxError(f"no sandbox in {d}; run `mpp sandbox up` first")
    return state


def find_node(state: State, name: str) -> NodeRecord:
    """The node called ``name``; an unknown name lists the known ones."""
    for rec in state.nodes:
        if rec.name == name:
            return rec
    known = ", ".join(r.name for r in state.nodes)
    raise SandboxError(f"no node named {name!r} in the sandbox (nodes: {known})")


@contextlib.contextmanager
def locked(d: Path) -> Iterator[None]:
    """Serialise mutating calls so two `up`s never start the same datadir twice."""
    fd = os.open(d / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
