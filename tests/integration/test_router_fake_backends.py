"""The router's behaviour against fake backends, with a Hub filled from pure values.

Each fake node is a thread with a blocking listening socket that greets every connection
with its name ("db2\\n") and then echoes, so a test reads where a connection went from its
first line. The router runs in its own event loop thread, on asyncio's loop and on uvloop
(what `mpp run` uses when it is installed). Real MariaDB behind the router is in
tests/integration/test_router.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from mpp.config import ConfigError
from mpp.faults import wait_for
from mpp.model import PoolState, Request, RequestKind, State
from mpp.publish.hub import Hub
from mpp.publish.metrics import Metrics
from mpp.publish.router import HIGH_WATER, Router, err_packet
from mpp.run.services import Integrations
from tests.builders import config, config_doc, pool, pool_state
from tests.ports import Ports

BLAST = 200 * 1024 * 1024

HEALTHY = pool_state(
    ("db1", State.ACTIVE, 0), ("db2", State.STANDBY, 0), ("db3", State.STANDBY, 0), cycle=5
)
state = pool_state


class FakeNode:
    """A TCP server that greets with its name and echoes; `blast` sends without end
    instead (counting what the kernel accepted), like a server streaming a big result."""

    def __init__(
        self, name: str, port: int, blast: bool = False, tls: ssl.SSLContext | None = None
    ) -> None:
        self.name = name
        self.blast = blast
        self.tls = tls
        self.sent = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.conns: list[socket.socket] = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(f"{self.name}\n".encode())
            if self.tls is not None:  # TLS after a plain greeting, as MySQL negotiates it
                conn = self.tls.wrap_socket(conn, server_side=True)
            if self.blast:
                chunk = b"x" * 65536
                while self.sent < BLAST:
                    conn.sendall(chunk)
                    self.sent += len(chunk)
                return
            while data := conn.recv(65536):
                conn.sendall(data)
            conn.close()  # as mariadbd does when its client has gone

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (Linux)
        self.sock.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.close()


class Harness:
    """A Router on its own loop thread, a Hub to publish to, and the fake nodes."""

    def __init__(
        self,
        first: PoolState | None,
        loop_kind: str,
        ports: Ports,
        blast: str = "",
        tls: ssl.SSLContext | None = None,
        **router: Any,
    ) -> None:
        base = ports.block(3)  # db1, db2, db3
        self.rw, self.ro = ports.port(), ports.port()
        self.node_ports = {f"db{i + 1}": base + i for i in range(3)}
        doc = config_doc(
            pool(ports=list(self.node_ports.values())),
            router={"rw": f"127.0.0.1:{self.rw}", "ro": f"127.0.0.1:{self.ro}", **router},
        )
        self.config = config(doc, Path("/tmp/mpp-router-test.toml"))
        self.nodes = {
            n: FakeNode(n, p, blast=n == blast, tls=tls) for n, p in self.node_ports.items()
        }
        self.hub = Hub(self.config, {"main": first})
        self.router = Router(self.config, self.hub)
        self.hub.listeners.append(self.router.listener)
        self.router.bind()
        self.loop: asyncio.AbstractEventLoop
        if loop_kind == "uvloop":
            import uvloop

            self.loop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self.router.start())

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def run(self, fn: Callable[[], Any]) -> Any:
        async def call() -> Any:
            return fn()

        return self.call(call())

    def publish(self, new: PoolState) -> None:
        self.run(lambda: self.hub.publish(new, ()))

    def close(self) -> None:
        self.call(self.router.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        self.router.close_sockets()
        for node in self.nodes.values():
            node.close()


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def harness(loop_kind: str, ports: Ports) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(first: PoolState | None = HEALTHY, **kw: Any) -> Harness:
        h = Harness(first, loop_kind, ports, **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def greeting(sock: socket.socket) -> bytes:
    """The first line (a fake node's name) or the first packet (the router's ERR)."""
    data = b""
    while b"\n" not in data:
        more = sock.recv(4096)
        if not more:
            break
        data += more
    return data


def where(port: int) -> str:
    with connect(port) as sock:
        return greeting(sock).decode().strip()


def read_err(data: bytes) -> tuple[int, int, str]:
    """(sequence id, error code, message) of an ERR packet."""
    length = int.from_bytes(data[:3], "little")
    assert len(data) == 4 + length, "exactly one packet"
    assert data[4] == 0xFF
    (code,) = struct.unpack("<H", data[5:7])
    return data[3], code, data[7:].decode()


def refused(port: int) -> tuple[int, int, str]:
    with connect(port) as sock:
        data = b""
        while more := sock.recv(4096):
            data += more
    return read_err(data)


def alive(sock: socket.socket) -> bool:
    try:
        sock.sendall(b"ping\n")
        return sock.recv(16) == b"ping\n"
    except OSError:
        return False


def test_err_packet_is_the_first_packet_without_sqlstate() -> None:
    packet = err_packet(1053, "mpp: pool main has no ACTIVE node")
    assert packet[:4] == bytes([36, 0, 0, 0])  # 3-byte length, sequence id 0
    assert packet[4:7] == b"\xff\x1d\x04"  # ERR, code 1053 little-endian
    assert packet[7:] == b"mpp: pool main has no ACTIVE node"


def test_rw_goes_to_the_active_node_and_ro_spreads_by_least_connections(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    assert where(h.rw) == "db1"
    held = [connect(h.ro) for _ in range(4)]
    names = sorted(greeting(s).decode().strip() for s in held)
    assert names == ["db2", "db2", "db3", "db3"], "least connections: two each"
    assert h.router.stats()[1].backends == {"db2": 2, "db3": 2}
    for s in held[:2]:
        s.close()
    # a lagging standby gets no new reads; with none left the ACTIVE node serves them
    h.publish(
        state(("db1", State.ACTIVE, 0), ("db2", State.STANDBY, 0), ("db3", State.STANDBY, 60))
    )
    assert {where(h.ro) for _ in range(4)} == {"db2"}
    h.publish(
        state(
            ("db1", State.ACTIVE, 0),
            ("db2", State.FAILED_OFFLINE, None),
            ("db3", State.STANDBY, None),
        )
    )
    assert {where(h.ro) for _ in range(3)} == {"db1"}, "fallback to the ACTIVE node"
    for s in held[2:]:
        s.close()


def test_a_role_change_closes_rw_connections_to_the_old_primary_only(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    rw = connect(h.rw)
    assert greeting(rw) == b"db1\n"
    readers = [connect(h.ro) for _ in range(2)]
    node_of = {s: greeting(s).decode().strip() for s in readers}
    assert sorted(node_of.values()) == ["db2", "db3"]
    h.publish(
        state(
            ("db1", State.FAILED_OFFLINE, None), ("db2", State.ACTIVE, 0), ("db3", State.STANDBY, 0)
        )
    )
    assert rw.recv(16) == b"", "the old primary's rw connection is closed"
    assert all(alive(s) for s in readers), "readers of still-valid nodes are kept"
    assert where(h.rw) == "db2"
    assert h.router.stats()[0].closed_on_role_change == 1
    # a reader whose node mpp fails is closed too
    h.publish(
        state(
            ("db1", State.FAILED_OFFLINE, None),
            ("db2", State.ACTIVE, 0),
            ("db3", State.FAILED_ONLINE, 0),
        )
    )
    assert {node_of[s]: alive(s) for s in readers} == {"db2": True, "db3": False}
    for s in [rw, *readers]:
        s.close()


def test_no_active_node_answers_at_once_with_a_readable_error(
    harness: Callable[..., Harness],
) -> None:
    h = harness(
        state(
            ("db1", State.FAILED_OFFLINE, None),
            ("db2", State.FAILED_ONLINE, 0),
            ("db3", State.UNKNOWN, None),
        )
    )
    started = time.monotonic()
    seq, code, message = refused(h.rw)
    assert time.monotonic() - started < 1.0, "at once, not after a wait"
    assert (seq, code, message) == (0, 1053, "mpp: pool main has no ACTIVE node")
    with pytest.raises(pymysql.OperationalError) as info:
        pymysql.connect(host="127.0.0.1", port=h.rw, user="app", password="app", connect_timeout=5)
    assert info.value.args == (1053, "mpp: pool main has no ACTIVE node")
    client = shutil.which("mariadb")
    assert client is not None, "the mariadb client is installed by `make test`"
    command = [client, "-h127.0.0.1", f"-P{h.rw}", "-uapp", "-papp", "-e", "select 1"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=10)
    # MariaDB's client asks for TLS by default and says so about any error that comes
    # before it (as it would of a real server's): the message is still there, readable
    assert out.returncode == 1
    assert "1053 - mpp: pool main has no ACTIVE node" in out.stderr, out.stderr
    out = subprocess.run([*command, "--skip-ssl"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 1
    assert out.stderr == "ERROR 1053 (HY000): mpp: pool main has no ACTIVE node\n"
    assert h.router.stats()[0].refused == {"no_node": 4}


def test_new_rw_connections_wait_for_the_new_primary_during_a_switchover(
    harness: Callable[..., Harness],
) -> None:
    switching = state(
        ("db1", State.ACTIVE, 0),
        ("db2", State.STANDBY, 0),
        ("db3", State.STANDBY, 0),
        switching=Request(RequestKind.SWITCHOVER, "db2", 0.0, 10.0),
        draining=("db1",),
    )
    h = harness(switching, switchover_wait="5s")
    result: list[tuple[str, float]] = []

    def client() -> None:
        started = time.monotonic()
        result.append((where(h.rw), time.monotonic() - started))

    t = threading.Thread(target=client)
    t.start()
    time.sleep(0.5)
    assert not result, "still waiting while the switchover runs"
    assert where(h.ro) in ("db2", "db3"), "reads are not held up"
    h.publish(state(("db1", State.STANDBY, 0), ("db2", State.ACTIVE, 0), ("db3", State.STANDBY, 0)))
    t.join(5)
    ((name, waited),) = result
    assert name == "db2" and waited >= 0.45
    assert h.router.stats()[0].waited == 1


def test_the_wait_for_a_primary_is_bounded(harness: Callable[..., Harness]) -> None:
    switching = state(
        ("db1", State.ACTIVE, 0),
        ("db2", State.STANDBY, 0),
        switching=Request(RequestKind.SWITCHOVER, "db2", 0.0, 10.0),
        draining=("db1",),
    )
    h = harness(switching, switchover_wait="300ms")
    started = time.monotonic()
    _, code, message = refused(h.rw)
    assert 0.25 <= time.monotonic() - started < 2
    assert code == 1053
    assert message == "mpp: pool main is still switching over (waited 0.3s)"


def test_an_unreachable_primary_is_waited_for_then_reported(
    harness: Callable[..., Harness],
) -> None:
    h = harness(switchover_wait="400ms")
    h.nodes["db1"].close()  # the primary died; mpp has not noticed yet
    _, code, message = refused(h.rw)
    assert code == 1053 and f"cannot connect to db1 (127.0.0.1:{h.node_ports['db1']})" in message, (
        message
    )
    assert "waited 0.4s" in message


def test_over_max_connections_is_refused_with_too_many_connections(
    harness: Callable[..., Harness],
) -> None:
    h = harness(max_connections=2)
    held = [connect(h.rw) for _ in range(2)]
    assert [greeting(s) for s in held] == [b"db1\n", b"db1\n"]
    _, code, message = refused(h.rw)
    assert code == 1040
    assert message == f"mpp: router rw port 127.0.0.1:{h.rw} has 2 connections (max_connections)"
    assert where(h.ro) in ("db2", "db3"), "the cap is per port"
    held[0].close()
    wait_for("the router to see the close", lambda: h.router.stats()[0].active <= 1, 3, 0.02)
    assert where(h.rw) == "db1", "a freed slot is usable again"
    held[1].close()
    assert h.router.stats()[0].refused == {"max_connections": 1}


def test_a_client_that_stops_reading_does_not_grow_the_routers_buffers(
    harness: Callable[..., Harness],
) -> None:
    h = harness(blast="db1")
    sock = connect(h.rw)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    peak = 0
    sent: list[int] = []
    for _ in range(30):  # 3 s of a server pushing as fast as the router takes it
        time.sleep(0.1)
        peak = max(peak, h.run(h.router.buffered))
        sent.append(h.nodes["db1"].sent)
    assert peak <= 2 * HIGH_WATER, f"router held {peak} bytes"
    assert sent[-1] == sent[-10] < 64 * 1024 * 1024, "the server is stalled, not the router"
    # the client reads again: everything arrives, in order
    got = 0
    while got < 4 * 1024 * 1024:
        got += len(sock.recv(1 << 20))
    sock.close()


def test_router_metrics(harness: Callable[..., Harness]) -> None:
    h = harness(
        state(
            ("db1", State.FAILED_OFFLINE, None),
            ("db2", State.STANDBY, 0),
            ("db3", State.STANDBY, 0),
        )
    )
    metrics = Metrics(h.config, h.hub.states)
    metrics.add_router(h.router.stats)
    refused(h.rw)
    with connect(h.ro) as sock:
        assert greeting(sock) in (b"db2\n", b"db3\n")
        assert alive(sock)
        text = metrics.render().decode()
        assert 'mpp_router_active_connections{pool="main",port="ro"} 1.0' in text
    assert 'mpp_router_connections_total{pool="main",port="rw"} 1.0' in text
    assert 'mpp_router_refused_total{pool="main",port="rw",reason="no_node"} 1.0' in text
    assert 'mpp_router_bytes_total{direction="from_clients",pool="main",port="ro"} 5.0' in text
    assert 'mpp_router_bytes_total{direction="to_clients",pool="main",port="ro"} 9.0' in text


def test_a_router_port_in_use_stops_mpp_run_at_start_naming_the_key(ports: Ports) -> None:
    rw, ro = ports.port(), ports.port()
    doc = config_doc(pool(count=1), router={"rw": f"127.0.0.1:{rw}", "ro": f"127.0.0.1:{ro}"})
    cfg = config(doc, Path("/tmp/mpp-router-test.toml"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ro))
        taken.listen(1)
        with pytest.raises(ConfigError) as info:
            Integrations(cfg, Hub(cfg))
    assert str(info.value) == (
        f"/tmp/mpp-router-test.toml: [router] ro = '127.0.0.1:{ro}': Address already in use"
    )
    Integrations(cfg, Hub(cfg)).close()  # rw was released: both bind now


def test_tls_passes_through_untouched(harness: Callable[..., Harness], tmp_path: Path) -> None:
    """The server's own certificate reaches the client: the TLS session is end to end."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=db-node", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    h = harness(tls=server)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cert)  # trusts the node's certificate, nothing else
    with connect(h.rw) as sock:
        assert greeting(sock) == b"db1\n"
        with client.wrap_socket(sock, server_hostname="db-node") as tls:
            assert tls.getpeercert(binary_form=True) == ssl.PEM_cert_to_DER_cert(cert.read_text())
            tls.sendall(b"secret\n")
            assert tls.recv(16) == b"secret\n"
