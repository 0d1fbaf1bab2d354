"""PoolState <-> JSON, shared by every backend so they store the same document."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from mpp.model import NodeState, PoolState, State

FORMAT = 1


_NODE_FIELDS = tuple(f.name for f in fields(NodeState))
_POOL_FIELDS = tuple(f.name for f in fields(PoolState) if f.name != "nodes")


def dumps(state: PoolState) -> str:
    # dataclasses.asdict deep-copies recursively and dominated the cycle's CPU in bench/poll.py
    doc: dict[str, Any] = {name: getattr(state, name) for name in _POOL_FIELDS}
    doc["nodes"] = [{name: getattr(n, name) for name in _NODE_FIELDS} for n in state.nodes]
    doc["format"] = FORMAT
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def loads(text: str) -> PoolState:
    doc = json.loads(text)
    if doc.pop("format", None) != FORMAT:
        raise ValueError("stored pool state has an unknown format")
    nodes = tuple(NodeState(**{**n, "state": State(n["state"])}) for n in doc.pop("nodes"))
    doc["draining"] = tuple(doc.get("draining", ()))
    return PoolState(nodes=nodes, **doc)
