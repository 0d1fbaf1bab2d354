"""A real HAProxy in front of a 3-node sandbox, steered by a real `mpp run`.

HAProxy (Debian's 2.6, started here on loopback) has one frontend per way of asking mpp:
`option httpchk` against the API's check endpoint (`uri-lf` names the server, so one
backend serves every node) and `agent-check` against the agent port; a third frontend
routes reads by the `ro` role. Which node a new connection reaches is read from
`@@server_id` (db1 is 1, db2 is 2, db3 is 3).

Ports: sandbox 26400-26402, API 26500, agent 26501, HAProxy 26510-26513.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mpp import sandbox
from tests.conftest import Cluster

pytestmark = pytest.mark.integration

HAPROXY = "/usr/sbin/haproxy"
API, AGENT = 26500, 26501
RW_HTTP, RW_AGENT, RO_AGENT, STATS = 26510, 26511, 26512, 26513
TOKEN = "integration-token-0123456789abcdef"
NODES = {"db1": 26400, "db2": 26401, "db3": 26402}


def _servers(extra: Callable[[str], str]) -> str:
    return "\n".join(
        f"    server {name} 127.0.0.1:{port} {extra(name)}" for name, port in NODES.items()
    )


def _agent(role: str) -> Callable[[str], str]:
    # agent-send is what tells mpp's agent port which node and role HAProxy asks about
    newline = "\\n"
    options = f"check agent-check agent-port {AGENT} agent-inter 200ms"
    return lambda n: f'{options} agent-send "main/{n}/{role}{newline}"'


def haproxy_config() -> str:
    rw_http = _servers(lambda n: f"check port {API}")
    rw_agent = _servers(_agent("rw"))
    ro_agent = _servers(_agent("ro"))
    return f"""
global
    maxconn 500
defaults
    mode tcp
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 1s
    default-server inter 200ms rise 1 fall 1

frontend rw_http
    bind 127.0.0.1:{RW_HTTP}
    default_backend rw_http
backend rw_http
    option httpchk
    http-check send meth GET uri-lf /v1/check/main/%[srv_name]/rw ver HTTP/1.1 hdr Host mpp
    http-check expect status 200
{rw_http}

frontend rw_agent
    bind 127.0.0.1:{RW_AGENT}
    default_backend rw_agent
backend rw_agent
{rw_agent}

frontend ro_agent
    bind 127.0.0.1:{RO_AGENT}
    default_backend ro_agent
backend ro_agent
{ro_agent}

listen stats
    bind 127.0.0.1:{STATS}
    mode http
    stats enable
    stats uri /
