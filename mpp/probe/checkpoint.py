"""One probe of one checkpoint: does it answer, within its deadline? (blocking: a thread).

Each probe is as cheap as the kind allows and never sends credentials:
- `tcp:HOST:PORT`: a TCP connection, closed at once.
- `mysql:HOST:PORT`: a TCP connection and the server's greeting (the first packet a
  MySQL/MariaDB server sends), then closed without logging in. An error packet instead of
  a greeting (too many connections, a blocked host) still answers: the network is there.
- `http(s)://URL`: one GET; any HTTP status below 500 answers (a 404 proves the path to
  the host; a 5xx may be a proxy whose backend is gone). HTTPS verifies the certificate.

Every socket operation has the checkpoint's timeout; the caller (mpp.run.reach) also puts
an overall deadline around the call, since a name lookup is not bounded by it.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from urllib.parse import urlsplit

from mpp.model import CheckpointSpec

Result = tuple[bool, str, float]  # answered, why not, milliseconds taken


def _split(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


def _connect(target: str, timeout: float, source: str | None) -> socket.socket:
    bind = (source, 0) if source else None
    return socket.create_connection(_split(target), timeout=timeout, source_address=bind)


def _greeting(sock: socket.socket) -> str:
    """ "" when the first packet is a server greeting or an error packet, else why not."""
    head = b""
    while len(head) < 5:
        chunk = sock.recv(5 - len(head))
        if not chunk:
            return "closed before the server's greeting"
        head += chunk
    first = head[4]
    if first == 10 or first == 0xFF:  # protocol 10 greeting, or ERR (the server answered)
        return ""
    return f"not a MySQL greeting (first byte {first:#04x})"


def _http(url: str, timeout: float, source: str | None) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    bind = (source, 0) if source else None
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            host,
            parts.port,
            timeout=timeout,
            context=ssl.create_default_context(),
            source_address=bind,
        )
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout, source_address=bind)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn.request("GET", path, headers={"User-Agent": "mpp-checkpoint"})
        response = conn.getresponse()
        response.read(65536)
    finally:
        conn.close()
    return "" if response.status < 500 else f"HTTP {response.status} {response.reason}"


def probe(spec: CheckpointSpec, source: str | None = None) -> Result:
    """Never raises: (True, "", ms) when the checkpoint answered, else (False, why, ms)."""
    started = time.perf_counter()
    scheme, _, rest = spec.target.partition(":")
    try:
        if scheme == "tcp":
            _connect(rest, spec.timeout, source).close()
            why = ""
        elif scheme == "mysql":
            with _connect(rest, spec.timeout, source) as sock:
                why = _greeting(sock)
        else:
            why = _http(spec.target, spec.timeout, source)
    except TimeoutError:
        why = f"no answer within {spec.timeout:g}s"
    except ssl.SSLError as err:
        why = f"TLS: {err.reason or err}"
    except OSError as err:
        why = err.strerror or str(err) or type(err).__name__
    except (http.client.HTTPException, ValueError) as err:
        why = f"{type(err).__name__}: {err}"
    ms = (time.perf_counter() - started) * 1000
    return (not why, why, round(ms, 2))
