"""PoolState <-> JSON, shared by every backend so they store the same document."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from mpp.model import NodeState, PoolState, State

FORMAT = 1


def dumps(state: PoolState) -> str:
    doc: dict[str, Any] = asdict(state)
    doc["format"] = FORMAT
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def loads(text: str) -> PoolState:
    doc = json.loads(text)
    if doc.pop("format", None) != FORMAT:
        raise ValueError("stored pool state has an unknown format")
    nodes = tuple(NodeState(**{**n, "state": State(n["state"])}) for n in doc.pop("nodes"))
    return PoolState(nodes=nodes, **doc)
