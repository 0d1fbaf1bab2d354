"""Load-balancer check throughput: the HTTP check endpoint and the agent-check port.

A server process runs what `mpp run` runs for the checks (the API under uvicorn and the
agent listener, in one asyncio loop, answering from a Hub filled with a 3-node pool), plus
two baselines in the same process and loop: a static endpoint of the same FastAPI app (the
framework's floor) and a bare asyncio line server (the agent's floor: same connect, read a
line, reply, close, without mpp's logic). The load generator is this process: C concurrent
clients for D seconds per target, closed loop (each client sends its next request when the
previous answer is in). HTTP clients keep their connection alive like F5 monitors and most
pollers; a second HTTP run opens a connection per request like HAProxy's httpchk. Agent
clients connect per request, as HAProxy does.

On a 2-core machine the generator and the server each get about one core: the generator is
Python too, so the figures are a floor for the server, not its ceiling.

Prints one JSON document and one human line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastapi.responses import PlainTextResponse  # noqa: E402

from bench.conditions import describe, finish, machine, package_version  # noqa: E402
from bench.stats import pct  # noqa: E402
from mpp.config import Config, parse  # noqa: E402
from mpp.model import NodeState, PoolState, State  # noqa: E402
from mpp.publish.api import create_app, serve  # noqa: E402
from mpp.publish.haproxy_agent import Agent  # noqa: E402
from mpp.publish.hub import Hub  # noqa: E402
from mpp.publish.listen import bind  # noqa: E402
from mpp.publish.metrics import Metrics  # noqa: E402
from mpp.run import eventloop  # noqa: E402


def bench_config(d: Path, api_port: int, agent_port: int) -> Config:
    raw: dict[str, Any] = {
        "mpp": {"state": f"sqlite://{d / 'state.db'}"},
        "api": {"listen": f"127.0.0.1:{api_port}"},
        "agent": {"listen": f"127.0.0.1:{agent_port}"},
        "pool": [
            {
                "name": "main",
                "password_env": "MPP_BENCH_UNUSED",
                "node": [
                    {"name": "db1", "address": "127.0.0.1:1", "type": "primary"},
                    {"name": "db2", "address": "127.0.0.1:2"},
                    {"name": "db3", "address": "127.0.0.1:3"},
                ],
            }
        ],
    }
    return parse(raw, d / "mpp.toml")


def bench_state() -> PoolState:
    return PoolState(
        "main",
        (
            NodeState("db1", State.ACTIVE, lag=0, reachable=True, latency_ms=0.4),
            NodeState("db2", State.STANDBY, lag=0, reachable=True, latency_ms=0.4),
            NodeState("db3", State.STANDBY, lag=3, reachable=True, latency_ms=0.4),
        ),
        cycle=100,
        updated_at=time.time(),
    )


def _with_raw_static(app: Any) -> Any:
    """The server's floor: a constant answer in front of the whole app, no framework."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/bench/raw":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"3")],
                }
            )
            await send({"type": "http.response.body", "body": b"UP\n"})
            return
        await app(scope, receive, send)

    return wrapped


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readline()
    writer.write(b"up\n")
    await writer.drain()
    writer.close()


def server_main(ports: tuple[int, int, int], ready: Any) -> None:
    """The server process: API + agent + the agent's bare baseline, one loop, one core."""
    api_port, agent_port, echo_port = ports
    with tempfile.TemporaryDirectory(prefix="mpp-bench-") as tmp:
        config = bench_config(Path(tmp), api_port, agent_port)
        hub = Hub(config, {"main": bench_state()})
        metrics = Metrics(config, hub.states)
        app = create_app(config, hub, metrics)

        async def static() -> PlainTextResponse:
            return PlainTextResponse("UP\n")

        app.add_api_route("/bench/static", static, include_in_schema=False)

        async def main() -> None:
            stop = asyncio.Event()
            api_sock = bind(f"127.0.0.1:{api_port}", "[api]")
            agent_sock = bind(f"127.0.0.1:{agent_port}", "[agent]")
            echo = await asyncio.start_server(_echo, "127.0.0.1", echo_port, backlog=1024)
            tasks = [
                asyncio.create_task(serve(_with_raw_static(app), api_sock, stop)),
                asyncio.create_task(Agent(config, hub).serve(agent_sock, stop)),
            ]
            await asyncio.sleep(0.3)
            ready.set()
            await asyncio.gather(*tasks)
            echo.close()

        eventloop.run(main())  # the loop `mpp run` would use (MPP_EVENT_LOOP overrides)


