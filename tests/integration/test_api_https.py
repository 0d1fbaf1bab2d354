"""The API over HTTPS ([api] cert_file, key_file): a real `mpp run` on a real sandbox,
openssl-made certificates, a client that verifies them; a certificate that does not load
stops `mpp run` at start with one line."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx

from mpp.faults.watchers import wait_for
from mpp.sandbox.tls import make_certificates
from tests.conftest import Cluster
from tests.daemons import MppRun, mpp_command
from tests.ports import Ports


def _get(url: str, verify: ssl.SSLContext | bool) -> int | None:
    try:
        return httpx.get(url, verify=verify, timeout=2).status_code
    except httpx.HTTPError:
        return None


def test_the_api_serves_https_with_its_certificate(
    make_cluster: Callable[..., Cluster], tmp_path: Path, ports: Ports
) -> None:
    files = make_certificates(tmp_path)
    port = ports.port()
    api = {"listen": f"127.0.0.1:{port}", "cert_file": str(files.server_cert)}
    cluster = make_cluster(nodes=2, api={**api, "key_file": str(files.server_key)})
    daemon = MppRun(cluster.config_path, tmp_path / "mpp-run.log")
    ca = ssl.create_default_context(cafile=str(files.ca))
    try:
        url = f"https://127.0.0.1:{port}"
        wait_for("the API over HTTPS", lambda: _get(f"{url}/v1/health", ca) == 200, 30)
        assert _get(f"{url}/v1/check/main/db1/ok", ca) == 200
        assert _get(f"http://127.0.0.1:{port}/v1/health", True) is None  # no clear text
        assert _get(f"{url}/v1/health", True) is None  # an unknown CA is refused
    finally:
        log = daemon.stop()
    assert f"API listening on https://127.0.0.1:{port}" in log


def test_a_certificate_that_does_not_load_stops_the_start_with_one_line(
    make_cluster: Callable[..., Cluster], tmp_path: Path, ports: Ports
) -> None:
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("hello\n")
    api = {"listen": f"127.0.0.1:{ports.port()}", "cert_file": str(bad), "key_file": str(bad)}
    cluster = make_cluster(nodes=2, api=api)
    done = subprocess.run(
        mpp_command(cluster.config_path, "run", "--no-live"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("mpp:")]
    assert len(lines) == 1 and "[api] cert_file/key_file: cannot load" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
