"""A real single-member etcd on 127.0.0.1 for the distributed-store tests and benchmarks (no
fake: etcd-server is a Debian package and starts in well under a second)."""

from __future__ import annotations

import base64
import secrets
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def etcd_binary() -> str:
    """The etcd program; Debian's etcd-server puts it in /usr/bin, which a bare PATH may lack."""
    found = shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)
    if found is None:
        raise RuntimeError("etcd is not installed: run `make setup` (it installs etcd-server)")
    return found


@dataclass(frozen=True)
class Certificates:
    """The files of make_certificates, named for the etcd flags and client options they feed."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certificates(directory: Path) -> Certificates:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    days = ["-days", "2"]
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", *days, "-subj", "/CN=mpp-test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    # the server certificate is also a client one: with --client-cert-auth, etcd's JSON
    # gateway dials etcd's own gRPC port with it (a serverAuth-only certificate: 503)
    for name, extension in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (directory / f"{name}.ext").write_text(extension)
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=mpp-test-{name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", *days,
            "-CAcreateserial", "-extfile", f"{name}.ext", "-out", f"{name}.pem")  # fmt: skip
    d = directory
    return Certificates(
        d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key"
    )


class EtcdServer:
    """One etcd member; `host_port` is what an mpp config names as etcd://HOST:PORT."""

    def __init__(
        self,
        directory: Path,
        client_port: int,
        peer_port: int,
        tls: Certificates | None = None,
    ) -> None:
        self.directory = directory
        self.client_port = client_port
        self.peer_port = peer_port
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 15.0) -> None:
        """Start etcd and return once /health answers, so a test never races its startup."""
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
                *self._tls_flags(),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._get("/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.directory / "etcd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"etcd did not start on {self.endpoint}:\n{tail}")
            time.sleep(0.05)

    def _tls_flags(self) -> list[str]:
        if self.tls is None:
            return []
        t = self.tls
        return [
            f"--cert-file={t.server_cert}",
            f"--key-file={t.server_key}",
            f"--trusted-ca-file={t.ca}",
            "--client-cert-auth",
        ]

    def _client(self) -> httpx.Client:
        if self.tls is None:
            return httpx.Client(timeout=2)
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        context.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return httpx.Client(timeout=2, verify=context)

    def _get(self, path: str) -> httpx.Response:
        with self._client() as client:
            return client.get(self.endpoint + path, timeout=0.5)

    def enable_auth(self, user: str, password: str, prefix: str) -> None:
        """etcd auth on, with `user` allowed to read and write under `prefix` only."""

        def b64(text: str) -> str:
            return base64.b64encode(text.encode()).decode()

        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        steps: list[tuple[str, dict[str, object]]] = [
            ("/v3/auth/user/add", {"name": "root", "password": secrets.token_hex(8)}),
            ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
            ("/v3/auth/role/add", {"name": "mpp"}),
            (
                "/v3/auth/role/grant",
                {
                    "name": "mpp",
                    "perm": {"permType": "READWRITE", "key": b64(prefix), "range_end": b64(end)},
                },
            ),
            ("/v3/auth/user/add", {"name": user, "password": password}),
            ("/v3/auth/user/grant", {"user": user, "role": "mpp"}),
            ("/v3/auth/enable", {}),
        ]
        with self._client() as client:
            for path, body in steps:
                response = client.post(self.endpoint + path, json=body)
                if response.status_code != 200:
                    raise RuntimeError(f"etcd {path}: {response.status_code} {response.text}")

    def stop(self) -> None:
        """Stop etcd cleanly (SIGTERM, SIGKILL after 10 s); safe to call when not running."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
