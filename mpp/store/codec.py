"""PoolState <-> JSON and Event <-> plain values, shared by every backend so they store the
same documents; enums are stored as their plain words and turned back into members here."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, fields
from typing import Any

from mpp.model import (
    ActionKind,
    AgentReport,
    ChangeKind,
    CheckpointKind,
    CheckpointState,
    Cut,
    Event,
    EventKind,
    NodeSight,
    NodeState,
    PoolState,
    Process,
    Reach,
    ReachReport,
    Request,
    RequestKind,
    SiteView,
    State,
    WriteProbe,
)

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
    doc["fencing"] = tuple(doc.get("fencing", ()))
    doc["rejoin_base"] = tuple((str(n), str(b)) for n, b in doc.get("rejoin_base", ()))
    for name in _REQUESTS:
        if doc.get(name) is not None:
            doc[name] = Request(**{**doc[name], "kind": RequestKind(doc[name]["kind"])})
    return PoolState(nodes=nodes, **doc)


EVENT_FIELDS = ("at", "pool", "node", "kind", "old", "new", "reason", "change", "action")


def event_document(e: Event) -> dict[str, Any]:
    return dict(zip(EVENT_FIELDS, event_values(e), strict=True))


def event_values(e: Event) -> tuple[Any, ...]:
    """An event as plain values, in EVENT_FIELDS order (None where a tag is not set)."""
    return (
        e.at,
        e.pool,
        e.node,
        str(e.kind),  # StrEnum: its word; a plain str from a caller stays itself
        e.old,
        e.new,
        e.reason,
        str(e.change) if e.change else None,
        str(e.action) if e.action else None,
    )


def event_from(values: Any) -> Event:
    """Back from a row or a JSON list/dict; lines written before the tags existed have none."""
    if isinstance(values, dict):
        values = [values.get(name) for name in EVENT_FIELDS]
    at, pool, node, kind, old, new, reason, *tags = values
    change, action = [*tags, None, None][:2]
    return Event(
        at,
        pool,
        node,
        EventKind(kind),
        old,
        new,
        reason,
        ChangeKind(change) if change else None,
        ActionKind(action) if action else None,
    )


_REPORT_FIELDS = {f.name for f in fields(AgentReport)}
# what each stored field must hold (JSON has no float/int split: a whole float comes back int);
# checked on the way in, so a damaged report is the store's named error, not a TypeError in
# the logic's lease arithmetic
_NUMBER = (int, float)
_REPORT_TYPES: dict[str, tuple[type, ...]] = {
    "node": (str,),
    "pool": (str,),
    "seq": (int,),
    "fence_ttl": _NUMBER,
    "process": (str,),
    "pid": (int, type(None)),
    "restarts_used": (int,),
    "retry_limit": (int,),
    "last_exit": (str,),
    "message": (str,),
    "ping_ok": (bool, type(None)),
    "ping_ms": (*_NUMBER, type(None)),
    "write": (str,),
    "write_ms": (*_NUMBER, type(None)),
    "write_error": (str,),
    "stalled_for": (*_NUMBER, type(None)),
    "fenced": (str,),
    "sent_at": _NUMBER,
    "agent_pid": (int,),
}
_FLOATS = ("fence_ttl", "ping_ms", "write_ms", "stalled_for", "sent_at")
_REQUIRED = ("node", "pool", "seq", "fence_ttl", "process")


def report_dumps(report: AgentReport) -> str:
    return json.dumps(asdict(report), separators=(",", ":"), sort_keys=True)


def report_loads(text: str) -> AgentReport:
    """A stored report; fields a newer agent added are ignored, so mixed versions read.
    Raises ValueError (or KeyError/TypeError) naming what is wrong with it."""
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError(f"an agent report is a JSON object, not {type(raw).__name__}")
    doc = {k: v for k, v in raw.items() if k in _REPORT_FIELDS}
    missing = [name for name in _REQUIRED if name not in doc]
    if missing:
        raise ValueError(f"an agent report lacks {', '.join(missing)}")
    for name, value in doc.items():
        kinds = _REPORT_TYPES[name]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ValueError(f"field {name!r} holds {value!r}")
    for name in _FLOATS:
        if isinstance(doc.get(name), int | float):
            doc[name] = float(doc[name])
            if not math.isfinite(doc[name]):
                raise ValueError(f"field {name!r} holds {doc[name]!r}")
    doc["process"] = Process(doc["process"])
    doc["write"] = WriteProbe(doc.get("write", WriteProbe.UNKNOWN))
    return AgentReport(**doc)


def reach_dumps(report: ReachReport) -> str:
    return json.dumps(asdict(report), separators=(",", ":"), sort_keys=True)


def reach_loads(text: str) -> ReachReport:
    """An instance's stored checkpoint report (shown, never decided on: a damaged one is
    a ValueError/KeyError/TypeError the store names)."""
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError(f"a checkpoint report is a JSON object, not {type(raw).__name__}")
    verdict = raw["reach"]
    reach = Reach(
        Cut(verdict["cut"]),
        bool(verdict["cut_off"]),
        str(verdict["reason"]),
        str(verdict["warning"]),
    )
    points = tuple(
        CheckpointState(
            str(c["name"]),
            CheckpointKind(c["kind"]),
            str(c["target"]),
            int(c["fail_after"]),
            None if c["ok"] is None else bool(c["ok"]),
            int(c["failures"]),
            str(c["error"]),
            None if c["checked_at"] is None else float(c["checked_at"]),
            None if c["ms"] is None else float(c["ms"]),
        )
        for c in raw["checkpoints"]
    )
    return ReachReport(str(raw["instance"]), float(raw["at"]), reach, points)


def view_dumps(view: SiteView) -> str:
    return json.dumps(asdict(view), separators=(",", ":"), sort_keys=True)


def view_loads(text: str) -> SiteView:
    """A stored SiteView; raises ValueError (or KeyError/TypeError) naming what is wrong.
    Checked field by field: a damaged view must be the store's named error, never a wrong
    vote in the quorum."""
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError(f"a view is a JSON object, not {type(raw).__name__}")
    texts = {k: raw[k] for k in ("pool", "owner", "site")}
    for name, value in texts.items():
        if not isinstance(value, str):
            raise ValueError(f"field {name!r} holds {value!r}")
    seq, interval, sent_at = raw["seq"], raw["interval"], raw.get("sent_at", 0.0)
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise ValueError(f"field 'seq' holds {seq!r}")
    for name, value in (("interval", interval), ("sent_at", sent_at)):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"field {name!r} holds {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"field {name!r} holds {value!r}")
    if interval <= 0:
        raise ValueError(f"field 'interval' holds {interval!r}")
    nodes = raw["nodes"]
    if not isinstance(nodes, list):
        raise ValueError(f"field 'nodes' holds {nodes!r}")
    sights = []
    for item in nodes:
        if not isinstance(item, dict):
            raise ValueError(f"a node sight is a JSON object, not {type(item).__name__}")
        node, reachable, answered = item["node"], item["reachable"], item["answered"]
        error = item.get("error", "")
        if not isinstance(node, str) or not isinstance(error, str):
            raise ValueError(f"a node sight holds {item!r}")
        if not isinstance(reachable, bool) or not isinstance(answered, bool):
            raise ValueError(f"a node sight holds {item!r}")
        sights.append(NodeSight(node, reachable, answered, error))
    return SiteView(
        texts["pool"],
        texts["owner"],
        texts["site"],
        seq,
        float(interval),
        tuple(sights),
        float(sent_at),
    )
