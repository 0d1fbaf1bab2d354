"""The built-in router against a direct connection and a real HAProxy, with sysbench.

One run: a fresh 3-node primary-replica sandbox, `mpp run --no-live` with `[router]` (and
`[api]`), and HAProxy 2.6 in TCP mode with db1 as its only server. For each sysbench test
(`oltp_read_only`, `oltp_point_select`; 1 table x 10k rows) and thread count (8, 32),
three bounded runs one after the other: direct to db1, through HAProxy, through the rw
port. Reported: tps and p95 latency, router/direct and router/HAProxy ratios.

Then the connection set-up cost: connect + `SELECT 1` + close, one at a time with PyMySQL
(TLS off), direct vs router vs HAProxy; the overhead is the p50 difference.

Then failovers through the router (fresh sandbox each, mpp's fast profile: 250 ms interval
and connect timeout): a writer connected through the rw port inserts every 5 ms and
reconnects at once on an error; a second writer inserts directly into whichever replica
is writable. db1 is killed (SIGKILL); each writer's RTO is the time from the kill to its
first acknowledged write. The direct writer is the floor: what a client that already knew
the new primary would see.

`--forwarding` instead compares ways of forwarding bytes in Python (asyncio Protocol pair
vs a sock_recv_into/sock_sendall loop, on asyncio's loop and on uvloop) against an echo
server: the measurement behind mpp/publish/router/forwarding.py's design.

sysbench comes from Debian (`apt-get install sysbench`); installed here when missing.
Prints one JSON document (stdout) and one human line per case (stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.conditions import describe, finish  # noqa: E402
from bench.conditions import machine as host_machine  # noqa: E402
from mpp import sandbox  # noqa: E402
from mpp.faults import wait_for  # noqa: E402
from mpp.faults.cluster import conditions  # noqa: E402
from mpp.faults.cluster import describe as describe_servers  # noqa: E402

HOST = "127.0.0.1"
BASE = 27500  # sandbox 27500-27502; router 27510/27511, API 27512, HAProxy 27520
RW, RO, API, HAPROXY_PORT = 27510, 27511, 27512, 27520
HAPROXY = "/usr/sbin/haproxy"
TESTS = ("oltp_read_only", "oltp_point_select")
FAILOVER_INTERVAL = "250ms"  # mpp's fast profile: interval and connect timeout of the failovers
THREADS = (8, 32)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def ensure_sysbench() -> str:
    found = shutil.which("sysbench")
    if found:
        return found
    log("bench: installing sysbench (apt-get)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "sysbench"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    found = shutil.which("sysbench")
    if not found:
        raise SystemExit("sysbench is not installed and could not be installed")
    return found


# -- the stack ------------------------------------------------------------------------------


class Stack:
    """Sandbox + mpp run with [router] + HAProxy, all torn down by close()."""

    def __init__(self, d: Path, interval: str = "1s", timeout: str = "1s") -> None:
        self.dir = d
        sandbox.up(d, nodes=3, base_port=BASE, topology="primary-replica")
        self.ports = {n.name: n.port for n in sandbox.status(d)}
        self.config = d / "bench.toml"
        text = (d / "mpp.toml").read_text()
        text = text.replace('interval = "1s"', f'interval = "{interval}"')
        text = text.replace('connect_timeout = "1s"', f'connect_timeout = "{timeout}"')
        text += (
            f'\n[router]\nrw = "{HOST}:{RW}"\nro = "{HOST}:{RO}"\nmax_connections = 2000\n'
            f'\n[api]\nlisten = "{HOST}:{API}"\n'
        )
        self.config.write_text(text)
        self.daemon: subprocess.Popen[bytes] | None = None
        self.loop = ""  # the event loop the running mpp uses
        self.haproxy: subprocess.Popen[bytes] | None = None

    def start_mpp(self, loop: str = "uvloop") -> None:
        env = {**os.environ, "MPP_EVENT_LOOP": loop}
        out = (self.dir / f"mpp-run-{loop}.log").open("a")
        command = [sys.executable, "-m", "mpp", "--config", str(self.config), "run", "--no-live"]
        self.daemon = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.loop = loop
        wait_for("mpp to route rw to db1", lambda: sandbox.server_id_at(RW) == 1, 30)

    def stop_mpp(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            self.daemon.wait(20)
        self.daemon = None

    def start_haproxy(self) -> None:
        cfg = self.dir / "haproxy.cfg"
        cfg.write_text(
            "global\n    maxconn 4000\n"
            "defaults\n    mode tcp\n    timeout connect 1s\n"
            "    timeout client 60s\n    timeout server 60s\n"
            f"listen mysql\n    bind {HOST}:{HAPROXY_PORT}\n"
            f"    server db1 {HOST}:{self.ports['db1']}\n"
        )
        log_file = (self.dir / "haproxy.log").open("w")
        self.haproxy = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(cfg)], stdout=log_file, stderr=log_file
        )
        wait_for("haproxy", lambda: sandbox.server_id_at(HAPROXY_PORT) == 1, 30)

    def close(self) -> None:
        self.stop_mpp()
        if self.haproxy is not None:
            self.haproxy.kill()
            self.haproxy.wait(10)
        sandbox.destroy(self.dir)


def mysql(port: int, timeout: float = 2.0, user: str = sandbox.APP_USER) -> Any:
    password = sandbox.APP_PASSWORD if user == sandbox.APP_USER else sandbox.ROOT_PASSWORD
    return pymysql.connect(
        host=HOST,
        port=port,
        user=user,
        password=password,
        database=sandbox.APP_DATABASE,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        autocommit=True,
        ssl_disabled=True,
    )


# -- sysbench ------------------------------------------------------------------------------


def sysbench(
    binary: str, test: str, port: int, action: str, threads: int = 1, seconds: int = 0
) -> str:
    user = sandbox.APP_USER if action == "run" else "root"
    password = sandbox.APP_PASSWORD if action == "run" else sandbox.ROOT_PASSWORD
    command = [
        binary,
        test,
        f"--mysql-host={HOST}",
        f"--mysql-port={port}",
        f"--mysql-user={user}",
        f"--mysql-password={password}",
        f"--mysql-db={sandbox.APP_DATABASE}",
        "--tables=1",
        "--table-size=10000",
        f"--threads={threads}",
        f"--time={seconds}",
        "--percentile=95",
        action,
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    if out.returncode != 0:
        raise SystemExit(
            f"sysbench {test} {action} on port {port} failed:\n{out.stdout}{out.stderr}"
        )
    return out.stdout


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_sysbench(text: str) -> dict[str, float]:
    tps = re.search(r"transactions:\s+\d+\s+\(([\d.]+) per sec", text)
    p95 = re.search(r"95th percentile:\s+([\d.]+)", text)
    errors = re.search(r"ignored errors:\s+(\d+)", text)
    if not tps or not p95:
        raise SystemExit(f"cannot read sysbench output:\n{text}")
    return {
        "tps": float(tps.group(1)),
        "p95_ms": float(p95.group(1)),
        "errors": float(errors.group(1)) if errors else 0.0,
    }


def throughput(
    binary: str,
    stack: Stack,
    seconds: int,
    loops: list[str],
    tests: list[str],
    thread_counts: list[int],
) -> list[dict[str, Any]]:
    direct = stack.ports["db1"]
    sysbench(binary, "oltp_read_only", direct, "prepare")
    cases = []
    for test in tests:
        for threads in thread_counts:
            row: dict[str, Any] = {"test": test, "threads": threads, "seconds": seconds}
            ways = [("direct", direct), ("haproxy", HAPROXY_PORT)]
            ways += [(f"router_{loop}" if loop != "uvloop" else "router", RW) for loop in loops]
            for way, port in ways:
                loop = way.removeprefix("router_") if way.startswith("router_") else "uvloop"
                if way.startswith("router") and loop != stack.loop:
                    stack.stop_mpp()
                    stack.start_mpp(loop)
                proxy = stack.haproxy if way == "haproxy" else stack.daemon
                pid = proxy.pid if proxy is not None and way != "direct" else None
                cpu = cpu_seconds(pid) if pid else 0.0
                row[way] = parse_sysbench(sysbench(binary, test, port, "run", threads, seconds))
                if pid:
                    # the proxy process's CPU per transaction: its cost whatever the
                    # 2 cores left to sysbench and mariadbd allow (mpp's polling included)
                    used = cpu_seconds(pid) - cpu
                    row[way]["proxy_cpu_us_per_tx"] = round(
                        used / max(1.0, row[way]["tps"] * seconds) * 1e6, 1
                    )
            row["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
            row["router_vs_direct"] = round(row["router"]["tps"] / row["direct"]["tps"], 3)
            row["haproxy_vs_direct"] = round(row["haproxy"]["tps"] / row["direct"]["tps"], 3)
            row["router_vs_haproxy"] = round(row["router"]["tps"] / row["haproxy"]["tps"], 3)
            log(
                f"{test:18} {threads:2} thr: direct {row['direct']['tps']:7.0f} tps "
                f"p95 {row['direct']['p95_ms']:5.2f} ms | haproxy {row['haproxy']['tps']:7.0f} "
                f"p95 {row['haproxy']['p95_ms']:5.2f} | router {row['router']['tps']:7.0f} "
                f"p95 {row['router']['p95_ms']:5.2f} | router/direct {row['router_vs_direct']:.2f} "
                f"haproxy/direct {row['haproxy_vs_direct']:.2f} "
                f"router/haproxy {row['router_vs_haproxy']:.2f} | proxy CPU per tx: haproxy "
                f"{row['haproxy']['proxy_cpu_us_per_tx']:.0f} us, router "
                f"{row['router']['proxy_cpu_us_per_tx']:.0f} us (load {row['loadavg_1m_after']})"
                + "".join(
                    f" | {w} {row[w]['tps']:.0f} tps" for w, _ in ways if w.startswith("router_")
                )
            )
            cases.append(row)
    if stack.loop != "uvloop":
        stack.stop_mpp()
        stack.start_mpp("uvloop")
    return cases


# -- connection set-up ------------------------------------------------------------------------


def setup_cost(stack: Stack, count: int) -> dict[str, Any]:
    result: dict[str, Any] = {"count": count}
    for way, port in (("direct", stack.ports["db1"]), ("haproxy", HAPROXY_PORT), ("router", RW)):
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            conn = mysql(port)
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
            samples.append((time.perf_counter() - started) * 1000)
            conn.close()
        samples.sort()
        result[way] = {
            "p50_ms": round(statistics.median(samples), 3),
            "p95_ms": round(samples[int(0.95 * len(samples)) - 1], 3),
        }
    result["router_overhead_p50_ms"] = round(
        result["router"]["p50_ms"] - result["direct"]["p50_ms"], 3
    )
    result["haproxy_overhead_p50_ms"] = round(
        result["haproxy"]["p50_ms"] - result["direct"]["p50_ms"], 3
    )
    log(
        f"connect+SELECT 1 p50: direct {result['direct']['p50_ms']:.3f} ms, haproxy "
        f"{result['haproxy']['p50_ms']:.3f} ms, router {result['router']['p50_ms']:.3f} ms; "
        f"router overhead {result['router_overhead_p50_ms']:.3f} ms, haproxy overhead "
        f"{result['haproxy_overhead_p50_ms']:.3f} ms"
    )
    return result


# -- failover through the router --------------------------------------------------------------


class Writer(threading.Thread):
    """Inserts every 5 ms; `first_after(t)` is its first acknowledged write after t."""

    def __init__(self, name: str, ports: Callable[[], list[int]], base_id: int) -> None:
        super().__init__(daemon=True)
        self.label = name
        self.ports = ports
        self.next_id = base_id
        self.acked: list[tuple[float, int]] = []  # (time, port)
        self.stop = threading.Event()

    def run(self) -> None:
        conn: Any = None
        while not self.stop.is_set():
            for port in self.ports():
                try:
                    if conn is None:
                        conn = mysql(port, timeout=0.5 if port != RW else 10.0)
                        conn.port_used = port
                    with conn.cursor() as cur:
                        cur.execute("INSERT INTO bench_w (id) VALUES (%s)", (self.next_id,))
                    self.acked.append((time.monotonic(), conn.port_used))
                    self.next_id += 1
                    break
                except pymysql.MySQLError:
                    with contextlib.suppress(Exception):
                        if conn is not None:
                            conn.close()
                    conn = None
            self.stop.wait(0.005)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def first_after(self, at: float) -> float | None:
        return next((t - at for t, _ in self.acked if t > at), None)


def failover_once(d: Path) -> dict[str, Any]:
    stack = Stack(d, interval=FAILOVER_INTERVAL, timeout=FAILOVER_INTERVAL)
    try:
        stack.start_mpp()
        conn = mysql(RW)
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE bench_w (id BIGINT PRIMARY KEY)")
        conn.close()
        replicas = [stack.ports["db2"], stack.ports["db3"]]
        servers = conditions(d)
        through = Writer("router", lambda: [RW], 1)
        direct = Writer("direct", lambda: replicas, 1_000_000_000)
        wait_for("the table on the replicas", lambda: all(has_table(p) for p in replicas), 30)
        through.start()
        time.sleep(1.0)
        killed = time.monotonic()
        sandbox.stop_node(d, "db1", signal.SIGKILL)
        direct.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if through.first_after(killed) is not None and direct.first_after(killed) is not None:
                break
            time.sleep(0.05)
        time.sleep(0.5)
        through.stop.set()
        direct.stop.set()
        through.join(15)
        direct.join(15)
        router_rto = through.first_after(killed)
        direct_rto = direct.first_after(killed)
        result: dict[str, Any] = {
            "router_rto_s": None if router_rto is None else round(router_rto, 3),
            "direct_rto_s": None if direct_rto is None else round(direct_rto, 3),
            "conditions": {
                "interval": FAILOVER_INTERVAL,
                "connect_timeout": FAILOVER_INTERVAL,
                **servers,
            },
        }
        if router_rto is not None and direct_rto is not None:
            result["difference_s"] = round(router_rto - direct_rto, 3)
        log(
            f"failover (kill -9): client RTO through the router {result['router_rto_s']} s, "
            f"directly on the new primary {result['direct_rto_s']} s; conditions: interval and "
            f"connect_timeout {FAILOVER_INTERVAL}, {describe_servers(servers)}"
        )
        return result
    finally:
        stack.close()


def has_table(port: int) -> bool:
    try:
        conn = mysql(port, user="root")
    except pymysql.MySQLError:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES LIKE 'bench_w'")
            return cur.fetchone() is not None
    finally:
        conn.close()


# -- forwarding styles ----------------------------------------------------------------------


ECHO, FRONT = 27530, 27531
FORWARDING_CONDITIONS = (
    "uvloop echo server, one proxy process per way, 4 blocking clients x 5000 100-byte "
    "round trips, a 300 MB bulk copy"
)


def _echo_server() -> None:
    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: Any = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)

    async def main() -> None:
        await asyncio.get_running_loop().create_server(Echo, HOST, ECHO)
        await asyncio.sleep(3600)

    _run(main(), "uvloop")


def _run(coro: Any, loop: str) -> None:
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(coro)
    else:
        asyncio.run(coro)


TASKS: set[asyncio.Future[None]] = set()  # keeps the proxies' tasks referenced


def _spawn(coro: Any) -> None:
    task = asyncio.ensure_future(coro)
    TASKS.add(task)
    task.add_done_callback(TASKS.discard)


def _protocol_proxy() -> Any:
    class Half(asyncio.Protocol):
        def __init__(self, peer: Any = None) -> None:
            self.peer = peer
            self.transport: Any = None
            self.early = b""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            if self.peer is None or self.peer.transport is None:
                self.early += data
                return
            self.peer.transport.write(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.peer is not None and self.peer.transport is not None:
                self.peer.transport.close()

    class Front(Half):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            _spawn(self.link())

        async def link(self) -> None:
            loop = asyncio.get_running_loop()
            _, back = await loop.create_connection(lambda: Half(self), HOST, ECHO)
            self.peer = back
            if self.early:
                back.transport.write(self.early)

    async def main() -> None:
        await asyncio.get_running_loop().create_server(Front, HOST, FRONT)
        await asyncio.sleep(3600)

    return main()


def _socket_proxy() -> Any:
    async def pump(a: socket.socket, b: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        buf = bytearray(65536)
        view = memoryview(buf)
        try:
            while n := await loop.sock_recv_into(a, buf):
                await loop.sock_sendall(b, view[:n])
        except OSError:
            pass
        finally:
            # pass the end on, but leave closing to handle(): closing a socket the other
            # pump still waits on frees its fd while asyncio's selector has it registered,
            # the next connection gets that fd and its registration fails (the run hung)
            with contextlib.suppress(OSError):
                b.shutdown(socket.SHUT_WR)

    async def handle(client: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        server = socket.socket()
        server.setblocking(False)
        server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await loop.sock_connect(server, (HOST, ECHO))
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.gather(pump(client, server), pump(server, client))
        finally:
            client.close()
            server.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, FRONT))
        listener.listen(100)
        listener.setblocking(False)
        while True:
            client, _ = await loop.sock_accept(listener)
            client.setblocking(False)
            _spawn(handle(client))

    return main()


def _proxy(kind: str, loop: str) -> None:
    _run(_protocol_proxy() if kind == "protocol" else _socket_proxy(), loop)


def _ping_pong(port: int, rounds: int, clients: int) -> float:
    """Round trips per second of `clients` blocking clients sending 100-byte messages."""

    def one() -> None:
        with socket.create_connection((HOST, port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(rounds):
                s.sendall(b"x" * 100)
                got = 0
                while got < 100:
                    got += len(s.recv(4096))

    threads = [threading.Thread(target=one) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return rounds * clients / (time.perf_counter() - started)


def _bulk(port: int, megabytes: int) -> float:
    with socket.create_connection((HOST, port)) as s:
        data = b"y" * (1 << 20)

        def write() -> None:
            for _ in range(megabytes):
                s.sendall(data)

        t = threading.Thread(target=write)
        started = time.perf_counter()
        t.start()
        got = 0
        while got < megabytes << 20:
            got += len(s.recv(1 << 20))
        t.join()
        return megabytes / (time.perf_counter() - started)


def forwarding() -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    echo = ctx.Process(target=_echo_server, daemon=True)
    echo.start()
    time.sleep(1.0)
    rows = [{"way": "direct", "round_trips_per_s": round(_ping_pong(ECHO, 5000, 4))}]
    for kind in ("protocol", "socket"):
        for loop in ("asyncio", "uvloop"):
            proxy = ctx.Process(target=_proxy, args=(kind, loop), daemon=True)
            proxy.start()
            time.sleep(1.0)
            row = {
                "way": f"{kind}/{loop}",
                "round_trips_per_s": round(_ping_pong(FRONT, 5000, 4)),
                "bulk_mb_per_s": round(_bulk(FRONT, 300)),
            }
            proxy.kill()
            proxy.join()
            rows.append(row)
            time.sleep(0.3)
    echo.kill()
    for row in rows:
        log(
            f"forwarding {row['way']:18} {row['round_trips_per_s']:7} round trips/s"
            + (f", bulk {row['bulk_mb_per_s']} MB/s" if "bulk_mb_per_s" in row else "")
        )
    return rows


# -- main --------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """The shared machine description plus the proxy's version (bench/conditions.py)."""
    out = subprocess.run([HAPROXY, "-v"], capture_output=True, text=True).stdout
    return {**host_machine(), "haproxy": out.splitlines()[0] if out else "not installed"}


