"""Certificates for a sandbox whose servers speak TLS (`up(..., tls=True)`), made with the
openssl command line once per sandbox: a CA and one server certificate for 127.0.0.1 (its
subjectAltName an IP, so `verify_identity` can check it), and a client certificate."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mpp.sandbox.errors import SandboxError
from mpp.sandbox.layout import HOST

TLS_DIR = "tls"


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def tls_files(d: Path) -> TlsFiles:
    t = d / TLS_DIR
    return TlsFiles(
        t / "ca.pem", t / "server.pem", t / "server.key", t / "client.pem", t / "client.key"
    )


def make_certificates(d: Path) -> TlsFiles:
    """The sandbox's CA and certificates, made once (kept by later `up`s)."""
    files = tls_files(d)
    if files.client_key.exists():
        return files
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SandboxError(
            "openssl is not installed; `make test` (scripts/bootstrap.sh) installs it"
        )
    t = files.ca.parent
    t.mkdir(mode=0o700, parents=True, exist_ok=True)

    def run(*args: str) -> None:
        done = subprocess.run([openssl, *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise SandboxError(f"openssl {args[0]} failed: {done.stderr.strip()[-300:]}")

    days = "3650"
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        days,
        "-keyout",
        str(t / "ca.key"),
        "-out",
        str(files.ca),
        "-subj",
        "/CN=mpp sandbox CA",
    )
    for who, key, cert, san in (
        ("server", files.server_key, files.server_cert, f"IP:{HOST}"),
        ("client", files.client_key, files.client_cert, "DNS:mpp"),
    ):
        csr = t / f"{who}.csr"
        ext = t / f"{who}.ext"
        ext.write_text(f"subjectAltName={san}\n")
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            f"/CN={HOST if who == 'server' else 'mpp'}",
        )
        run(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(files.ca),
            "-CAkey",
            str(t / "ca.key"),
            "-CAcreateserial",
            "-days",
            days,
            "-out",
            str(cert),
            "-extfile",
            str(ext),
        )
    for f in t.iterdir():
        f.chmod(0o600)
    return files


def server_cnf_lines(d: Path) -> list[str]:
    """The [mariadbd] lines that make a node serve TLS with the sandbox's certificate."""
    files = tls_files(d)
    return [
        f"ssl_ca = {files.ca}",
        f"ssl_cert = {files.server_cert}",
        f"ssl_key = {files.server_key}",
    ]
