"""PoolState <-> JSON, shared by every backend so they store the same document."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from mpp.model import NodeState, PoolState, Request, State

FORMAT = 1
_NODE_FIELDS = tuple(f.name for f in fields(NodeState))
_POOL_FIELDS = tuple(f.name for f in fields(PoolState) if f.name != "nodes")
_REQUESTS = ("request", "switching")


def dumps(state: PoolState) -> str:
    # dataclasses.asdict deep-copies recursively and dominated the cycle's CPU in bench/poll.py
    doc: dict[str, Any] = {name: getattr(state, name) for name in _POOL_FIELDS}
    for name in _REQUESTS:
        if doc[name] is not None:
            doc[name] = asdict(doc[name])
    doc["nodes"] = [{name: getattr(n, name) for name in _NODE_FIELDS} for n in state.nodes]
    doc["format"] = FORMAT
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def loads(text: str) -> PoolState:
    doc = json.loads(text)
    if doc.pop("format", None) != FORMAT:
        raise ValueError("stored pool state has an unknown format")
    nodes = tuple(NodeState(**{**n, "state": State(n["state"])}) for n in doc.pop("nodes"))
    doc["draining"] = tuple(doc.get("draining", ()))
    for name in _REQUESTS:
        if doc.get(name) is not None:
            doc[name] = Request(**doc[name])
    return PoolState(nodes=nodes, **doc)
