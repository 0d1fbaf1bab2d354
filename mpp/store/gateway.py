"""The etcd store's HTTP: POSTs of JSON to the gateway on kept standard-library connections.

Why not httpx, which the rest of mpp uses: one gateway call on a kept connection cost this
process ~1.16 ms of CPU through httpx.Client, ~0.6 ms through urllib3 and ~0.34 ms through
http.client (measured on the project's host against a local etcd, docs/benchmarks.md). With
hundreds of pools on etcd every pool-cycle makes two or three calls, and httpx's share was
most of the process's CPU (py-spy: 61 % of the GIL samples at 333 pools). What is written
here is only what http.client leaves to its caller: a pool of idle connections per endpoint
(shared by every thread, so threads that come and go leave no socket behind), a timeout per
call, and one fresh try when a kept connection turns out closed by the server.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

# idle connections kept per endpoint: the store's threads (up to 16) and a few more callers
_KEEP = 32
# an idle connection older than this is closed, not reused (httpx's keep-alive expiry): a
# NAT or firewall may drop a quiet flow without a reset, and a call sent into it would wait
# its whole time for nothing
_IDLE_FOR = 5.0
# a kept connection the server closed while idle shows one of these at its next use; it is
# worth one fresh connection, not a failed call
_CLOSED_WHILE_IDLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class GatewayError(Exception):
    """No answer from an endpoint: refused, reset, TLS refused, not HTTP."""


class GatewayTimeout(GatewayError):
    """The endpoint did not answer within the call's time (a member waiting for a leader)."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class _Endpoint:
    tls: bool
    host: str
    port: int
    path: str  # a prefix before /v3 (a gateway behind a proxy path), usually ""


def _endpoint(url: str) -> _Endpoint:
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    return _Endpoint(tls, parts.hostname or "", parts.port or (443 if tls else 80), parts.path)


class Gateway:
    """Thread-safe: a call takes an idle connection (or opens one) and gives it back."""

    def __init__(
        self,
        endpoints: Sequence[str],
        context: ssl.SSLContext | None = None,
        source_address: str | None = None,
    ) -> None:
        self._endpoints = {url: _endpoint(url) for url in endpoints}
        self._context = context
        self._source = (source_address, 0) if source_address else None
        # per endpoint, the idle connections and since when (monotonic), newest last
        self._idle: dict[str, list[tuple[http.client.HTTPConnection, float]]] = {
            u: [] for u in endpoints
        }
        self._lock = threading.Lock()
        self._closed = False

    def post(
        self, endpoint: str, path: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> Answer:
        """One POST; raises GatewayTimeout past `timeout`, GatewayError with no answer."""
        deadline = time.monotonic() + timeout
        conn, kept = self._take(endpoint, timeout)
        while True:
            try:
                answer = self._exchange(conn, endpoint, path, body, headers, timeout)
            except _CLOSED_WHILE_IDLE as err:
                conn.close()
                timeout = deadline - time.monotonic()
                if not kept or timeout <= 0:
                    raise GatewayError(str(err) or type(err).__name__) from None
                # once more on a fresh connection, in what is left of the call's time: no
                # harm to the store's calls (a txn that went through fails its compare the
                # second time and the caller reads again; a put or a range is the same twice;
                # a lease grant repeated leaves one lease to expire by its TTL)
                conn, kept = self._open(endpoint, timeout), False
                continue
            except BaseException:
                conn.close()
                raise
            self._give_back(endpoint, conn)
            return answer

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [c for conns in self._idle.values() for c, _ in conns]
            for conns in self._idle.values():
                conns.clear()
        for conn in idle:
            conn.close()

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        endpoint: str,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout: float,
    ) -> Answer:
        conn.timeout = timeout  # for a reconnect http.client makes itself
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        try:
            conn.request(
                "POST",
                self._endpoints[endpoint].path + path,
                body=body,
                headers={"Content-Type": "application/json", **headers},
            )
            response = conn.getresponse()
            return Answer(response.status, response.read())
        except _CLOSED_WHILE_IDLE:
            raise
        except TimeoutError as err:
            raise GatewayTimeout(str(err) or "timed out") from None
        except (OSError, http.client.HTTPException) as err:  # ssl.SSLError is an OSError
            raise GatewayError(str(err) or type(err).__name__) from None

    def _take(self, endpoint: str, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """The newest idle connection, or a new one; those idle too long are closed."""
        with self._lock:
            now = time.monotonic()
            idle = self._idle[endpoint]
            expired = [c for c, since in idle if now - since >= _IDLE_FOR]
            idle[:] = [(c, since) for c, since in idle if now - since < _IDLE_FOR]
            taken = idle.pop()[0] if idle else None
        for conn in expired:
            conn.close()
        if taken is not None:
            return taken, True
        return self._open(endpoint, timeout), False

    def _open(self, endpoint: str, timeout: float) -> http.client.HTTPConnection:
        """A connection, not yet connected: http.client connects at the first request."""
        where = self._endpoints[endpoint]
        if where.tls:
            return http.client.HTTPSConnection(
                where.host,
                where.port,
                timeout=timeout,
                source_address=self._source,
                context=self._context,
            )
        return http.client.HTTPConnection(
            where.host, where.port, timeout=timeout, source_address=self._source
        )

    def _give_back(self, endpoint: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle[endpoint]
            if not self._closed and conn.sock is not None and len(idle) < _KEEP:
                idle.append((conn, time.monotonic()))
                return
        conn.close()


__all__ = ["Answer", "Gateway", "GatewayError", "GatewayTimeout"]
