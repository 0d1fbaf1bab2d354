"""Secrets stay secret: a real `mpp run` with known, distinctive passwords and token, then
every output mpp produces greped for them.

The monitoring and replication passwords come from mpp's environment (password_env,
repl_password_env), the way a service manager hands them over, so that anything passing
the environment on (a hook) would leak them. The run exercises the paths where secrets
are near: a pool whose login fails, a replica killed mid-run (connection errors), a hook
that times out, wrong tokens on the API, and a switchover (CHANGE MASTER carries the
replication password). Then the log, `mpp status` (table and JSON), `mpp history`, every
API read, /metrics, the dashboard page, the SSE stream, the hooks' environments and the
state store are searched: none may hold a secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest

from mpp import sandbox
from mpp.faults import wait_for
from tests import probes
from tests.builders import write_config
from tests.conftest import Cluster
from tests.daemons import MppRun
from tests.ports import Ports

pytestmark = pytest.mark.integration

MON = "S3cr3t-mon-XYZ"
REPL = "S3cr3t-repl-XYZ"
BAD = "S3cr3t-bad-XYZ"  # the wrong password of the pool whose login fails
TOKEN = "S3cr3t-tok-XYZ-0123456789abcdef"
SECRETS = (MON, REPL, BAD, TOKEN)


def set_passwords(cluster: Cluster) -> None:
    """mpp's and the replication account's passwords, on every node, out of the binlog (the
    nodes replicate from each other): one session per node, so sql_log_bin = 0 holds."""
    for node in ("db1", "db2", "db3"):
        conn = sandbox.admin_connect(cluster.dir, node)
        try:
            with conn.cursor() as cur:
                cur.execute("SET sql_log_bin = 0")
                cur.execute("SELECT user, host FROM mysql.user WHERE user IN ('mpp', 'repl')")
                for user, host in list(cur.fetchall()):
                    password = MON if user == "mpp" else REPL
                    cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, password))
        finally:
            conn.close()


def leaks(where: str, text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [f"{where}: {s}" for s in SECRETS if s.encode() in data]


def test_no_output_holds_a_password_or_the_token(
    make_cluster: Callable[..., Cluster],
    ports: Ports,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = f"127.0.0.1:{ports.port()}"
    cluster = make_cluster(topology="primary-replica", interval="200ms", api={"listen": api})
    set_passwords(cluster)
    (cluster.dir / "api.token").write_text(TOKEN + "\n")
    (cluster.dir / "api.token").chmod(0o600)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    doc: dict[str, Any] = dict(cluster.doc)
    main = {
        k: v for k, v in doc["pool"][0].items() if k not in ("password_file", "repl_password_file")
    }
    main |= {
        "password_env": "MPP_PASSWORD",
        "repl_password_env": "MPP_REPL_PASSWORD",
        "switchover_timeout": "5s",
        "hooks": {
            "pre_switchover": f"env > {hooks}/pre_switchover.env",
            "post_switchover": f"env > {hooks}/post_switchover.env",
            # dumps, then outlives its timeout: the timeout path is logged too
            "on_state_change": f"env > {hooks}/change-$$.env; sleep 3",
            "timeout": "1s",
            "abort_on_failure": True,
        },
    }
    db1 = main["node"][0]["address"]
    failing = {
        "name": "badlogin",
        "user": "mpp",
        "password_env": "MPP_BAD_PASSWORD",
        "node": [{"name": "x1", "address": db1, "type": "primary"}],
    }
    doc["pool"] = [main, failing]
    doc["api"] = {"listen": api, "token_file": "api.token"}
    config = write_config(cluster.dir / "secrets.toml", doc)
    for name, value in [("MPP_PASSWORD", MON), ("MPP_REPL_PASSWORD", REPL)]:
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MPP_BAD_PASSWORD", BAD)
    cluster.config_path = config  # cluster.cli() runs against this config from here on

    outputs: list[tuple[str, str | bytes]] = []
    url = f"http://{api}"
    daemon = MppRun(config, tmp_path / "mpp-run.log")
    try:
        wait_for("the API", lambda: probes.http(url + "/v1/health")[0] == 200, 30)
        wait_for(
            "the failed login to reach the status",
            lambda: (
                "badlogin" in probes.http(url + "/v1/pools")[1]
                and "Access denied" in probes.http(url + "/v1/pools/badlogin")[1]
            ),
            30,
        )
        # wrong tokens, and a token-shaped mistake in a parameter
        for token in (TOKEN[:-1], TOKEN + "x", "nope"):
            code, body = probes.http(url + "/v1/pools/main/acknowledge", "POST", token)
            assert code == 403, body
            outputs.append(("403 answer", body))
        code, body = probes.http(url + f"/v1/check/main/db2/ro?max_lag={TOKEN}")
        assert code == 422
        outputs.append(("422 answer", body))

        # the switchover: CHANGE MASTER ... MASTER_PASSWORD = the replication password
        out = cluster.cli("switchover", "main", "--to", "db2", "--timeout", "5s")
        assert out.returncode == 0, out.stdout + out.stderr
        outputs.append(("mpp switchover", out.stdout + out.stderr))
        wait_for("db1 replicating from db2", lambda: _replicating(cluster, "db1", "db2"), 20)
        wait_for("the post_switchover hook", lambda: (hooks / "post_switchover.env").exists(), 10)

        # a replica killed under mpp: connection errors in the log and the status
        cluster.kill("db3", 9)
        wait_for(
            "db3 to be seen down",
            lambda: '"FAILED_OFFLINE"' in probes.http(url + "/v1/pools/main/nodes/db3")[1],
            20,
        )

        for path in (
            "/",
            "/openapi.json",
            "/v1/pools",
            "/v1/pools/main",
            "/v1/pools/badlogin",
            "/v1/pools/main/nodes/db1",
            "/v1/pools/main/nodes/db3",
            "/v1/pools/badlogin/nodes/x1",
            "/v1/history?limit=10000",
            "/v1/check/main/db2/rw",
            "/v1/check/main/db1/ro",
            "/v1/check/main/rw",
            "/v1/check/badlogin/rw",
            "/v1/health",
            "/metrics",
        ):
            code, body = probes.http(url + path)
            assert code in (200, 503), (path, code, body)
            outputs.append((path, body))
        outputs.append(("/v1/stream", _stream(url + "/v1/stream", events=2)))
        for args in (
            ["status"],
            ["status", "--json"],
            ["history"],
            ["history", "--json"],
            ["check", "main/db2", "--role", "rw"],
            ["recover", "no-such-node"],
        ):
            out = cluster.cli(*args)
            outputs.append((f"mpp {' '.join(args)}", out.stdout + out.stderr))
        assert "Access denied" in dict(outputs)["mpp status"], "the failed login is shown"
    finally:
        log = daemon.stop()
    outputs.append(("mpp run log", log))
    assert "hook on_state_change timed out" in log
    assert "Access denied for user 'mpp'" in log, "the failed login is logged"

    envs = sorted(hooks.glob("*.env"))
    names = {p.name for p in envs}
    assert {"pre_switchover.env", "post_switchover.env"} <= names, names
    assert any(n.startswith("change-") for n in names), names
    for env_file in envs:
        text = env_file.read_text()
        assert "MPP_POOL=main" in text and "MPP_HOOK=" in text, text
        assert "MPP_PASSWORD" not in text and "MPP_REPL_PASSWORD" not in text, text
        outputs.append((f"hook environment {env_file.name}", text))
    for db_file in sorted(cluster.dir.glob("state.db*")):
        outputs.append((db_file.name, db_file.read_bytes()))

    found = [leak for where, text in outputs for leak in leaks(where, text)]
    assert not found, found
    assert len(outputs) > 30  # every surface above was read


def _replicating(cluster: Cluster, node: str, source: str) -> bool:
    """Connected with the replication password mpp gave CHANGE MASTER: it was the right one."""
    conn = sandbox.admin_connect(cluster.dir, node)
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SHOW SLAVE STATUS")
            row: Any = cur.fetchone()
    finally:
        conn.close()
    return (
        row is not None
        and int(row["Master_Port"]) == probes.node_port(cluster.dir, source)
        and row["Slave_IO_Running"] == "Yes"
    )


def _stream(url: str, events: int, seconds: float = 5.0) -> str:
    """The first `events` events of the SSE stream (or what came within `seconds`)."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    with httpx.stream("GET", url, timeout=seconds) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            seen.append(line)
            if sum(x.startswith("event:") for x in seen) >= events or time.monotonic() > deadline:
                break
    assert any(x.startswith("event:") for x in seen), seen
    return "\n".join(seen)
