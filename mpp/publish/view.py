"""The status document every publisher shares (CLI table, --json, later the API).

Built from configuration plus stored state only, never from a live server, so every
surface tells the same truth as the status table and answers without a MySQL round-trip.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

from rich.table import Table
from rich.text import Text

from mpp.config import Config, PoolConfig
from mpp.logic.ladder import status_of
from mpp.logic.schedule import next_run
from mpp.model import (
    AgentReport,
    CheckpointState,
    NodeState,
    PoolState,
    ReachReport,
    Schedule,
    State,
    Status,
)

# An agent's reports by node, as `Store.reports(pool)` returns them; by pool for a document.
Reports = Mapping[str, AgentReport]


def pool_status(state: PoolState | None, cut_off: bool = False) -> str:
    """MPP's pool line: UNKNOWN before the first poll, FAIL without an ACTIVE node, and
    FAIL when this instance's checkpoints say it is cut off (it sends no writes)."""
    if cut_off:
        return "FAIL"
    if state is None or (state.cycle == 0 and not state.active):
        return "UNKNOWN"
    return "OK" if state.active else "FAIL"


def document(
    config: Config,
    states: Mapping[str, PoolState | None],
    leader: str | None = None,
    reports: Mapping[str, Reports] | None = None,
    now: float | None = None,
    leaders: Mapping[str, str | None] | None = None,
    reach: Mapping[str, ReachReport] | None = None,
) -> dict[str, Any]:
    """`reach`: the instances' checkpoint reports by instance name (mpp.run.reach); the
    one of this config's `[mpp] name` makes every pool FAIL while it is cut off.
    `leaders`: pools shared among instances, who leads each (a pool's `leader`).
    `leader`: the owner id of the `mpp run` that decides and acts (None: nobody now).
    `reports`: the agents' latest reports by pool, where the caller could read them (the
    CLI reads the store; the API what the daemon last read): without them a node's
    `agent_report` is null, its `agent` summary (kept in the state) still shown."""
    now = time.time() if now is None else now
    pools = [
        pool_document(p, states.get(p.name), (reports or {}).get(p.name), now) for p in config.pool
    ]
    if leaders is not None:
        for pool in pools:
            pool["leader"] = leaders.get(pool["name"])
    doc = {"leader": leader, "sharded": leaders is not None, "pools": pools}
    if reach or config.checkpoint:
        mine = (reach or {}).get(config.mpp.name)
        if mine is not None and mine.reach.cut_off:
            for pool in pools:
                pool["status"] = pool_status(None, cut_off=True)
                pool["cut"] = mine.reach.cut.value
        doc["checkpoints"] = [reach_document(r, now) for _, r in sorted((reach or {}).items())]
    return doc


def checkpoint_status(c: CheckpointState) -> str:
    """MPP's ladder, for a checkpoint: OK, OK WARN while it fails without counting yet,
    FAIL once it counts as failed, UNKNOWN before its first probe."""
    if c.ok is None:
        return "UNKNOWN"
    if c.failed:
        return "FAIL"
    return "OK" if c.ok else "OK WARN"


def reach_document(report: ReachReport, now: float) -> dict[str, Any]:
    """One instance's checkpoints and their verdict (`mpp status`'s C rows, the API)."""
    verdict = report.reach
    return {
        "instance": report.instance,
        "at": _iso(report.at),
        "age": round(max(0.0, now - report.at), 3),
        "cut": verdict.cut.value,
        "cut_off": verdict.cut_off,
        "reason": verdict.reason,
        "warning": verdict.warning,
        "checkpoints": [
            {
                "name": c.name,
                "kind": c.kind.value,
                "target": c.target,
                "status": checkpoint_status(c),
                "failures": c.failures,
                "fail_after": c.fail_after,
                "error": c.error,
                "checked_at": _iso(c.checked_at),
                "ms": c.ms,
            }
            for c in report.checkpoints
        ],
    }