# -- load generator ---------------------------------------------------------------------------


def _request(path: str, keep_alive: bool) -> bytes:
    conn = "keep-alive" if keep_alive else "close"
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: {conn}\r\n\r\n".encode()


async def _connect(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def _read_http(sock: socket.socket) -> int:
    """One response; raw socket calls, because the generator's own cost caps the figures."""
    loop = asyncio.get_running_loop()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await loop.sock_recv(sock, 65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    while len(body) < length:
        body += await loop.sock_recv(sock, 65536)
    return int(head[9:12])


async def http_client(
    port: int, path: str, keep_alive: bool, until: float, out: list[float], codes: dict[Any, int]
) -> None:
    loop = asyncio.get_running_loop()
    req = _request(path, keep_alive)
    sock: socket.socket | None = None
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        if sock is None:
            sock = await _connect(port)
        await loop.sock_sendall(sock, req)
        status = await _read_http(sock)
        out.append(time.perf_counter() - t0)
        codes[status] = codes.get(status, 0) + 1
        if not keep_alive:
            sock.close()
            sock = None
    if sock is not None:
        sock.close()


async def agent_client(
    port: int, send: bytes, until: float, out: list[float], codes: dict[Any, int]
) -> None:
    loop = asyncio.get_running_loop()
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        sock = await _connect(port)
        await loop.sock_sendall(sock, send)
        line = b""
        while not line.endswith(b"\n"):
            chunk = await loop.sock_recv(sock, 1024)
            if not chunk:
                break
            line += chunk
        sock.close()
        out.append(time.perf_counter() - t0)
        word = line.split(b" ", 1)[0].strip().decode()
        codes[word] = codes.get(word, 0) + 1


def _cpu_seconds(pid: int | None) -> float:
    """The server process's user + system CPU time, to tell a busy server from a slow client."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(
    kind: str, port: int, target: str, keep_alive: bool, seconds: float, clients: int
) -> dict[str, Any]:
    latencies: list[float] = []
    codes: dict[Any, int] = {}
    # a short warm-up so the first connections and imports are not measured
    warm = time.perf_counter() + 0.3
    warm_latencies: list[float] = []
    if kind == "http":
        await asyncio.gather(
            *(
                http_client(port, target, keep_alive, warm, warm_latencies, {})
                for _ in range(clients)
            )
        )
    else:
        await asyncio.gather(
            *(agent_client(port, target.encode(), warm, warm_latencies, {}) for _ in range(clients))
        )
    started = time.perf_counter()
    until = started + seconds
    if kind == "http":
        await asyncio.gather(
            *(
                http_client(port, target, keep_alive, until, latencies, codes)
                for _ in range(clients)
            )
        )
    else:
        await asyncio.gather(
            *(agent_client(port, target.encode(), until, latencies, codes) for _ in range(clients))
        )
    elapsed = time.perf_counter() - started
    return {
        "warmup_requests": len(warm_latencies),
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed),
        "p50_ms": round(pct(latencies, 0.50) * 1000, 3),
        "p99_ms": round(pct(latencies, 0.99) * 1000, 3),
        "max_ms": round(max(latencies) * 1000, 3),
        "answers": {str(k): v for k, v in sorted(codes.items(), key=str)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="per target (default 5)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    ap.add_argument("--base-port", type=int, default=26580, help="3 ports from here")
    args = ap.parse_args()
    ports = (args.base_port, args.base_port + 1, args.base_port + 2)
    host = machine()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    server = ctx.Process(target=server_main, args=(ports, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(20):
            raise SystemExit("bench: the server did not start")
        api, agent, echo = ports
        runs: list[tuple[str, str, int, str, bool]] = [
            ("http_check", "http", api, "/v1/check/main/db1/rw", True),
            ("http_raw_asgi_baseline", "http", api, "/bench/raw", True),
            ("http_fastapi_static_baseline", "http", api, "/bench/static", True),
            ("http_check_new_connection", "http", api, "/v1/check/main/db1/rw", False),
            ("http_raw_asgi_new_connection", "http", api, "/bench/raw", False),
            ("agent_check", "agent", agent, "main/db1/rw\n", False),
            ("agent_bare_baseline", "agent", echo, "main/db1/rw\n", False),
        ]
        results: dict[str, Any] = {}
        for name, kind, port, target, keep in runs:
            cpu0, t0 = _cpu_seconds(server.pid), time.perf_counter()
            run = asyncio.run(load(kind, port, target, keep, args.seconds, args.clients))
            cpu = _cpu_seconds(server.pid) - cpu0
            run["server_cpu_percent"] = round(100 * cpu / (time.perf_counter() - t0))
            # the server's own cost, whatever the generator manages: CPU per answered request
            # (warm-up included in both CPU and count) and what one core could answer at that
            per_request = cpu / max(1, run["requests"] + run.pop("warmup_requests"))
            run["server_cpu_us_per_request"] = round(per_request * 1e6, 1)
            run["one_core_capacity_rps"] = round(1 / per_request) if per_request else None
            results[name] = run
    finally:
        server.terminate()
        server.join(5)
    doc: dict[str, Any] = {
        "bench": "checks",
        # what decides the figures: one server process (one event loop, one uvicorn worker)
        # and the generator on the same cores, how many clients, and the server's stack
        "conditions": {
            "server": "1 process: uvicorn (1 worker, httptools) + agent listener, one loop",
            "event_loop": eventloop.chosen(),
            "uvicorn": package_version("uvicorn"),
            "httptools": package_version("httptools"),
            "fastapi": package_version("fastapi"),
            "uvloop": package_version("uvloop"),
            "generator": "1 Python asyncio process on the same machine, closed loop",
            "clients": args.clients,
            "seconds_per_run": args.seconds,
            "machine": finish(host),
        },
        "results": results,
        "ratios": {
            "http_check_vs_raw_asgi": round(
                results["http_check"]["rps"] / results["http_raw_asgi_baseline"]["rps"], 3
            ),
            "http_check_vs_fastapi_static": round(
                results["http_check"]["rps"] / results["http_fastapi_static_baseline"]["rps"], 3
            ),
            "http_check_vs_raw_asgi_new_connection": round(
                results["http_check_new_connection"]["rps"]
                / results["http_raw_asgi_new_connection"]["rps"],
                3,
            ),
            "agent_vs_bare": round(
                results["agent_check"]["rps"] / results["agent_bare_baseline"]["rps"], 3
            ),
        },
    }
    print(json.dumps(doc, indent=2))
    r = results
    c = doc["conditions"]
    print(
        "checks: "
        f"HTTP check {r['http_check']['rps']} req/s p99 {r['http_check']['p99_ms']} ms "
        f"(raw ASGI {r['http_raw_asgi_baseline']['rps']} req/s, ratio "
        f"{doc['ratios']['http_check_vs_raw_asgi']}; FastAPI static "
        f"{r['http_fastapi_static_baseline']['rps']} req/s); "
        f"HTTP new-connection {r['http_check_new_connection']['rps']} req/s p99 "
        f"{r['http_check_new_connection']['p99_ms']} ms; "
        f"agent {r['agent_check']['rps']} req/s p99 {r['agent_check']['p99_ms']} ms "
        f"(bare {r['agent_bare_baseline']['rps']} req/s, ratio {doc['ratios']['agent_vs_bare']}); "
        f"server CPU per request: HTTP check {r['http_check']['server_cpu_us_per_request']} us, "
        f"agent {r['agent_check']['server_cpu_us_per_request']} us"
        + describe(
            f"{c['clients']} clients, {c['seconds_per_run']:g} s per target, 1 server process "
            f"on {c['event_loop']} (uvicorn {c['uvicorn']}, 1 worker, httptools), generator "
            "on the same machine",
            host,
        )
    )


if __name__ == "__main__":
    main()
