"""What every benchmark records about the machine its figures come from, and how it says it.

A figure is only quoted with the conditions that decide it. The server settings of a
failover (slave_net_timeout, MASTER_CONNECT_RETRY, semi-sync) are read from the servers by
mpp.faults.cluster.conditions; what is here is the rest, common to every bench: the
machine (cores, Python, kernel, MariaDB), how loaded it was at the start and the end of the
run (the machine may be shared with other sessions' work), a running server's version and
the filesystem under a directory (what an fsync costs).

Each bench puts `conditions` in its JSON (this module's `machine()` under "machine", plus
its own keys) and ends its human line with `describe(...)`.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

# a 1-minute load average above this share of the cores says "loaded" in the human line
LOADED_PER_CORE = 0.5


def mariadb_version() -> str:
    """The version of the installed mariadbd (what the sandboxes run), e.g. 10.11.19."""
    for binary in ("/usr/sbin/mariadbd", "/usr/local/sbin/mariadbd"):
        if Path(binary).exists():
            out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
            found = re.search(r"Ver\s+(\S+)", out)
            return found.group(1) if found else out.strip()
    return "not installed"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    """The machine at the start of a run; call `finish` on it at the end."""
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "mariadb": mariadb_version(),
        "load_avg_1m_start": round(os.getloadavg()[0], 2),
    }


def finish(m: dict[str, Any]) -> dict[str, Any]:
    """The load at the end of the run, and whether the machine was loaded at either end."""
    m["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    top = max(m["load_avg_1m_start"], m["load_avg_1m_end"])
    m["loaded"] = top > LOADED_PER_CORE * (m["cpus"] or 1)
    return m


def describe_machine(m: Mapping[str, Any]) -> str:
    load = f"load {m['load_avg_1m_start']:g}"
    if "load_avg_1m_end" in m:
        load += f"-{m['load_avg_1m_end']:g}"
    note = " (shared/loaded: absolute figures noisy, compare ratios)" if m.get("loaded") else ""
    mariadb = str(m["mariadb"]).split("-")[0]
    return f"{m['date']}, {m['cpus']} cpus, Python {m['python']}, MariaDB {mariadb}, {load}{note}"


def describe(own: str, m: Mapping[str, Any]) -> str:
    """The end of a human line: the bench's own conditions, then the machine's."""
    return f"; conditions: {own}; machine: {describe_machine(m)}"


def server_version(d: Path, node: str = "db1") -> str:
    """SELECT VERSION() on a sandbox node."""
    from mpp.faults import root_sql  # the harness is only needed where there are servers

    return str(root_sql(d, node, "SELECT VERSION()")[0][0])


def filesystem(path: Path) -> str:
    """The filesystem type under `path` (tmpfs makes fsync free, a disk does not)."""
    target = str(path.resolve())
    best, kind = "", "unknown"
    with open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) < 3:
                continue
            point = fields[1]
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and len(point) > len(best):
                best, kind = point, fields[2]
    return kind