def pool_document(
    pool: PoolConfig,
    state: PoolState | None,
    reports: Reports | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    now = time.time() if now is None else now
    nodes = []
    for n in pool.node:
        ns = state.node(n.name) if state is not None and state.has(n.name) else NodeState(n.name)
        status = status_of(ns.req, pool.fail_point, ns.notice)
        nodes.append(
            {
                "name": n.name,
                "address": n.address,
                "type": n.type,
                "site": n.site,  # docs/sites.md; None: not said
                "promotion": n.promotion,
                "state": ns.state.value,
                "status": status.label,
                "level": int(status),
                "requests": ns.req,
                "last_request": _iso(ns.last_request),
                "message": ns.message,
                "reachable": ns.reachable,
                "lag": ns.lag,
                "gtid": ns.gtid,
                "maintenance": _maintenance(ns, now),
                "agent": ns.agent,
                "agent_report": report_document((reports or {}).get(n.name), now),
                "views": ns.views,  # how the other mpp instances see it (quorum of views)
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
        "schedule": [
            {
                "cron": e.cron,
                "timezone": e.timezone,
                "switchover_to": e.switchover_to,
                "next": _iso(next_run(Schedule(e.cron, e.switchover_to, 0.0, e.timezone), now)),
            }
            for e in pool.schedule
        ],
        "nodes": nodes,
    }


def _maintenance(ns: NodeState, now: float) -> dict[str, str | None] | None:
    """Only while it holds: an expired window is over even before the logic's next cycle
    records its end."""
    if not ns.in_maintenance(now):
        return None
    return {"since": _iso(ns.maintenance_since), "until": _iso(ns.maintenance_until)}


def report_document(report: AgentReport | None, now: float) -> dict[str, Any] | None:
    """The agent's own words. Its age is the agent host's clock against ours: for people
    to read, never for deciding (the logic dates reports by when mpp first saw them)."""
    if report is None:
        return None
    return {
        "seq": report.seq,
        "summary": report.summary,
        "process": report.process.value,
        "pid": report.pid,
        "restarts_used": report.restarts_used,
        "retry_limit": report.retry_limit,
        "last_exit": report.last_exit,
        "message": report.message,
        "ping_ok": report.ping_ok,
        "write": report.write.value,
        "write_ms": report.write_ms,
        "write_error": report.write_error,
        "stalled_for": report.stalled_for,
        "fenced": report.fenced,
        "fence_ttl": report.fence_ttl,
        "sent_at": _iso(report.sent_at) if report.sent_at else None,
        "age_by_agent_clock": round(max(0.0, now - report.sent_at), 3) if report.sent_at else None,
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
        caption="leaders: per pool (pools shared among instances)"
        if doc.get("sharded")
        else f"leader: {readable_owner(leader)}"
        if leader
        else "leader: none (no mpp run is acting)",
        caption_justify="left",
    )
    for col in ("T", "Server", "req", "Time of Last Request", "Status", "State"):
        t.add_column(col, no_wrap=True)
    agents = any(n.get("agent") or n.get("agent_report") for p in doc["pools"] for n in p["nodes"])
    if agents:  # a pool without agents keeps the table it always had
        t.add_column("Agent", overflow="fold", max_width=AGENT_WIDTH)
    seen = any(n.get("views") for p in doc["pools"] for n in p["nodes"])
    if seen:  # quorum = "majority": how each other instance (by site) sees the node
        t.add_column("Seen by others", overflow="fold", max_width=AGENT_WIDTH)
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
        for entry in pool.get("schedule", []):
            extra += f"  next-switchover={entry['next']}->{entry['switchover_to'] or 'best'}"
        if doc.get("sharded"):
            who = pool.get("leader")
            extra += f"  leader={readable_owner(who) if who else 'none'}"
        if pool.get("cut"):  # this instance's checkpoints (the C rows say which)
            extra += f"  cut-off={pool['cut']} (no writes from this site)"
        if pool.get("alert"):
            extra += f"  ALERT: {pool['alert']}"
        t.add_row(
            "*",
            Text.assemble(f"[ {pool['name']} ] status=", (status, style), extra),
            "",
            "",
            "",
            *([""] if agents else []),
            *([""] if seen else []),
            f"{pool['logic']} / {pool['topology']}"
            + ("  (no TLS to the servers)" if pool.get("tls") == "off" else f"  TLS {pool['tls']}"),
        )
        for n in pool["nodes"]:
            level = Status(n["level"])
            last = n["last_request"] or "-"
            t.add_row(
                n["type"][0].upper(),
                f"{n['name']} ({n['address']})" + (f" @{n['site']}" if n.get("site") else ""),
                str(n["requests"]),
                last.replace("T", " ")[:19],
                Text(level.label, _STATUS_STYLE[level]),
                Text.assemble(
                    (n["state"], _STATE_STYLE[State(n["state"])]),
                    (f" {maint}" if (maint := maintenance_text(n)) else "", "bold magenta"),
                ),
                *([agent_text(n)] if agents else []),
                *([n.get("views") or "-"] if seen else []),
                n["message"],
            )
    for instance in doc.get("checkpoints", []):
        _checkpoint_rows(t, instance, agents)
    return t


_CUT_STYLE = {"none": "green", "GLOBAL": "yellow"}


def _checkpoint_rows(t: Table, instance: dict[str, Any], agents: bool) -> None:
    """MPP's C rows: the instance's verdict, then one row per checkpoint (kind, target,
    state, last error)."""
    cut = instance["cut"]
    verdict = f"cut off ({cut})" if instance["cut_off"] else "reachable" if cut == "none" else cut
    t.add_row(
        "C",
        Text.assemble(
            f"[ checkpoints of {instance['instance']} ] ",
            (verdict, _CUT_STYLE.get(cut, "bold red")),
        ),
        "",
        (instance["at"] or "-").replace("T", " ")[:19],
        "",
        "",
        *([""] if agents else []),
        instance["reason"] or instance["warning"],
    )
    for c in instance["checkpoints"]:
        status = c["status"]
        style = {"OK": "green", "FAIL": "bold red", "OK WARN": "yellow"}.get(status, "yellow")
        t.add_row(
            "C",
            f"{c['name']} ({c['target']})",
            str(c["failures"]),
            (c["checked_at"] or "-").replace("T", " ")[:19],
            Text(status, style),
            c["kind"],
            *([""] if agents else []),
            c["error"] or (f"{c['ms']:g} ms" if c["ms"] is not None else ""),
        )


AGENT_WIDTH = 64  # the Agent column folds past this: a row stays within about 200 columns


def maintenance_text(node: dict[str, Any], today: dt.date | None = None) -> str:
    """'maint until 14:00' (a date too when not today), 'maint (until off)', or ''."""
    window = node.get("maintenance")
    if not window:
        return ""
    until = window.get("until")
    if until is None:
        return "maint (until off)"
    when = dt.datetime.fromisoformat(until).astimezone()
    today = today or dt.datetime.now().astimezone().date()
    shown = when.strftime("%H:%M") if when.date() == today else when.strftime("%m-%d %H:%M")
    return f"maint until {shown}"


def agent_text(node: dict[str, Any]) -> str:
    """'mysqld killed by signal 9, restart 1/2 · report 0.4 s ago'; '' without an agent.
    The report's own summary is fresher than the one the state kept, when there is one."""
    report = node.get("agent_report")
    if report is None:
        return str(node.get("agent") or "")
    summary = report["summary"] or (
        f"mysqld {report['process']}" + (f" (pid {report['pid']})" if report["pid"] else "")
    )
    age = report.get("age_by_agent_clock")
    return summary if age is None else f"{summary} · report {_ago(age)} ago"


def _ago(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"
