"""Hostile clients against `mpp run` (issue 15, items 1 and 2): a real `mpp run` with the
API, the agent-check and the router on a real sandbox, attacked over real sockets.

- 240 idle sockets on the API port under `ulimit -n 256` (they used to take every
  descriptor: every check surface failed while they were held): HTTP checks, agent-checks
  and router clients keep answering.
- an unauthenticated 100 MB POST: 401 from its headers, its body never read (RSS used to
  grow 66 -> 322 MB); with the token, 413; a 50 MB header: 431; four unfinished 25 MB
  heads: /v1/health stays fast; an idle connection is closed after header_timeout.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mpp.faults._sql import app_connect
from mpp.faults.watchers import wait_for
from tests.conftest import Cluster
from tests.daemons import MppRun
from tests.ports import Ports

TOKEN = "bounded-test-token-0123456789"
HOST = "127.0.0.1"


@dataclass
class Running:
    cluster: Cluster
    daemon: MppRun
    api: int
    agent: int
    router: int

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.api}{path}"

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.daemon.pid}/status").read_text()
        line = next(ln for ln in status.splitlines() if ln.startswith("VmRSS:"))
        return int(line.split()[1])


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


def _start(
    make_cluster: Callable[..., Cluster], tmp_path: Path, ports: Ports, open_files: int | None
) -> Running:
    api, agent, router = ports.port(), ports.port(), ports.port()
    token = tmp_path / "token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    cluster = make_cluster(
        nodes=2,
        topology="primary-replica",
        interval="500ms",
        api={"listen": f"{HOST}:{api}", "token_file": str(token), "header_timeout": "1s"},
        agent={"listen": f"{HOST}:{agent}"},
        router={"rw": f"{HOST}:{router}"},
    )
    daemon = MppRun(cluster.config_path, tmp_path / "mpp-run.log", open_files)
    running = Running(cluster, daemon, api, agent, router)
    try:
        wait_for("mpp's API", lambda: _status(running.url("/v1/health")) == 200, 30)
        wait_for(
            "db1 UP for rw",
            lambda: _status(running.url("/v1/check/main/db1/rw")) == 200,
            30,
        )
    except BaseException:
        daemon.stop()
        raise
    return running


@pytest.fixture
def limited(
    make_cluster: Callable[..., Cluster], tmp_path: Path, ports: Ports
) -> Iterator[Running]:
    running = _start(make_cluster, tmp_path, ports, open_files=256)
    yield running
    running.daemon.stop()


@pytest.fixture
def served(make_cluster: Callable[..., Cluster], tmp_path: Path, ports: Ports) -> Iterator[Running]:
    running = _start(make_cluster, tmp_path, ports, open_files=None)
    yield running
    running.daemon.stop()


def _agent_check(port: int) -> str:
    with socket.create_connection((HOST, port), timeout=2) as s:
        s.sendall(b"main/db1/rw\n")
        return s.makefile("rb").readline(512).decode()


def _router_select(port: int) -> int:
    conn = app_connect(port, timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@port")
            row = cur.fetchone()
        return int(row[0]) if row else 0
    finally:
        conn.close()


def test_idle_sockets_on_the_api_port_do_not_starve_any_surface(limited: Running) -> None:
    held: list[socket.socket] = []
    try:
        for _ in range(240):
            held.append(socket.create_connection((HOST, limited.api), timeout=2))
        time.sleep(0.3)  # every one accepted (or evicted) by now
        answers: dict[str, list[bool]] = {"http": [], "agent": [], "router": []}
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            answers["http"].append(_status(limited.url("/v1/check/main/db1/rw")) == 200)
            answers["agent"].append(_agent_check(limited.agent).startswith("up"))
            answers["router"].append(_router_select(limited.router) > 0)
            # the flood goes on: as many new idle sockets as were closed to make room
            alive = [s for s in held if _open(s)]
            held[:] = alive + [
                socket.create_connection((HOST, limited.api), timeout=2)
                for _ in range(240 - len(alive))
            ]
        assert all(answers["http"]) and all(answers["agent"]) and all(answers["router"]), {
            k: f"{sum(v)}/{len(v)}" for k, v in answers.items()
        }
    finally:
        for s in held:
            s.close()
    log = limited.daemon.stop()
    assert "API: " in log and "[api] max_connections" in log  # the cap was hit, and said so
    assert "connection caps lowered to fit" in log  # the budget under ulimit -n 256
    limited.daemon.process.returncode = 0  # stopped here; the fixture's stop is a no-op


def _open(s: socket.socket) -> bool:
    """Still open on the server's side: no EOF waiting to be read."""
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


def _post_head(
    port: int, path: str, length: int, token: str | None = None
) -> tuple[socket.socket, bytes]:
    """A POST's head announcing `length` bytes, then 1 MB of them; what came back."""
    s = socket.create_connection((HOST, port), timeout=5)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    s.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {length}\r\n\r\n".encode()
    )
    with contextlib.suppress(OSError):
        s.sendall(b"x" * (1 << 20))
    return s, _read_all(s)


def _read_all(s: socket.socket) -> bytes:
    out = b""
    with contextlib.suppress(OSError):
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_a_huge_body_is_refused_from_its_headers(served: Running) -> None:
    before = served.rss_kib()
    s, reply = _post_head(served.api, "/v1/pools/main/nodes/db2/fail", 100 << 20)
    s.close()
    assert reply.startswith(b"HTTP/1.1 401 "), reply[:200]
    assert b"www-authenticate: bearer" in reply.lower()
    s, reply = _post_head(served.api, "/v1/pools/main/nodes/db2/fail", 100 << 20, "wrong")
    s.close()
    assert reply.startswith(b"HTTP/1.1 403 "), reply[:200]
    s, reply = _post_head(served.api, "/v1/pools/main/nodes/db2/fail", 100 << 20, TOKEN)
    s.close()
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]
    assert served.rss_kib() - before < 20 * 1024, (before, served.rss_kib())
    # nothing was done: db2 is as it was
    node = httpx.get(served.url("/v1/pools/main/nodes/db2"), timeout=2).json()
    assert node["state"] == "STANDBY"


def test_a_huge_head_is_refused_and_unfinished_ones_do_not_slow_the_rest(
    served: Running,
) -> None:
    s = socket.create_connection((HOST, served.api), timeout=5)
    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: ")
    with contextlib.suppress(OSError):
        for _ in range(50):
            s.sendall(b"a" * (1 << 20))
    reply = _read_all(s)
    s.close()
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:200]
    slow = []
    try:
        for _ in range(4):
            c = socket.create_connection((HOST, served.api), timeout=5)
            c.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000)
            slow.append(c)
        times = []
        for _ in range(20):
            started = time.perf_counter()
            assert _status(served.url("/v1/health")) == 200
            times.append(time.perf_counter() - started)
        assert statistics.median(times) < 0.05, times
    finally:
        for c in slow:
            c.close()


def test_an_idle_connection_is_closed_after_the_header_timeout(served: Running) -> None:
    s = socket.create_connection((HOST, served.api), timeout=5)
    started = time.monotonic()
    assert _read_all(s) == b""  # closed without a word: nothing was asked
    took = time.monotonic() - started
    s.close()
    assert 0.8 < took < 3.0, took  # header_timeout = 1s
    # a dribbled head gets its 408 when the time is up
    s = socket.create_connection((HOST, served.api), timeout=5)
    s.sendall(b"GET /v1/health HTTP/1.1\r\n")
    reply = _read_all(s)
    s.close()
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
