"""D/mpp.toml: an mpp config for the sandbox, so that ``mpp --config D/mpp.toml run``
manages it without the user writing one. Written once; later ``up``s keep the user's edits."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mpp.sandbox.accounts import MPP_USER, REPL_PASSWORD, REPL_USER, write_secret
from mpp.sandbox.layout import CONFIG_FILE, HOST, PASSWORD_FILE, REPL_PASSWORD_FILE
from mpp.sandbox.state import State


def write_mpp_config(
    d: Path, state: State, say: Callable[[str], None], api: str | None = None
) -> None:
    """Write D/mpp.toml (and D/repl.password for primary-replica) unless it exists."""
    path = d / CONFIG_FILE
    if path.exists():
        return  # the user may have edited it
    parts = [
        "# Written by `mpp sandbox up`; edit freely.\n"
        "[mpp]\n"
        'state = "sqlite://state.db"\n'
        'interval = "1s"\n'
        'connect_timeout = "1s"\n'
        "\n"
        "[[pool]]\n"
        'name = "main"\n'
        'logic = "failover"\n'
        f'topology = "{state.topology}"\n'
        "fail_point = 4\n"
        'max_lag = "10s"\n'
        "hostile_takeover = false\n"
        f'user = "{MPP_USER}"\n'
        f'password_file = "{PASSWORD_FILE}"\n'
    ]
    if state.topology == "primary-replica":
        # mpp repoints replicas itself, with the replication account's password
        repl = d / REPL_PASSWORD_FILE
        write_secret(repl, REPL_PASSWORD)
        parts.append(f'repl_user = "{REPL_USER}"\nrepl_password_file = "{REPL_PASSWORD_FILE}"\n')
    for i, rec in enumerate(state.nodes):
        parts.append(
            "\n[[pool.node]]\n"
            f'name = "{rec.name}"\n'
            f'address = "{HOST}:{rec.port}"\n'
            f'type = "{"primary" if i == 0 else "secondary"}"\n'
        )
    if api is not None:  # the demo: REST API, checks and the live dashboard
        parts.append(f'\n[api]\nlisten = "{api}"\n')
    tmp = d / f".{CONFIG_FILE}.tmp"
    tmp.write_text("".join(parts))
    os.replace(tmp, path)
    say(f"config: wrote {path}")
