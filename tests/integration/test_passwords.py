"""Passwords are any UTF-8 (issue 15, item 6): a monitoring password with a character
outside Latin-1 used to stop `mpp run` within 10 ms with a traceback showing a password
character (PyMySQL encodes a str password as Latin-1). Real mariadbd, real `mpp poll`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

from mpp.faults.watchers import wait_for
from tests.conftest import Cluster
from tests.daemons import mpp_command

PASSWORD = "€uro-pässwörd-密码"


def test_a_password_outside_latin1_logs_in(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=2)
    # on db1, replicated to db2 (a master-master sandbox)
    cluster.sql("db1", f"CREATE USER 'euro'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'")
    cluster.sql("db1", "GRANT ALL PRIVILEGES ON *.* TO 'euro'@'127.0.0.1'")
    query = "SELECT COUNT(*) FROM mysql.user WHERE User = 'euro'"
    wait_for("the account on db2", lambda: cluster.sql("db2", query)[0][0] == 1, 10)
    secret = cluster.dir / "euro.password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    secret.chmod(0o600)
    pool = {**cluster.doc["pool"][0], "user": "euro", "password_file": str(secret)}
    config = cluster.variant("euro", {"pool": [pool]})
    done = subprocess.run(mpp_command(config, "poll"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and PASSWORD not in done.stdout + done.stderr
    status = subprocess.run(
        mpp_command(config, "status", "--json"), capture_output=True, text=True, timeout=30
    )
    nodes = json.loads(status.stdout)["pools"][0]["nodes"]
    assert all(n["reachable"] for n in nodes), nodes
    assert {n["state"] for n in nodes} <= {"ACTIVE", "STANDBY"}, nodes