def throughput_conditions(
    binary: str, seconds: int, loops: list[str], tests: list[str], threads: list[int]
) -> dict[str, Any]:
    """What decides the sysbench and connection figures besides the machine."""
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return {
        "sysbench": version.strip(),
        "sysbench_tests": tests,
        "sysbench_threads": threads,
        "seconds_per_run": seconds,
        "table": "1 table x 10k rows, app user, TLS off",
        "router_event_loops": loops,
        "mpp_interval": "1s (polling while it routes; its CPU counts in the router's)",
        "haproxy_mode": "tcp, 1 server (db1), Debian defaults (nbthread = cores)",
        "everything_on_the_same_cores": "sysbench, 3 mariadbd, the proxy, mpp",
    }


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="mpp-bench-router-"))
    try:
        yield d
    finally:
        if not keep:
            shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=30, help="per sysbench run (default 30)")
    parser.add_argument("--tests", default=",".join(TESTS), help="sysbench tests, comma-separated")
    parser.add_argument(
        "--threads", default=",".join(map(str, THREADS)), help="thread counts, comma-separated"
    )
    parser.add_argument("--connects", type=int, default=500, help="connection set-up samples")
    parser.add_argument("--failovers", type=int, default=3, help="failover runs (0: none)")
    parser.add_argument(
        "--compare-loops",
        action="store_true",
        help="also run the router on asyncio's loop (MPP_EVENT_LOOP=asyncio)",
    )
    parser.add_argument("--forwarding", action="store_true", help="only the forwarding styles")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    host = machine()
    if args.forwarding:
        rows = forwarding()
        doc = {"machine": finish(host), "conditions": FORWARDING_CONDITIONS, "forwarding": rows}
        print(json.dumps(doc, indent=2))
        log("forwarding" + describe(FORWARDING_CONDITIONS, host))
        return
    binary = ensure_sysbench()
    report: dict[str, Any] = {"machine": host}
    with workdir(args.keep) as d:
        stack = Stack(d / "throughput")
        try:
            stack.start_mpp()
            stack.start_haproxy()
            loops = ["uvloop", "asyncio"] if args.compare_loops else ["uvloop"]
            tests = [t for t in args.tests.split(",") if t]
            threads = [int(t) for t in args.threads.split(",") if t]
            report["conditions"] = throughput_conditions(
                binary, args.seconds, loops, tests, threads
            )
            report["sysbench"] = throughput(binary, stack, args.seconds, loops, tests, threads)
            report["connection_setup"] = setup_cost(stack, args.connects)
        finally:
            stack.close()
        report["failover"] = [failover_once(d / f"failover{i}") for i in range(args.failovers)]
    finish(host)
    print(json.dumps(report, indent=2))
    c = report["conditions"]
    log(
        "router, sysbench and connection set-up above"
        + describe(
            f"{c['sysbench']}, {c['table']}, {c['seconds_per_run']} s per run, router on "
            f"{'/'.join(c['router_event_loops'])} with mpp polling every 1 s, "
            f"{host['haproxy'].split(' - ')[0]} ({c['haproxy_mode']}), all on the same cores",
            host,
        )
    )


if __name__ == "__main__":
    main()
