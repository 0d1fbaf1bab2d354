"""The status document every publisher shares (CLI table, --json, later the API).

Built from configuration plus stored state only, never from a live server, so every
surface tells the same truth as the status table and answers without a MySQL round-trip.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from rich.table import Table
from rich.text import Text

from mpp.config import Config, PoolConfig
from mpp.logic.ladder import status_of
from mpp.model import NodeState, PoolState, State, Status


def pool_status(state: PoolState | None) -> str:
    """MPP's pool line: UNKNOWN before the first poll, FAIL without an ACTIVE node."""
    if state is None or (state.cycle == 0 and not state.active):
        return "UNKNOWN"
    return "OK" if state.active else "FAIL"


def document(
    config: Config, states: dict[str, PoolState | None], leader: str | None = None
) -> dict[str, Any]:
    """`leader`: the owner id of the `mpp run` that decides and acts (None: nobody now)."""
    return {
        "leader": leader,
        "pools": [pool_document(p, states.get(p.name)) for p in config.pool],
    }


def pool_document(pool: PoolConfig, state: PoolState | None) -> dict[str, Any]:
    nodes = []
    for n in pool.node:
        ns = state.node(n.name) if state is not None and state.has(n.name) else NodeState(n.name)
        status = status_of(ns.req, pool.fail_point, ns.notice)
        nodes.append(
            {
                "name": n.name,
                "address": n.address,
                "type": n.type,
                "state": ns.state.value,
                "status": status.label,
                "level": int(status),
                "requests": ns.req,
                "last_request": _iso(ns.last_request),
                "message": ns.message,
                "reachable": ns.reachable,
                "lag": ns.lag,
                "gtid": ns.gtid,
            }
        )
    return {
        "name": pool.name,
        "status": pool_status(state),
        "logic": pool.logic,
        "topology": pool.topology,
        "tls": pool.tls,  # mpp's sessions to the servers and the replication it sets up
        "cycle": state.cycle if state else 0,
        "updated_at": _iso(state.updated_at if state else None),
        "pinned": state.pinned if state else None,
        "alert": state.alert if state else "",
        "failover_blocked_until": _iso(_blocked_until(pool, state)),
        "switching": (state.switching.to if state and state.switching else None),
        "draining": list(state.draining) if state else [],
        "nodes": nodes,
    }


def _blocked_until(pool: PoolConfig, state: PoolState | None) -> float | None:
    """Anti-flapping: when automatic failover is allowed again (None: it is now)."""
    if state is None or state.last_failover_at is None or state.failover_acknowledged:
        return None
    until = state.last_failover_at + pool.failover_block
    return until if pool.topology == "primary-replica" and until > time.time() else None


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


_STATE_STYLE = {
    State.ACTIVE: "bold green",
    State.STANDBY: "cyan",
    State.UNKNOWN: "yellow",
    State.FAILED_ONLINE: "bold red",
    State.FAILED_OFFLINE: "bold red",
}
_STATUS_STYLE = {
    Status.OK: "green",
    Status.OK_INFO: "blue",
    Status.OK_WARN: "yellow",
    Status.OK_CRIT: "bold yellow",
    Status.FAIL: "bold red",
}


def readable_owner(owner: str) -> str:
    """'site-a@db-host:4711:1f2e3d4c:scope' -> 'site-a on db-host (pid 4711)'; the JSON and
    the API keep the whole id."""
    name, _, where = owner.rpartition("@")
    parts = where.split(":")
    if not name or len(parts) < 2:
        return owner
    return f"{name} on {parts[0]} (pid {parts[1]})"


def table(doc: dict[str, Any]) -> Table:
    """MPP's list: T, Server, req, Time of Last Request, Status, State, Last Status Message."""
    leader = doc.get("leader")
    t = Table(
        box=None,
        header_style="bold",
        pad_edge=False,
        expand=False,
        caption=f"leader: {readable_owner(leader)}"
        if leader
        else "leader: none (no mpp run is acting)",
        caption_justify="left",
    )
    for col in ("T", "Server", "req", "Time of Last Request", "Status", "State"):
        t.add_column(col, no_wrap=True)
    t.add_column("Last Status Message", overflow="fold")
    for pool in doc["pools"]:
        status = pool["status"]
        style = {"OK": "green", "FAIL": "bold red"}.get(status, "yellow")
        extra = "".join(
            f"  {label}={pool[key]}"
            for key, label in (
                ("pinned", "pinned"),
                ("switching", "switching-to"),
                ("failover_blocked_until", "failover-blocked-until"),
            )
            if pool.get(key)
        )
        if pool.get("alert"):
            extra += f"  ALERT: {pool['alert']}"
        t.add_row(
            "*",
            Text.assemble(f"[ {pool['name']} ] status=", (status, style), extra),
            "",
            "",
            "",
            "",
            f"{pool['logic']} / {pool['topology']}"
            + ("  (no TLS to the servers)" if pool.get("tls") == "off" else f"  TLS {pool['tls']}"),
        )
        for n in pool["nodes"]:
            level = Status(n["level"])
            last = n["last_request"] or "-"
            t.add_row(
                n["type"][0].upper(),
                f"{n['name']} ({n['address']})",
                str(n["requests"]),
                last.replace("T", " ")[:19],
                Text(level.label, _STATUS_STYLE[level]),
                Text(n["state"], _STATE_STYLE[State(n["state"])]),
                n["message"],
            )
    return t
