"""mpp under test, driven the way an operator drives it: its config written beside the
sandbox, `mpp run` as a process of its own, its view read through `mpp status --json`.

Nothing here imports mpp's stages (the harness must judge mpp from outside, and the
import rules forbid it): the daemon is `python -m mpp` in a subprocess, its answers are
the CLI's JSON and its log lines.
"""

from __future__ import annotations

import datetime
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors

from mpp import sandbox

from ._sql import root_sql


def write_config(
    d: Path,
    interval: str = "1s",
    connect_timeout: str = "1s",
    pool: dict[str, str | int | bool] | None = None,
    name: str = "bench.toml",
    mpp: dict[str, str | int | bool] | None = None,
    sections: str = "",
) -> Path:
    """The sandbox's own mpp.toml with the profile's timings, semi-sync on, and `pool` keys
    (TOML values as Python values) set on its pool: what mpp runs with in a scenario.
    `sections`: TOML text appended (the [api], [agent], [router] a scenario watches)."""
    text = (d / "mpp.toml").read_text()
    text = text.replace('interval = "1s"', f'interval = "{interval}"')
    text = text.replace('connect_timeout = "1s"', f'connect_timeout = "{connect_timeout}"')
    keys = {"semi_sync": True, **(pool or {})}
    for key, value in keys.items():
        line = f"{key} = {_toml(value)}"
        if re.search(rf"^{re.escape(key)} = ", text, re.M):  # the sandbox's own pool key
            text = re.sub(rf"^{re.escape(key)} = .*$", line, text, count=1, flags=re.M)
        else:  # a new pool key goes before the first [[pool.node]] table
            text = text.replace("\n[[pool.node]]", f"\n{line}\n\n[[pool.node]]", 1)
    for key, value in (mpp or {}).items():  # [mpp] keys go right after its header
        text = text.replace("[mpp]\n", f"[mpp]\n{key} = {_toml(value)}\n", 1)
    path = d / name
    path.write_text(text + sections)
    return path


def _toml(value: str | int | bool) -> str:
    """A scalar as TOML writes it (the harness sets only a few plain pool keys)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mpp_cli(config: Path, *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mpp", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Daemon:
    """`mpp run --no-live` as a subprocess, its log in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self._out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mpp", "--config", str(config), "run", "--no-live"],
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._out.close()
        return self.proc.returncode

    def problems(self, limit: int = 20) -> list[str]:
        """Log lines that look like trouble (tracebacks, errors, failed actions): the first
        of each kind with its time and how often that kind occurred."""
        seen: dict[str, list[Any]] = {}
        for ln in self.log.read_text(errors="replace").splitlines():
            if not (
                "Traceback" in ln
                or " ERROR " in ln
                or " CRITICAL " in ln
                or ("mpp.executor" in ln and ": FAILED" in ln)
                or ("background " in ln and " False " in ln)
            ):
                continue
            key = re.sub(r"\(\d+ ms\)", "", ln[24:])
            if key in seen:
                seen[key][1] += 1
            else:
                seen[key] = [ln, 1]
        return [f"{first} [x{n}]" for first, n in list(seen.values())[:limit]]


def log_time(line: str) -> float | None:
    """The time of an mpp log line ("2026-11-22 01:35:55,974 INFO ..."; local time)."""
    try:
        stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    except ValueError:
        return None
    return stamp.timestamp()


def status_doc(config: Path) -> dict[str, Any]:
    result = mpp_cli(config, "status", "--json", timeout=20)
    if result.returncode != 0:
        raise RuntimeError(f"mpp status failed: {result.stderr.strip()[-300:]}")
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def node_states(config: Path) -> dict[str, dict[str, Any]]:
    pool = status_doc(config)["pools"][0]
    return {n["name"]: n for n in pool["nodes"]}


def semi_sync_primary(d: Path, node: str) -> tuple[int, int, str]:
    """(@@rpl_semi_sync_master_enabled, semi-sync clients, Rpl_semi_sync_master_status)."""
    enabled = int(root_sql(d, node, "SELECT @@global.rpl_semi_sync_master_enabled")[0][0])
    rows = dict(
        root_sql(
            d,
            node,
            "SHOW GLOBAL STATUS WHERE Variable_name IN "
            "('Rpl_semi_sync_master_clients', 'Rpl_semi_sync_master_status')",
        )
    )
    return (
        enabled,
        int(rows.get("Rpl_semi_sync_master_clients", 0)),
        str(rows.get("Rpl_semi_sync_master_status", "?")),
    )


def wait_settled(
    d: Path, config: Path, daemon: Daemon, primary: str, timeout: float = 30.0
) -> dict[str, Any]:
    """Until mpp shows PRIMARY ACTIVE, the others STANDBY replicating from it, and semi-sync
    is on at the primary with every replica connected as a semi-sync client."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if not daemon.alive():
            raise RuntimeError(f"mpp exited early (rc {daemon.proc.returncode}); see {daemon.log}")
        try:
            states = node_states(config)
            others = [n for n in states if n != primary]
            ok_states = states[primary]["state"] == "ACTIVE" and all(
                states[n]["state"] == "STANDBY"
                and states[n]["requests"] == 0
                and f"replicating from {primary}" in states[n]["message"]
                for n in others
            )
            enabled, clients, status = semi_sync_primary(d, primary)
            last = {
                "states": {n: (s["state"], s["message"]) for n, s in states.items()},
                "semi_sync_enabled": enabled,
                "semi_sync_clients": clients,
                "semi_sync_status": status,
            }
            if ok_states and enabled == 1 and clients == len(others) and status == "ON":
                return last
        except (RuntimeError, pymysql.MySQLError, subprocess.TimeoutExpired, KeyError) as err:
            last = {"error": str(err)}
        time.sleep(0.25)
    raise RuntimeError(f"pool not settled within {timeout:.0f}s: {last}")


def conditions(d: Path, primary: str = "db1", replica: str = "db2") -> dict[str, Any]:
    """The server settings that decide a failover's figures, as the servers report them:
    detection of a hang waits for the replicas (slave_net_timeout), reconnection for the
    retry, acknowledged writes for semi-sync. A figure is only quoted with these."""
    net = root_sql(d, replica, "SELECT @@global.slave_net_timeout")[0][0]
    conn = sandbox.admin_connect(d, replica)
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SHOW SLAVE STATUS")
            rep = cur.fetchone() or {}
    finally:
        conn.close()
    semi = root_sql(
        d,
        primary,
        "SELECT @@global.rpl_semi_sync_master_enabled, @@global.rpl_semi_sync_master_timeout, "
        "@@global.rpl_semi_sync_master_wait_point",
    )[0]
    return {
        "slave_net_timeout_s": int(net),
        "master_connect_retry_s": int(rep.get("Connect_Retry", 0) or 0),
        "semi_sync": bool(int(semi[0])),
        "semi_sync_timeout_ms": int(semi[1]),
        "semi_sync_wait_point": str(semi[2]),
    }


def describe(c: dict[str, Any]) -> str:
    """The conditions in the words a figure is quoted with."""
    semi = (
        f"semi-sync {c['semi_sync_wait_point']} (timeout {c['semi_sync_timeout_ms'] / 1000:g} s)"
        if c["semi_sync"]
        else "semi-sync off"
    )
    return (
        f"slave_net_timeout {c['slave_net_timeout_s']} s, MASTER_CONNECT_RETRY "
        f"{c['master_connect_retry_s']} s, {semi}"
    )
