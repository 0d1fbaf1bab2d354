"""Bad configs through the real CLI: `mpp run` and `mpp status` as separate processes.

What tests/unit/test_config_fuzz.py shows for `load`, checked where the operator meets it:
exit code 2, exactly one line on stderr naming the file and the key, no traceback, and no
partial start (no state file, no listening port, nothing left in the directory).
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.builders import config_doc, config_text, pool
from tests.daemons import mpp_command
from tests.ports import Ports


def good(api_port: int) -> str:
    return config_text(
        config_doc(
            pool(count=2, password_env="MPP_CLI_TEST_PASSWORD"),
            mpp={"state": "sqlite://state.db", "interval": "1s"},
            api={"listen": f"127.0.0.1:{api_port}", "token_file": "token"},
        )
    )


# (case, how the good file is changed, what the one line must say)
CASES: list[tuple[str, Callable[[str], str], str]] = [
    ("not-utf8", lambda t: t.replace('"main"', '"m\xe4in"'), "not UTF-8 (byte 0xe4 on line"),
    ("deep", lambda t: t + "\n[agent]\nlisten = " + "[" * 5000 + "]" * 5000, "nested too deeply"),
    ("nan", lambda t: t.replace('interval = "1s"', "interval = nan"), "mpp.interval: nan is not"),
    ("inf", lambda t: t.replace('interval = "1s"', "interval = inf"), "longer than a year"),
    ("unknown", lambda t: t.replace("[mpp]", "[mpp]\nintervall = 2"), "mpp.intervall: unknown key"),
    ("type", lambda t: t.replace('"1s"', "[1, 2]"), "mpp.interval: [1, 2] is not a duration"),
    ("path", lambda t: 'path = "/x"\n' + t, ": path: unknown key"),
    (
        "script",
        lambda t: t.replace('"127.0.0.1:2"', '"<script>alert(1)</script> x:36062"'),
        "pool[0] (main).node[1] (db2).address: '<script>alert(1)</script> x:36062' is not",
    ),
    ("markup", lambda t: t.replace('"127.0.0.1:2"', '"[/x]:36062"'), "address: '[/x]:36062' is"),
    (
        "section",
        lambda t: t + '\n[etcd]\ntimeout = "1s"\n',
        "[etcd] is set but [mpp] state is not an etcd store",
    ),
]


def run_mpp(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mpp_command(config, *args),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=config.parent,
        env={"PATH": "/usr/bin:/bin", "MPP_CLI_TEST_PASSWORD": "pw", "COLUMNS": "80"},
    )


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def assert_refused(out: subprocess.CompletedProcess[str], config: Path, says: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and not out.stdout, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"mpp: {config}: "), lines[0]
    assert says in lines[0], lines[0]


@pytest.mark.parametrize(("case", "change", "says"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_config_is_one_line_and_starts_nothing(
    tmp_path: Path, ports: Ports, case: str, change: Callable[[str], str], says: str
) -> None:
    port = ports.port()
    (tmp_path / "token").write_text("t" * 32)
    text = change(good(port))
    config = tmp_path / "mpp.toml"
    config.write_text(text, encoding="latin-1" if case == "not-utf8" else "utf-8")
    before = sorted(tmp_path.iterdir())
    # status too where the reading differs most (bytes, depth, markup); the machine is shared
    commands = [["run", "--no-live"]]
    if case in ("not-utf8", "deep", "markup"):
        commands += [["status"], ["status", "--json"]]
    for command in commands:
        out = run_mpp(config, *command)
        assert_refused(out, config, says)
        assert sorted(tmp_path.iterdir()) == before, f"{command} left files behind"
        assert not listening(port)


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("no-password", "key password_env: environment variable MPP_CLI_TEST_PASSWORD is not set"),
        ("no-token", "[api] token_file: cannot read"),
        ("token-not-utf8", "[api] token_file: "),
    ],
)
def test_a_missing_secret_stops_run_before_it_creates_anything(
    tmp_path: Path, ports: Ports, case: str, says: str
) -> None:
    """The file is valid; what it points at is not: `run` still starts nothing."""
    port = ports.port()
    config = tmp_path / "mpp.toml"
    config.write_text(good(port))
    if case == "token-not-utf8":
        (tmp_path / "token").write_bytes(b"\xff\xfe-token")
    elif case != "no-token":
        (tmp_path / "token").write_text("t" * 32)
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "80"}
    if case != "no-password":
        env["MPP_CLI_TEST_PASSWORD"] = "pw"
    before = sorted(tmp_path.iterdir())
    out = subprocess.run(
        mpp_command(config, "run", "--no-live"),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env=env,
    )
    assert_refused(out, config, says)
    assert sorted(tmp_path.iterdir()) == before, "no state.db, nothing else"
    assert not listening(port)
