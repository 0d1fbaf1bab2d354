"""`mpp run` and `mpp agent` under systemd's Type=notify and WatchdogSec: the sd_notify
datagrams they send (READY=1, STATUS=, WATCHDOG=1, STOPPING=1). systemd itself cannot run
here (PID 1 is not systemd, no Docker), so the test plays its part of the protocol: a real
unix datagram socket named by NOTIFY_SOCKET, WATCHDOG_USEC set, real mpp processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mpp import sandbox
from tests.conftest import Cluster
from tests.daemons import mpp_command
from tests.ports import Ports


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}
    yield sock, env
    sock.close()


def _collect(sock: socket.socket, seconds: float) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            got.append(sock.recv(4096).decode())
    return got


def test_mpp_run_is_ready_after_its_first_cycle_and_feeds_the_watchdog(
    make_cluster: Callable[..., Cluster],
    notify_socket: tuple[socket.socket, dict[str, str]],
    tmp_path: Path,
) -> None:
    sock, env = notify_socket
    cluster = make_cluster(nodes=2)
    with (tmp_path / "run.log").open("w") as out:
        proc = subprocess.Popen(
            mpp_command(cluster.config_path, "run", "--no-live"),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        got = _collect(sock, 3.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    got += _collect(sock, 0.5)
    ready = [m for m in got if "READY=1" in m]
    assert len(ready) == 1 and "STATUS=polling 1 pool(s)" in ready[0], got[:5]
    # WATCHDOG_USEC 0.4 s: a ping every 0.2 s at most, one per cycle (interval 0.2 s)
    assert sum(m == "WATCHDOG=1" for m in got) >= 5, got
    assert got.index(ready[0]) < next(i for i, m in enumerate(got) if m == "WATCHDOG=1")
    assert got[-1] == "STOPPING=1", got[-3:]


def test_mpp_agent_is_ready_once_mysqld_is_held(
    notify_socket: tuple[socket.socket, dict[str, str]], tmp_path: Path, ports: Ports
) -> None:
    sock, env = notify_socket
    d = tmp_path / "sb"
    sandbox.up(d, nodes=1, base_port=ports.block(1))
    try:
        pid_file = d / "db1" / "mariadbd.pid"
        config = tmp_path / "agent.toml"
        config.write_text(
            f'node = "db1"\n[mysqld]\npid_file = "{pid_file}"\nstart = ["/bin/false"]\n'
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "mpp", "agent", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            # READY first (a loaded machine may take seconds to start Python and mpp),
            # then a second of watchdog pings; SIGTERM only once the handler is in place
            got: list[str] = []
            deadline = time.monotonic() + 30
            while not any("READY=1" in m for m in got) and time.monotonic() < deadline:
                got += _collect(sock, 0.2)
            got += _collect(sock, 1.0)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        got += _collect(sock, 0.5)
        assert any("READY=1" in m and "holding mysqld of db1" in m for m in got), got[:3]
        assert sum(m == "WATCHDOG=1" for m in got) >= 5, got
        assert got[-1] == "STOPPING=1"
    finally:
        sandbox.destroy(d)
