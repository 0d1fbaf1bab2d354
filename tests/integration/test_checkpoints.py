"""MPP's checkpoints on real parts: real listeners (TCP, HTTP, a mariadbd's greeting), a cut
made with real iptables DROP rules, real `mpp run` processes on SQLite and on a real etcd.

A cut-off instance neither takes nor keeps the lease, fails over nothing, and its checks
(HTTP rw, HAProxy agent-check) send writes nowhere; `mpp status` shows its C rows. The
DROP rules carry a tag of their own and are deleted after every test, even a failed one.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import shlex
import socket
import socketserver
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest

from mpp import sandbox
from mpp.config import load
from mpp.faults import wait_for
from mpp.model import CheckpointKind, CheckpointSpec, Cut, EventKind, Reach
from mpp.probe.checkpoint import probe
from mpp.run.reach import ReachMonitor
from mpp.sandbox.etcd import EtcdServer
from mpp.store.etcd import EtcdStore
from mpp.store.sqlite import SqliteStore
from tests.builders import merged, write_config
from tests.conftest import Cluster, quick_config
from tests.daemons import MppRun, mpp_command
from tests.ports import Ports
from tests.probes import app_connect, query_one, routes_to

pytestmark = pytest.mark.integration

TAG = "mpp-test-checkpoint"


def _iptables(op: str, port: int) -> None:
    spec = ["INPUT", "-i", "lo", "-p", "tcp", "--dport", str(port)]
    spec += ["-m", "comment", "--comment", f"{TAG}-{port}", "-j", "DROP"]
    subprocess.run(["iptables", "-w", "5", op, *spec], check=True, capture_output=True)


def _leftovers() -> list[str]:
    out = subprocess.run(
        ["iptables", "-w", "5", "-S", "INPUT"], check=True, capture_output=True, text=True
    )
    return [line for line in out.stdout.splitlines() if TAG in line]


class Cuts:
    """DROP every packet to a port on lo (a silent cut: only timeouts notice)."""

    def __init__(self) -> None:
        self.ports: set[int] = set()

    def cut(self, port: int) -> None:
        _iptables("-I", port)
        self.ports.add(port)

    def heal(self, port: int) -> None:
        _iptables("-D", port)
        self.ports.discard(port)

    def clear(self) -> None:
        for line in _leftovers():  # whatever this module left, however the test ended
            spec = shlex.split(line)
            subprocess.run(["iptables", "-w", "5", "-D", *spec[1:]], capture_output=True)
        self.ports.clear()


@pytest.fixture
def cuts() -> Iterator[Cuts]:
    made = Cuts()
    try:
        yield made
    finally:
        made.clear()
        assert _leftovers() == []


class _Quiet(socketserver.BaseRequestHandler):
    def handle(self) -> None:  # accept and close: a TCP checkpoint needs only the connect
        pass


class _Web(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = int(self.path.strip("/") or 200)
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


class Listeners:
    def __init__(self, ports: Ports) -> None:
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.servers: list[socketserver.BaseServer] = []
        self.tcp = [
            self._serve(socketserver.ThreadingTCPServer, ports.port(), _Quiet) for _ in range(3)
        ]
        self.http = self._serve(http.server.ThreadingHTTPServer, ports.port(), _Web)
        self.closed = ports.port()  # nothing listens there

    def _serve(self, kind: Any, port: int, handler: Any) -> int:
        server = kind(("127.0.0.1", port), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        return port

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def listeners(ports: Ports) -> Iterator[Listeners]:
    made = Listeners(ports)
    yield made
    made.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, ports: Ports) -> Iterator[Cluster]:
    """One 2-node primary-replica sandbox for the module (each test its own store)."""
    d = tmp_path_factory.mktemp("checkpoints")
    sandbox.up(d, nodes=2, base_port=ports.block(2), topology="primary-replica")
    doc = quick_config(d, "200ms", False, {}, {})
    try:
        yield Cluster(d, write_config(d / "test.toml", doc), doc)
    finally:
        sandbox.destroy(d)


def _spec(target: str, timeout: float = 0.3) -> CheckpointSpec:
    return CheckpointSpec("c", CheckpointKind.INTERNAL, target, timeout)


def test_each_probe_against_real_servers_and_a_real_drop(
    listeners: Listeners, cluster: Cluster, cuts: Cuts
) -> None:
    db1 = cluster.config().pool[0].node[0].address
    ok = [
        probe(_spec(f"tcp:127.0.0.1:{listeners.tcp[0]}")),
        probe(_spec(f"mysql:{db1}")),  # a real mariadbd's greeting
        probe(_spec(f"http://127.0.0.1:{listeners.http}/200")),
        probe(_spec(f"http://127.0.0.1:{listeners.http}/404")),  # the host answers
    ]
    assert [r[0] for r in ok] == [True] * 4, ok
    refused = probe(_spec(f"tcp:127.0.0.1:{listeners.closed}"))
    assert refused[:2] == (False, "Connection refused"), refused
    assert probe(_spec(f"http://127.0.0.1:{listeners.http}/503"))[:2] == (
        False,
        "HTTP 503 Service Unavailable",
    )
    # a TCP listener that sends no greeting is no MySQL server
    silent = probe(_spec(f"mysql:127.0.0.1:{listeners.tcp[0]}"))
    assert not silent[0] and "closed before the server's greeting" in silent[1], silent
    cuts.cut(listeners.tcp[0])
    started = time.monotonic()
    dropped = probe(_spec(f"tcp:127.0.0.1:{listeners.tcp[0]}"))
    took = time.monotonic() - started
    assert dropped[:2] == (False, "no answer within 0.3s"), dropped
    assert 0.25 < took < 2.0, f"the deadline held: {took:.2f} s"


def _api(port: int, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)


def _code(port: int, path: str) -> int:
    try:
        return _api(port, path).status_code
    except httpx.HTTPError:
        return 0


def _agent(port: int, line: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(line.encode() + b"\n")
        return s.recv(512).decode()


def _checkpoints(internal: int, http: int) -> list[dict[str, Any]]:
    return [
        {
            "name": "lan-gw",
            "kind": "internal",
            "target": f"tcp:127.0.0.1:{internal}",
            "timeout": "300ms",
        },
        {
            "name": "wan",
            "kind": "edge",
            "target": f"http://127.0.0.1:{http}/200",
            "timeout": "300ms",
        },
    ]


def _variant(cluster: Cluster, name: str, changes: dict[str, Any]) -> Path:
    return write_config(cluster.dir / f"{name}.toml", merged(cluster.doc, changes))


def _status(config: Path) -> str:
    out = subprocess.run(
        mpp_command(config, "status"),
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "220"},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_cut_off_leader_resigns_on_etcd_and_another_instance_takes_the_lease(
    cluster: Cluster,
    listeners: Listeners,
    cuts: Cuts,
    etcd_server: EtcdServer,
    ports: Ports,
    tmp_path: Path,
) -> None:
    prefix = f"/checkpoints-{uuid.uuid4().hex[:8]}"
    state = f"etcd://{etcd_server.host_port}{prefix}"
    runs: list[MppRun] = []
    apis = {}
    try:
        for name, gw in (("site-a", listeners.tcp[1]), ("site-b", listeners.tcp[2])):
            apis[name] = ports.port()
            config = _variant(
                cluster,
                name,
                {
                    "mpp": {"state": state, "name": name, "leader_ttl": "2s"},
                    "api": {"listen": f"127.0.0.1:{apis[name]}"},
                    "checkpoint": _checkpoints(gw, listeners.http),
                },
            )
            runs.append(MppRun(config, tmp_path / f"{name}.log"))
            if name == "site-a":
                wait_for("site-a to lead", lambda: _role(apis["site-a"]) == "leader", 15)
        a, b = apis["site-a"], apis["site-b"]
        wait_for("site-b to follow", lambda: _role(b) == "follower", 15)
        wait_for(
            "rw UP on db1 at both sites",
            lambda: _code(a, "/v1/check/main/db1/rw") == _code(b, "/v1/check/main/db1/rw") == 200,
            15,
        )

        cuts.cut(listeners.tcp[1])  # site-a's LAN gateway goes silent
        cut_at = time.monotonic()
        wait_for("site-b to take the lease", lambda: _role(b) == "leader", 15)
        took = time.monotonic() - cut_at
        assert _role(a) == "follower"
        for node in ("db1", "db2"):
            down = _api(a, f"/v1/check/main/{node}/rw")
            assert down.status_code == 503 and "cut off (LAN)" in down.text, down.text
        assert _code(b, "/v1/check/main/db1/rw") == 200, "the other site still sends writes"
        mine = _api(a, "/v1/checkpoints").json()
        assert (mine["cut"], mine["cut_off"]) == ("LAN", True), mine
        assert [c["status"] for c in mine["checkpoints"]] == ["FAIL", "OK"]
        assert _api(a, "/v1/pools").json()["pools"][0]["status"] == "FAIL"
        metrics = _api(a, "/metrics").text
        assert "mpp_cut_off 1.0" in metrics and 'mpp_cut{place="LAN"} 1.0' in metrics
        # `mpp status`, from the store, shows both instances' C rows
        text = _status(cluster.dir / "site-a.toml")
        rows = [line for line in text.splitlines() if line.startswith("C ")]
        assert any("checkpoints of site-a" in r and "cut off (LAN)" in r for r in rows), text
        assert any("checkpoints of site-b" in r and "reachable" in r for r in rows), text
        assert any("lan-gw" in r and "FAIL" in r and "internal" in r for r in rows), text

        cuts.heal(listeners.tcp[1])
        wait_for(
            "site-a to send writes again", lambda: _code(a, "/v1/check/main/db1/rw") == 200, 15
        )
        assert _role(b) == "leader", "the healed instance does not take the lease back"
        store = EtcdStore([etcd_server.endpoint], prefix)
        try:
            lines = [e for e in store.history("main", limit=200) if e.kind is EventKind.POOL]
        finally:
            store.close()
        said = [(e.old, e.new) for e in lines if "site-a" in e.reason]
        assert ("reachable", "cut off (LAN)") in said and ("LAN", "reachable") in said, said
        print(f"lease moved {took:.2f} s after the cut")
    finally:
        for run in runs:
            run.stop()


def _role(api: int) -> str | None:
    try:
        role: str | None = _api(api, "/v1/health").json().get("role")
        return role
    except (httpx.HTTPError, ValueError):
        return None


def test_a_lone_instance_on_sqlite_cut_off_sends_no_writes_and_fails_nothing_over(
    cluster: Cluster, listeners: Listeners, cuts: Cuts, ports: Ports, tmp_path: Path
) -> None:
    api, agent, rw = ports.port(), ports.port(), ports.port()
    config = _variant(
        cluster,
        "lone",
        {
            "mpp": {"state": f"sqlite://{tmp_path / 'lone.db'}", "name": "lone"},
            "api": {"listen": f"127.0.0.1:{api}"},
            "agent": {"listen": f"127.0.0.1:{agent}"},
            "router": {"rw": f"127.0.0.1:{rw}"},
            "checkpoint": _checkpoints(listeners.tcp[0], listeners.http),
        },
    )
    run = MppRun(config, tmp_path / "lone.log")
    try:
        wait_for("rw UP on db1", lambda: _code(api, "/v1/check/main/db1/rw") == 200, 15)
        assert _agent(agent, "main/db1/rw").startswith("up ready")
        routes_to(rw, {1})  # the router's rw port reaches db1 (server_id 1)
        held = app_connect(rw)  # a writer's session through the router, open at the cut
        cuts.cut(listeners.tcp[0])
        down = wait_for("rw DOWN on db1", lambda: _code(api, "/v1/check/main/db1/rw") == 503, 10)
        print(f"rw DOWN {down:.2f} s after the cut")
        assert _code(api, "/v1/check/main/rw") == 503
        assert _agent(agent, "main/db1/rw").startswith("down #no writes from this site")
        assert _agent(agent, "main/db2/ok").startswith("up"), "reads are not refused"
        with pytest.raises(pymysql.err.OperationalError) as refused:
            app_connect(rw)
        assert "no writes from this site" in str(refused.value), refused.value
        with pytest.raises(pymysql.err.Error):  # the session open at the cut was closed
            query_one(held, "SELECT 1")
        held.close()
        # the primary dies while the instance is cut off: nothing is failed over
        cluster.kill("db1")
        time.sleep(2.5)  # 12 intervals; fail_point is 3 bad polls
        store = SqliteStore(tmp_path / "lone.db")
        try:
            snap = store.load("main")
            assert snap is not None
            active = [n.name for n in snap.state.nodes if n.state.value == "ACTIVE"]
            assert active == ["db1"], f"no failover from a cut-off instance: {snap.state}"
            lines = [e for e in store.history("main", limit=200) if e.kind is EventKind.POOL]
            assert any(e.new == "cut off (LAN)" and "resigns its lease" in e.reason for e in lines)
        finally:
            store.close()
        text = _status(config)
        assert "status=FAIL" in text and "cut off (LAN)" in text, text
        assert "leader: none" in text, text
        cluster.start("db1")
        cuts.heal(listeners.tcp[0])
        wait_for("rw UP on db1 again", lambda: _code(api, "/v1/check/main/db1/rw") == 200, 20)
    finally:
        log = run.stop()
    assert "resigns the lease" in log and "cut off (LAN)" in log, log[-2000:]


def test_the_monitor_never_blocks_the_event_loop_and_settles_on_a_cut(
    cluster: Cluster, listeners: Listeners, cuts: Cuts, tmp_path: Path
) -> None:
    """A round with a silent checkpoint takes its timeout in a thread: the loop (which
    serves the checks and the router) keeps ticking; settle() needs fail_after rounds."""
    doc = merged(
        cluster.doc,
        {
            "mpp": {"state": f"sqlite://{tmp_path / 'm.db'}", "name": "m"},
            "checkpoint": [
                {**c, "fail_after": 3} for c in _checkpoints(listeners.tcp[0], listeners.http)
            ],
        },
    )
    config = load(write_config(tmp_path / "m.toml", doc))
    store = SqliteStore(tmp_path / "m.db")
    monitor = ReachMonitor(config, store)
    gaps: list[float] = []

    async def scenario() -> tuple[Reach, float, Reach]:
        assert (await monitor.settle()).cut is Cut.NONE
        cuts.cut(listeners.tcp[0])
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                gaps.append(time.monotonic() - last)
                last = time.monotonic()

        tick = asyncio.create_task(ticker())
        started = time.monotonic()
        verdict = await monitor.settle()
        took = time.monotonic() - started
        stop.set()
        await tick
        cuts.heal(listeners.tcp[0])
        return verdict, took, await monitor.round()

    try:
        verdict, took, healed = asyncio.run(scenario())
        assert (verdict.cut, verdict.cut_off) == (Cut.LAN, True), verdict
        assert 0.85 < took < 3.0, f"three rounds of a 0.3 s timeout: {took:.2f} s"
        assert max(gaps) < 0.2, f"the event loop stalled {max(gaps):.2f} s"
        assert healed.cut is Cut.NONE, "one good answer is enough"
        stored = store.reach()["m"]
        assert stored.reach.cut is Cut.NONE and [c.name for c in stored.checkpoints] == [
            "lan-gw",
            "wan",
        ]
    finally:
        monitor.close()
        store.close()
