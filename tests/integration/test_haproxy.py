"""A real HAProxy in front of a 3-node sandbox, steered by a real `mpp run`.

HAProxy (Debian's 2.6, started here on loopback) has one frontend per way of asking mpp:
`option httpchk` against the API's check endpoint (`uri-lf` names the server, so one
backend serves every node) and `agent-check` against the agent port; a third frontend
routes reads by the `ro` role. Which node a new connection reaches is read from
`@@server_id` (db1 is 1, db2 is 2, db3 is 3).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mpp import sandbox
from mpp.faults import wait_for
from tests.conftest import Cluster
from tests.daemons import MppRun
from tests.ports import Ports
from tests.probes import http, metric, routes_to

pytestmark = pytest.mark.integration

HAPROXY = "/usr/sbin/haproxy"
TOKEN = "integration-token-0123456789abcdef"


@dataclass(frozen=True)
class Stack:
    """The sandbox, `mpp run` (its API and agent ports) and HAProxy's frontends."""

    cluster: Cluster
    log: Path
    api_port: int
    agent: int
    rw_http: int
    rw_agent: int
    ro_agent: int
    stats: int

    def api(self, path: str, **kw: str) -> tuple[int, str]:
        return http(f"http://127.0.0.1:{self.api_port}{path}", **kw)

    def node_state(self, node: str) -> str:
        status, body = self.api(f"/v1/pools/main/nodes/{node}")
        return json.loads(body)["state"] if status == 200 else "?"

    def routes_to(self, port: int, expected: set[int]) -> None:
        """Wait until 6 new connections in a row reach only `expected`."""

        def stats() -> str:
            return http(f"http://127.0.0.1:{self.stats}/;csv")[1]

        routes_to(port, expected, tries=6, timeout=15, connect_timeout=1, explain=stats)


def haproxy_config(stack: Stack) -> str:
    nodes = {n.name: n.port for n in sandbox.status(stack.cluster.dir)}

    def servers(extra: Callable[[str], str]) -> str:
        return "\n".join(
            f"    server {name} 127.0.0.1:{port} {extra(name)}" for name, port in nodes.items()
        )

    def agent(role: str) -> Callable[[str], str]:
        # agent-send is what tells mpp's agent port which node and role HAProxy asks about
        newline = "\\n"
        options = f"check agent-check agent-port {stack.agent} agent-inter 200ms"
        return lambda n: f'{options} agent-send "main/{n}/{role}{newline}"'

    rw_http = servers(lambda n: f"check port {stack.api_port}")
    rw_agent = servers(agent("rw"))
    ro_agent = servers(agent("ro"))
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
    bind 127.0.0.1:{stack.rw_http}
    default_backend rw_http
backend rw_http
    option httpchk
    http-check send meth GET uri-lf /v1/check/main/%[srv_name]/rw ver HTTP/1.1 hdr Host mpp
    http-check expect status 200
{rw_http}

frontend rw_agent
    bind 127.0.0.1:{stack.rw_agent}
    default_backend rw_agent
backend rw_agent
{rw_agent}

frontend ro_agent
    bind 127.0.0.1:{stack.ro_agent}
    default_backend ro_agent
backend ro_agent
{ro_agent}

listen stats
    bind 127.0.0.1:{stack.stats}
    mode http
    stats enable
    stats uri /
