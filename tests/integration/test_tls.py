"""TLS on every MySQL session mpp opens and on the replication it sets up (issue 15, item
5), against real MariaDB with openssl-made certificates and `require_secure_transport =
ON`, so that a session in clear text is refused by the server itself: mpp's probes work
only if they are encrypted, and a replica mpp repoints replicates only if its link is."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors
import pytest

from mpp import sandbox
from mpp.faults.watchers import poll_until
from mpp.sandbox.tls import TlsFiles, tls_files
from tests.builders import write_config
from tests.daemons import MppRun, mpp_command
from tests.ports import Ports


def _tls_session(port: int, files: TlsFiles) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(
        host="127.0.0.1",
        port=port,
        user="root",
        password=sandbox.ROOT_PASSWORD,
        ssl_ca=str(files.ca),
        ssl_verify_cert=True,
        connect_timeout=2,
        read_timeout=10,
        autocommit=True,
    )


def _sql(port: int, files: TlsFiles, statement: str) -> list[dict[str, Any]]:
    conn = _tls_session(port, files)
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(statement)
            return list(cur.fetchall())
    finally:
        conn.close()


@pytest.fixture
def secure(tmp_path: Path, ports: Ports) -> Iterator[tuple[Path, int, TlsFiles]]:
    """A primary-replica pair serving TLS that refuses every session in clear text."""
    d = tmp_path / "sb"
    base = ports.block(2)
    sandbox.up(d, nodes=2, base_port=base, topology="primary-replica", tls=True)
    files = tls_files(d)
    try:
        for port in (base, base + 1):
            _sql(port, files, "SET GLOBAL require_secure_transport = ON")
        yield d, base, files
    finally:
        sandbox.destroy(d)


def _config(d: Path, base: int, tmp_path: Path, **pool: Any) -> Path:
    text = (d / "mpp.toml").read_text().replace('interval = "1s"', 'interval = "300ms"')
    doc_path = d / f"tls-{len(pool)}.toml"  # beside the sandbox: its paths are relative
    extra = "".join(f'{k} = "{v}"\n' for k, v in pool.items())
    doc_path.write_text(text.replace("\n[[pool.node]]", f"\n{extra}\n[[pool.node]]", 1))
    return doc_path


def _status(config: Path) -> dict[str, Any]:
    done = subprocess.run(mpp_command(config, "status", "--json"), capture_output=True, text=True)
    doc: dict[str, Any] = json.loads(done.stdout)["pools"][0]
    return doc


def test_mpp_probes_and_repoints_over_tls_where_clear_text_is_refused(
    secure: tuple[Path, int, TlsFiles], tmp_path: Path
) -> None:
    d, base, files = secure
    # without TLS the servers refuse mpp: the test's premise, shown
    plain = _config(d, base, tmp_path)
    done = subprocess.run(mpp_command(plain, "poll"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    doc = _status(plain)
    # the servers answer, with their refusal (MariaDB says 1045 Access denied to a session
    # in clear text under require_secure_transport; the same login over TLS works, below)
    messages = [n["message"] for n in doc["nodes"]]
    assert all("1045 Access denied" in m for m in messages), messages
    assert doc["tls"] == "off"
    (d / "state.db").unlink()
    for side in ("state.db-wal", "state.db-shm"):
        (d / side).unlink(missing_ok=True)

    config = _config(d, base, tmp_path, tls="verify_identity", ca_file=str(files.ca))
    daemon = MppRun(config, tmp_path / "mpp-run.log")
    try:

        def settled() -> dict[str, Any] | None:
            doc = _status(config)
            states = {n["name"]: (n["state"], n["requests"]) for n in doc["nodes"]}
            return doc if states == {"db1": ("ACTIVE", 0), "db2": ("STANDBY", 0)} else None

        found = poll_until(settled, 30)
        assert found is not None, _status(config)
        assert found["tls"] == "verify_identity"
        # the sandbox set db2 up in clear text before the servers refused it: mpp's
        # switchover repoints db1, then db2 back, each time with MASTER_SSL
        for target in ("db2", "db1"):
            done = subprocess.run(
                mpp_command(config, "switchover", "main", "--to", target),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stdout + done.stderr
        replica = base + 1  # db2, a replica of db1 again
        rows = poll_until(
            lambda: (
                r
                if (r := _sql(replica, files, "SHOW SLAVE STATUS"))
                and r[0]["Slave_IO_Running"] == "Yes"
                else None
            ),
            20,
        )
        assert rows, _sql(replica, files, "SHOW SLAVE STATUS")
        row = rows[0]
        assert row["Master_SSL_Allowed"] == "Yes" and row["Master_SSL_CA_File"] == str(files.ca)
        assert row["Master_SSL_Verify_Server_Cert"] == "Yes"
        assert row["Slave_SQL_Running"] == "Yes" and not row["Last_IO_Errno"]
        # and the link carries data: a write on db1 reaches db2
        _sql(base, files, "CREATE TABLE app.tls_check (id INT PRIMARY KEY)")
        _sql(base, files, "INSERT INTO app.tls_check VALUES (1)")
        time.sleep(0.5)
        assert poll_until(
            lambda: (
                _sql(replica, files, "SELECT COUNT(*) AS n FROM app.tls_check")[0]["n"] == 1 or None
            ),
            10,
        )
    finally:
        daemon.stop()


def test_tls_settings_are_checked_at_load(tmp_path: Path) -> None:
    from tests.builders import config_doc, pool

    cases: list[tuple[dict[str, Any], str]] = [
        ({"tls": "verify_ca"}, "checks the server against ca_file"),
        ({"tls": "required", "cert_file": "c.pem"}, "cert_file and key_file go together"),
        ({"ca_file": "ca.pem"}, 'need tls = "required" or stricter'),
        ({"tls": "sometimes"}, "allowed:"),
    ]
    for keys, says in cases:
        path = write_config(tmp_path / "bad.toml", config_doc(pool(**keys)))
        done = subprocess.run(mpp_command(path, "status"), capture_output=True, text=True)
        assert done.returncode == 2 and says in done.stderr, (keys, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1
