"""The descriptor budget: how many connections each listener may hold, so that a flood on
one of them cannot starve the others, nor the poll loop.

A connection costs descriptors (the router two: client and server side), the process has a
limit (RLIMIT_NOFILE), and when it is reached every accept, probe and store write fails at
once. Measured before this existed: with the limit at 256, 240 idle sockets on the API port
made every HTTP check, agent-check and router client fail. So at start mpp raises its soft
limit as far as the hard one allows, keeps `RESERVE` descriptors for itself (probes, the
store, logs, hooks), and gives each listener at most its configured cap, all of them scaled
down together when the rest does not cover them (with a warning naming the keys).
"""

from __future__ import annotations

import contextlib
import logging
import resource
from dataclasses import dataclass

log = logging.getLogger("mpp.budget")

# probe and executor sessions (two per node at most), the store (SQLite and its WAL, or
# etcd's HTTP connections), log files, hook pipes, the listening sockets themselves
RESERVE = 96
FLOOR = 4  # a listener always gets a few connections, however tight the limit


@dataclass(frozen=True)
class Demand:
    """One listener's wish: `connections` at `fds_each` descriptors, under config `key`."""

    key: str  # e.g. "[api] max_connections"
    connections: int
    fds_each: int = 1

    @property
    def fds(self) -> int:
        return self.connections * self.fds_each


def plan(demands: list[Demand], limit: int, reserve: int = RESERVE) -> dict[str, int]:
    """Each listener's cap under `limit` descriptors: its wish when everything fits, else
    every wish scaled by the same factor (never below FLOOR). Pure: the tests call it."""
    wanted = sum(d.fds for d in demands)
    room = max(0, limit - reserve)
    if wanted <= room:
        return {d.key: d.connections for d in demands}
    factor = room / wanted
    return {d.key: max(FLOOR, int(d.connections * factor)) for d in demands}


def raise_limit(needed: int) -> int:
    """Raise the soft descriptor limit towards `needed` (at most the hard limit); the soft
    limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft if soft != resource.RLIM_INFINITY else needed
    new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def allot(demands: list[Demand], reserve: int = RESERVE) -> dict[str, int]:
    """The caps `mpp run` uses: the limit raised for every wish, then `plan` under what the
    system gave; a warning when some listener gets less than it was configured for."""
    if not demands:
        return {}
    limit = raise_limit(sum(d.fds for d in demands) + reserve)
    caps = plan(demands, limit, reserve)
    short = [f"{d.key} = {caps[d.key]} (configured {d.connections})" for d in demands]
    if any(caps[d.key] < d.connections for d in demands):
        log.warning(
            "open files limited to %d (ulimit -n); connection caps lowered to fit: %s",
            limit,
            ", ".join(short),
        )
    return caps
