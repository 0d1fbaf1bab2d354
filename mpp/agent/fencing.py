"""When the agent makes its own server read-only (pure, no I/O; the rules first).

Rules:
1. Never in maintenance: the operator holds the node, and a fence would surprise them.
2. Never a server that is not writable (or whose read_only could not be read): the agent
   only ever turns writes off, it never turns them on.
3. mpp asked (the node is in the pool state's `fencing`): fence at once.
4. Otherwise only when both hold: the fence lease ran out (the last successful report was
   sent more than `fence_ttl` ago) AND the agent cannot reach a majority of the pool (itself
   counts as one; its peers are probed). A lease that ran out with a majority in reach is a
   store problem, not isolation: mpp, on the majority's side, still reaches this server and
   fences it itself before promoting, so a fence from here would only add an outage.
5. A server that does not answer its own agent (not even a local read of read_only) for
   `hung_after` while a fence is due (rule 3 or 4) cannot be made read-only, and it may
   resume writable at any moment (SIGSTOP then SIGCONT, a disk that comes back): its death
   is the only fence left. The agent kills it and does not restart it (rule 2: a restart
   could bring a writable primary back beside the new one); the report says it is dead,
   which lets mpp promote at once instead of waiting for a lease that keeps being renewed.
"""

from __future__ import annotations


def majority(pool_size: int) -> int:
    """Nodes needed for a majority of a pool of `pool_size` (itself and its peers)."""
    return pool_size // 2 + 1


def lease_expired(lease_age: float, fence_ttl: float) -> bool:
    """The last renewal is older than the lease: mpp may promote past this node soon."""
    return lease_age > fence_ttl


def fence_reason(
    *,
    writable: bool | None,
    maintenance: bool,
    asked: str,
    lease_age: float,
    fence_ttl: float,
    reachable: int | None,
    pool_size: int,
) -> str:
    """Why to fence now, or '' not to. `reachable`: nodes in reach, itself included (None:
    not probed, counted as everyone: no probe, no isolation claim)."""
    if maintenance or writable is not True:
        return ""
    if asked:
        return asked
    if not lease_expired(lease_age, fence_ttl):
        return ""
    seen = pool_size if reachable is None else reachable
    if seen >= majority(pool_size):
        return ""
    return (
        f"fence lease not renewed for {lease_age:.1f} s (fence_ttl {fence_ttl:g} s) and "
        f"only {seen} of {pool_size} nodes in reach"
    )


def kill_reason(
    *,
    silent_for: float | None,
    hung_after: float,
    maintenance: bool,
    asked: str,
    lease_age: float,
    fence_ttl: float,
    reachable: int | None,
    pool_size: int,
) -> str:
    """Rule 5: why to kill a server that does not answer, or '' not to. `silent_for`:
    seconds since the agent's reads of it started failing (None: it answers)."""
    if maintenance or silent_for is None or silent_for < hung_after:
        return ""
    due = asked or fence_reason(
        writable=True,
        maintenance=False,
        asked="",
        lease_age=lease_age,
        fence_ttl=fence_ttl,
        reachable=reachable,
        pool_size=pool_size,
    )
    if not due:
        return ""
    return (
        f"mysqld did not answer its agent for {silent_for:.1f} s while a fence was due "
        f"({due}): killed, the only fence left; not restarted"
    )
