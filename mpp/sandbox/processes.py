"""The mariadbd processes of a sandbox: which are ours, signalling them, waiting for them
to go, and who holds a port we need.

Only processes recorded in sandbox.json (or in a node's PID file), still named
``mariadbd`` and carrying our ``--datadir`` on their command line are ever signalled, so a
stale PID that was reused by something else is left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from mpp.sandbox.errors import SandboxError
from mpp.sandbox.layout import HOST, datadir, pid_file
from mpp.sandbox.state import NodeRecord

# How often every wait in the sandbox looks again.
POLL = 0.05

_TERM_GRACE = 10.0
_KILL_GRACE = 5.0

# Children we spawned in this process; kept so their exit status can be collected, or a
# killed node would linger as a zombie and look alive to /proc-based checks.
children: dict[int, subprocess.Popen[bytes]] = {}


def proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/PID/stat, or None if there is no such process."""
    return _proc_state_of(Path(f"/proc/{pid}/stat"))


def _proc_state_of(stat_file: Path) -> str | None:
    try:
        stat = stat_file.read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; the state follows the last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0] if fields else None


def _reap(pid: int) -> None:
    child = children.get(pid)
    if child is not None and child.poll() is not None:
        del children[pid]


def _is_ours(pid: int, node_datadir: Path) -> bool:
    """True only for a live mariadbd started on this very datadir.

    PIDs get reused; checking the command line is what makes it safe to signal a PID
    read from a file that may be days old.
    """
    if pid <= 0:
        return False
    _reap(pid)
    state = proc_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if comm not in ("mariadbd", "mysqld"):
        return False
    return os.fsencode(f"--datadir={node_datadir}") in argv


def running_pid(d: Path, rec: NodeRecord) -> int | None:
    """The PID of the node's live mariadbd, judged from /proc; None if it is not running."""
    # The PID file rescues us if sandbox.json lost the PID (e.g. `up` was interrupted
    # between spawning and saving), so such a node is neither orphaned nor started twice.
    candidates: list[int] = []
    if rec.pid is not None:
        candidates.append(rec.pid)
    with contextlib.suppress(OSError, ValueError):
        candidates.append(int(pid_file(d, rec.name).read_text().strip()))
    node_datadir = datadir(d, rec.name)
    for pid in candidates:
        if _is_ours(pid, node_datadir):
            return pid
    return None


def send_signal(pid: int, sig: int) -> None:
    """Signal a process that may have exited already, which is no error here."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _exited(pid: int) -> bool:
    """True once the whole process is gone, not just its main thread.

    A SIGKILLed mariadbd shows "Z" for its main thread while the other threads are still
    tearing down and the listening socket is still open, so every task must be dead.
    """
    child = children.get(pid)
    if child is not None:
        if child.poll() is None:
            return False
        del children[pid]
        return True
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return True
    return all(_proc_state_of(t / "stat") in (None, "Z", "X") for t in tasks)


def wait_all_gone(victims: list[tuple[NodeRecord, int]]) -> None:
    """Wait ~10 s for signalled nodes to exit, then SIGKILL the rest and wait again.

    Waits for the PID itself to vanish (or turn zombie), not merely to stop looking like
    ours: a dying process loses its cmdline before it has closed its listening socket.
    """

    def alive() -> list[tuple[NodeRecord, int]]:
        return [(r, p) for r, p in victims if not _exited(p)]

    deadline = time.monotonic() + _TERM_GRACE
    while (left := alive()) and time.monotonic() < deadline:
        time.sleep(POLL)
    for _rec, pid in left:
        send_signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + _KILL_GRACE
    while (left := alive()) and time.monotonic() < deadline:
        time.sleep(POLL)
    if left:
        names = ", ".join(f"{r.name} (pid {p})" for r, p in left)
        raise SandboxError(f"{names} survived SIGKILL for {_KILL_GRACE:.0f} s")


def _port_owner(port: int) -> str | None:
    """Best-effort "pid N (name)" of whoever listens on the port, for the error message."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                listening = len(fields) > 9 and fields[3] == "0A"  # 0A = TCP_LISTEN
                if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        comm = (proc / "comm").read_text().strip()
                        return f"pid {proc.name} ({comm})"
    return None


def check_port_free(rec: NodeRecord) -> None:
    """Fail before starting a node whose port is taken, naming who holds it."""
    # SO_REUSEADDR so that TIME_WAIT leftovers of our own earlier run do not count as busy;
    # on Linux the bind still fails if anything is listening on the port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, rec.port))
            return
        except OSError:
            pass
    owner = _port_owner(rec.port)
    who = f" by {owner}" if owner else " by another process"
    raise SandboxError(
        f"port {rec.port} (for {rec.name}) is already in use{who}; stop it or choose "
        "other ports with --base-port"
    )
