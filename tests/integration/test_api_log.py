"""uvicorn's own log lines inside `mpp run` (issue 15, item 11): garbage on the API port
used to print a bare "Invalid HTTP request received." per request, without time or level,
through Python's last-resort handler. Now: mpp's format, and each distinct line at most
once a minute. A real `mpp run` on a real sandbox, real sockets."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from mpp.faults.watchers import wait_for
from mpp.publish.log import Throttle
from tests.conftest import Cluster
from tests.daemons import MppRun
from tests.ports import Ports

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) uvicorn\.error ")


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.HTTPError:
        return None  # not listening yet


def test_garbage_on_the_api_port_is_logged_once_in_mpps_format(
    make_cluster: Callable[..., Cluster], tmp_path: Path, ports: Ports
) -> None:
    port = ports.port()
    cluster = make_cluster(nodes=2, api={"listen": f"127.0.0.1:{port}"})
    log = tmp_path / "mpp-run.log"
    daemon = MppRun(cluster.config_path, log)
    try:
        url = f"http://127.0.0.1:{port}/v1/health"
        wait_for("the API", lambda: _status(url) == 200, 30)
        for _ in range(40):
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
                s.settimeout(2)
                with contextlib.suppress(TimeoutError, ConnectionResetError):
                    s.recv(1024)
        assert httpx.get(url, timeout=2).status_code == 200  # and it still serves
        time.sleep(0.5)
    finally:
        daemon.stop()
    lines = [ln for ln in log.read_text().splitlines() if "Invalid HTTP request" in ln]
    assert len(lines) == 1, lines
    assert STAMP.match(lines[0]), lines[0]


def test_the_throttle_says_how_many_it_held_back() -> None:
    now = [0.0]
    throttle = Throttle(60.0, clock=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.WARNING, __file__, 1, msg, (), None)

    assert throttle.filter(record("Invalid HTTP request received."))
    assert not any(throttle.filter(record("Invalid HTTP request received.")) for _ in range(5))
    assert throttle.filter(record("another line"))  # distinct lines are not held together
    now[0] = 61.0
    later = record("Invalid HTTP request received.")
    assert throttle.filter(later)
    assert later.getMessage() == "Invalid HTTP request received. (5 more like this not logged)"
