"""A real single-member etcd on 127.0.0.1 for the distributed-store tests and benchmarks (no
fake: etcd-server is a Debian package and starts in well under a second)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx


def etcd_binary() -> str:
    found = shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)
    if found is None:
        raise RuntimeError("etcd is not installed: run `make setup` (it installs etcd-server)")
    return found


class EtcdServer:
    """One etcd member; `url` is what an mpp config names as etcd://HOST:PORT."""

    def __init__(self, directory: Path, client_port: int, peer_port: int) -> None:
        self.directory = directory
        self.client_port = client_port
        self.peer_port = peer_port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 15.0) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "etcd.log").open("ab")
        self.process = subprocess.Popen(
            [
                etcd_binary(),
                "--name=mpp-test",
                f"--data-dir={self.directory / 'data'}",
                f"--listen-client-urls={self.endpoint}",
                f"--advertise-client-urls={self.endpoint}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=mpp-test={peer}",
                # what docs/distributed.md asks of a production etcd: mpp writes every cycle
                "--auto-compaction-mode=revision",
                "--auto-compaction-retention=1000",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.endpoint + "/health", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.directory / "etcd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"etcd did not start on {self.endpoint}:\n{tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