"""


def routes_to(port: int, expected: set[int], timeout: float = 15.0) -> list[int | None]:
    """Wait until 6 new connections in a row reach only `expected`; return the last ones."""
    deadline = time.monotonic() + timeout
    seen: list[int | None] = []
    while time.monotonic() < deadline:
        seen = [sandbox.server_id_at(port, timeout=1) for _ in range(6)]
        if all(s in expected for s in seen):
            return seen
        time.sleep(0.1)
    stats = http(f"http://127.0.0.1:{STATS}/;csv")[1]
    raise AssertionError(f"port {port} still routes to {seen}, not {expected}\n{stats}")


def http(url: str, method: str = "GET", token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError as err:
        return 0, str(err)


def api(path: str, **kw: str) -> tuple[int, str]:
    return http(f"http://127.0.0.1:{API}{path}", **kw)


def metric(text: str, series: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_for(what: str, check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def mpp(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mpp", "--config", str(cluster.config_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def node_state(node: str) -> str:
    status, body = api(f"/v1/pools/main/nodes/{node}")
    return json.loads(body)["state"] if status == 200 else "?"


@pytest.fixture
def stack(make_cluster: Callable[..., Cluster], tmp_path: Path) -> Iterator[tuple[Cluster, Path]]:
    """The sandbox, `mpp run` with [api] and [agent], and HAProxy; all stopped after."""
    if not Path(HAPROXY).exists():
        pytest.fail("haproxy is not installed: run `make test`, which installs it")
    for port in (API, AGENT, RW_HTTP, RW_AGENT, RO_AGENT, STATS):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                pytest.fail(f"port {port} is in use; this test needs 26500-26513 free")
    cluster = make_cluster(26400)
    token_file = tmp_path / "api.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    with cluster.config_path.open("a") as f:
        f.write(
            f'\n[api]\nlisten = "127.0.0.1:{API}"\ntoken_file = "{token_file}"\n'
            f'\n[agent]\nlisten = "127.0.0.1:{AGENT}"\n'
        )
    log = tmp_path / "mpp-run.log"
    with log.open("w") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "mpp", "--config", str(cluster.config_path), "run", "--no-live"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
        )
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy_config())
    checked = subprocess.run([HAPROXY, "-c", "-q", "-f", str(cfg)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    with (tmp_path / "haproxy.log").open("w") as out:
        proxy = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=out, stderr=out)
    try:
        wait_for("mpp's API to report a healthy loop", lambda: api("/v1/health")[0] == 200)
        yield cluster, log
    finally:
        proxy.kill()
        proxy.wait(10)
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(20)
        assert code == 0, f"mpp run exited {code}:\n{log.read_text()[-3000:]}"


def test_haproxy_follows_a_failover_and_ro_falls_back(stack: tuple[Cluster, Path]) -> None:
    cluster, log = stack
    # db1 is ACTIVE: both rw frontends reach it, reads go to the standbys
    routes_to(RW_HTTP, {1})
    routes_to(RW_AGENT, {1})
    routes_to(RO_AGENT, {2, 3})
    metrics = api("/metrics")[1]
    assert metric(metrics, 'mpp_node_state{node="db1",pool="main",state="ACTIVE"}') == 1
    assert metric(metrics, 'mpp_failovers_total{pool="main"}') == 0
    assert metric(metrics, 'mpp_poll_cycle_seconds{pool="main"}') is not None
    out = mpp(cluster, "check", "db1", "--role", "rw")
    assert (out.returncode, out.stdout) == (0, "UP db1 is ACTIVE\n"), out

    # an operator fails db1 through the CLI: the daemon picks the new state up, HAProxy follows
    out = mpp(cluster, "fail", "db1")
    assert out.returncode == 0 and "db2: STANDBY -> ACTIVE" in out.stdout, out
    routes_to(RW_HTTP, {2})
    routes_to(RW_AGENT, {2})
    routes_to(RO_AGENT, {3})
    metrics = api("/metrics")[1]
    assert metric(metrics, 'mpp_node_state{node="db2",pool="main",state="ACTIVE"}') == 1
    assert metric(metrics, 'mpp_node_state{node="db1",pool="main",state="FAILED_ONLINE"}') == 1
    assert metric(metrics, 'mpp_failovers_total{pool="main"}') == 1
    out = mpp(cluster, "check", "db1", "--role", "rw", "--source", "store")
    assert out.returncode == 1 and out.stdout.startswith("DOWN db1 is FAILED_ONLINE"), out

    # every STANDBY gone (db1 failed by hand, db3 killed): ro falls back to the ACTIVE node
    cluster.kill("db3")
    wait_for("db3 to fail", lambda: node_state("db3") == "FAILED_OFFLINE")
    status, body = api("/v1/check/main/db2/ro")
    assert (status, body) == (200, "UP db2 is ACTIVE and no STANDBY can serve reads (fallback)\n")
    assert api("/v1/check/main/db3/ro")[0] == 503
    routes_to(RO_AGENT, {2})
    out = mpp(cluster, "check", "db2", "--role", "ro")
    assert out.returncode == 0 and "fallback" in out.stdout, out

    # the API's own commands: token checked, state changed at once, HAProxy follows.
    # A recovered db1 is STANDBY, then takes ACTIVE back (announced one cycle ahead)
    assert api("/v1/pools/main/nodes/db1/recover", method="POST")[0] == 401
    assert api("/v1/pools/main/nodes/db1/recover", method="POST", token="nope")[0] == 403
    status, body = api("/v1/pools/main/nodes/db1/recover", method="POST", token=TOKEN)
    assert status == 200, body
    wait_for("db1 to be reinstated", lambda: node_state("db1") == "ACTIVE")
    routes_to(RW_HTTP, {1})
    routes_to(RW_AGENT, {1})
    routes_to(RO_AGENT, {2})
    assert metric(api("/metrics")[1], 'mpp_failovers_total{pool="main"}') == 1, "no failover"
    status, body = api("/v1/pools/main/nodes/db1/fail", method="POST", token=TOKEN)
    assert status == 200 and '"new":"ACTIVE"' in body.replace(" ", ""), body
    assert api("/v1/check/main/db2/rw")[0] == 200, "the Hub has the command's state at once"
    routes_to(RW_HTTP, {2})
    routes_to(RW_AGENT, {2})
    routes_to(RO_AGENT, {2})
    assert metric(api("/metrics")[1], 'mpp_failovers_total{pool="main"}') == 2

    history = json.loads(api("/v1/history?pool=main&limit=500")[1])
    assert ("db2", "STANDBY", "ACTIVE") in [(e["node"], e["old"], e["new"]) for e in history]
    text = log.read_text()
    assert "agent-check listening on 127.0.0.1:26501" in text
    assert TOKEN not in text, "the API token never reaches the log"
