"""Owner ids for the leadership lease: who holds it, and whether a holder on this very host
has vanished (then its lease is taken at once instead of after the TTL)."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path


def _scope() -> str:
    """What makes "this host" precise: the boot and the pid namespace. Two containers with
    the host's name but their own pid namespaces (or a cloned VM with the same hostname)
    must not read each other's pids as their own."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        pid_ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return "unknown"
    return f"{boot}.{pid_ns}"


def new_owner(name: str) -> str:
    """A leadership owner id unique to this process: a restarted mpp is a new owner, so two
    processes never both believe they hold the same lease."""
    return f"{name}@{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}:{_scope()}"


def vanished_here(owner: str) -> bool:
    """True when `owner` was a process of this very host (same hostname, same boot, same pid
    namespace) that no longer exists. Lets a restarted mpp take its dead predecessor's lease
    at once instead of waiting for it to expire (the SQLite case, and etcd sites restarted
    in place); anything else waits for the TTL."""
    try:
        _, where = owner.rsplit("@", 1)
        host, pid_text, _token, scope = where.rsplit(":", 3)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname() or scope != _scope() or scope == "unknown":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
