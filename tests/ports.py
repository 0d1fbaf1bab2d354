"""TCP ports for tests: free, below the kernel's ephemeral range, and never handed to two
pytest processes on one machine at the same time.

Every port handed out is
- below `net.ipv4.ip_local_port_range`, so no client socket the kernel numbers itself (an
  outgoing connection, HAProxy's health checks, a pymysql client) can be holding it;
- locked: an exclusive `fcntl.flock` on /tmp/mpp-test-ports/<port>, taken without waiting
  and held until this process ends (the kernel drops it then, even after kill -9), so a
  concurrent test run skips it; the files stay, the locks do not;
- checked by binding it (0.0.0.0, no SO_REUSEADDR: a listener on any address or a socket
  left in TIME_WAIT makes it busy), so a process that takes no lock is stepped around too;
- handed out once per process: a test's port is never another test's, even after the
  first one's servers are gone.

`block(n)` is n consecutive ports (a sandbox puts node i on base + i); `port()` is one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import tempfile
from pathlib import Path

LOCK_DIR = Path(tempfile.gettempdir()) / "mpp-test-ports"
# the hand-picked ports tests used before this allocator were 24100-27313: starting above
# them keeps clear of a concurrent run of an older checkout
LOWEST = 28000


def ephemeral_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> range:
    try:
        low, high = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def default_band() -> range:
    """[LOWEST, start of the ephemeral range); a lower band of 4000 if that leaves too few."""
    top = ephemeral_range().start
    low = LOWEST if top - LOWEST >= 1000 else max(1024, top - 4000)
    return range(low, top)


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


class Ports:
    """Hands out locked, free ports from `band`; see the module's text."""

    def __init__(self, band: range, lock_dir: Path = LOCK_DIR) -> None:
        self.band = band
        self.lock_dir = lock_dir
        self.held: dict[int, int] = {}  # port -> the locked file's descriptor
        # each process starts at its own place in the band, so concurrent runs rarely meet
        self.cursor = band.start + (os.getpid() * 7919) % len(band)

    def port(self) -> int:
        return self.block(1)

    def block(self, n: int) -> int:
        """The first of n consecutive ports, all locked and free."""
        if not 1 <= n <= len(self.band):
            raise ValueError(f"cannot hand out {n} consecutive ports from {self.band}")
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # whoever made it lets every user lock in it
            self.lock_dir.chmod(0o1777)
        bases = range(self.band.start, self.band.stop - n + 1)
        start = (self.cursor - bases.start) % len(bases)
        for i in range(len(bases)):
            base = bases[(start + i) % len(bases)]
            if self._take(base, n):
                self.cursor = base + n
                return base
        raise RuntimeError(f"no {n} consecutive free ports in {self.band.start}-{self.band.stop}")

    def _take(self, base: int, n: int) -> bool:
        taken: list[int] = []
        for port in range(base, base + n):
            if port in self.held or not self._lock(port):
                break
            taken.append(port)
            if not bindable(port):
                break
        else:
            return True
        for port in taken:
            os.close(self.held.pop(port))
        return False

    def _lock(self, port: int) -> bool:
        fd = os.open(self.lock_dir / str(port), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for whoever wonders
        self.held[port] = fd
        return True

    def close(self) -> None:
        """Give every port back (the end of the process does this too)."""
        for fd in self.held.values():
            os.close(fd)
        self.held.clear()


_session: Ports | None = None


def session_ports() -> Ports:
    """This process's allocator: one for the whole test session."""
    global _session
    if _session is None:
        _session = Ports(default_band())
    return _session
