"""The sandbox's files that hold a password are its owner's only (issue 15, item 13)."""

from __future__ import annotations

import stat
from pathlib import Path

from mpp import sandbox
from tests.ports import Ports


def test_every_sandbox_file_with_a_password_is_0600(tmp_path: Path, ports: Ports) -> None:
    d = tmp_path / "sb"
    sandbox.up(d, nodes=2, base_port=ports.block(2), topology="primary-replica")
    try:
        secrets = [d / "db1" / "my.cnf", d / "db2" / "my.cnf", d / "mpp.password"]
        secrets.append(d / "repl.password")
        assert "password" in (d / "db1" / "my.cnf").read_text()  # [client]: root's
        modes = {str(f.relative_to(d)): stat.S_IMODE(f.stat().st_mode) for f in secrets}
        assert modes == dict.fromkeys(modes, 0o600)
    finally:
        sandbox.destroy(d)