"""


@pytest.fixture
def stack(make_cluster: Callable[..., Cluster], tmp_path: Path, ports: Ports) -> Iterator[Stack]:
    """The sandbox, `mpp run` with [api] and [agent], and HAProxy; all stopped after."""
    if not Path(HAPROXY).exists():
        pytest.fail("haproxy is not installed: run `make test`, which installs it")
    api_port, agent = ports.port(), ports.port()
    token_file = tmp_path / "api.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    cluster = make_cluster(
        api={"listen": f"127.0.0.1:{api_port}", "token_file": str(token_file)},
        agent={"listen": f"127.0.0.1:{agent}"},
    )
    front = ports.block(4)  # rw_http, rw_agent, ro_agent, stats
    made = Stack(cluster, tmp_path / "mpp-run.log", api_port, agent, *range(front, front + 4))
    daemon = MppRun(cluster.config_path, made.log)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy_config(made))
    checked = subprocess.run([HAPROXY, "-c", "-q", "-f", str(cfg)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    with (tmp_path / "haproxy.log").open("w") as out:
        proxy = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=out, stderr=out)
    try:
        wait_for("mpp's API to report a healthy loop", lambda: made.api("/v1/health")[0] == 200)
        yield made
    finally:
        proxy.kill()
        proxy.wait(10)
        daemon.stop()


def test_haproxy_follows_a_failover_and_ro_falls_back(stack: Stack) -> None:
    cluster, api, routes_to = stack.cluster, stack.api, stack.routes_to
    rw_http, rw_agent, ro_agent = stack.rw_http, stack.rw_agent, stack.ro_agent
    # db1 is ACTIVE: both rw frontends reach it, reads go to the standbys
    routes_to(rw_http, {1})
    routes_to(rw_agent, {1})
    routes_to(ro_agent, {2, 3})
    metrics = api("/metrics")[1]
    assert metric(metrics, 'mpp_node_state{node="db1",pool="main",state="ACTIVE"}') == 1
    assert metric(metrics, 'mpp_failovers_total{pool="main"}') == 0
    assert metric(metrics, 'mpp_poll_cycle_seconds{pool="main"}') is not None
    out = cluster.cli("check", "db1", "--role", "rw")
    assert (out.returncode, out.stdout) == (0, "UP db1 is ACTIVE\n"), out

    # an operator fails db1 through the CLI: the daemon picks the new state up, HAProxy follows
    out = cluster.cli("fail", "db1")
    assert out.returncode == 0 and "db2: STANDBY -> ACTIVE" in out.stdout, out
    routes_to(rw_http, {2})
    routes_to(rw_agent, {2})
    routes_to(ro_agent, {3})
    metrics = api("/metrics")[1]
    assert metric(metrics, 'mpp_node_state{node="db2",pool="main",state="ACTIVE"}') == 1
    assert metric(metrics, 'mpp_node_state{node="db1",pool="main",state="FAILED_ONLINE"}') == 1
    assert metric(metrics, 'mpp_failovers_total{pool="main"}') == 1
    out = cluster.cli("check", "db1", "--role", "rw", "--source", "store")
    assert out.returncode == 1 and out.stdout.startswith("DOWN db1 is FAILED_ONLINE"), out

    # every STANDBY gone (db1 failed by hand, db3 killed): ro falls back to the ACTIVE node
    cluster.kill("db3")
    wait_for("db3 to fail", lambda: stack.node_state("db3") == "FAILED_OFFLINE")
    status, body = api("/v1/check/main/db2/ro")
    assert (status, body) == (200, "UP db2 is ACTIVE and no STANDBY can serve reads (fallback)\n")
    assert api("/v1/check/main/db3/ro")[0] == 503
    routes_to(ro_agent, {2})
    out = cluster.cli("check", "db2", "--role", "ro")
    assert out.returncode == 0 and "fallback" in out.stdout, out

    # the API's own commands: token checked, state changed at once, HAProxy follows.
    # A recovered db1 is STANDBY, then takes ACTIVE back (announced one cycle ahead)
    assert api("/v1/pools/main/nodes/db1/recover", method="POST")[0] == 401
    assert api("/v1/pools/main/nodes/db1/recover", method="POST", token="nope")[0] == 403
    status, body = api("/v1/pools/main/nodes/db1/recover", method="POST", token=TOKEN)
    assert status == 200, body
    wait_for("db1 to be reinstated", lambda: stack.node_state("db1") == "ACTIVE")
    routes_to(rw_http, {1})
    routes_to(rw_agent, {1})
    routes_to(ro_agent, {2})
    assert metric(api("/metrics")[1], 'mpp_failovers_total{pool="main"}') == 1, "no failover"
    status, body = api("/v1/pools/main/nodes/db1/fail", method="POST", token=TOKEN)
    assert status == 200 and '"new":"ACTIVE"' in body.replace(" ", ""), body
    assert api("/v1/check/main/db2/rw")[0] == 200, "the Hub has the command's state at once"
    routes_to(rw_http, {2})
    routes_to(rw_agent, {2})
    routes_to(ro_agent, {2})
    assert metric(api("/metrics")[1], 'mpp_failovers_total{pool="main"}') == 2

    history = json.loads(api("/v1/history?pool=main&limit=500")[1])
    assert ("db2", "STANDBY", "ACTIVE") in [(e["node"], e["old"], e["new"]) for e in history]
    text = stack.log.read_text()
    assert f"agent-check listening on 127.0.0.1:{stack.agent}" in text
    assert TOKEN not in text, "the API token never reaches the log"
