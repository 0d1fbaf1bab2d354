"""mpp/store/gateway.py against real sockets: a kept connection the server closed while idle
costs one fresh try, not a failed call; no answer is a GatewayError, a silent server a
GatewayTimeout within the call's time. The servers are the standard library's HTTP server
(etcd itself is tested through the store in test_store*.py; these are the cases etcd does
not produce on demand: closing an idle keep-alive connection, hanging with the socket open)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mpp.store.gateway import Gateway, GatewayError, GatewayTimeout


class _Answering(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as etcd's gateway

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.served += 1  # type: ignore[attr-defined]
        answer = b'{"got":' + str(len(body)).encode() + b"}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answering)
    httpd.served = 0  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _url(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def test_a_connection_closed_while_idle_is_tried_once_more(server: ThreadingHTTPServer) -> None:
    url = _url(server)
    gateway = Gateway([url])
    try:
        first = gateway.post(url, "/v3/kv/range", b"{}", {}, 2.0)
        assert first.status == 200 and first.body == b'{"got":2}'
        ((kept, _),) = gateway._idle[url]
        assert kept.sock is not None
        kept.sock.shutdown(socket.SHUT_RDWR)  # as a server's idle timeout leaves it
        second = gateway.post(url, "/v3/kv/range", b"{1}", {}, 2.0)
        assert second.status == 200 and second.body == b'{"got":3}'
        assert server.served == 2  # type: ignore[attr-defined]
        assert len(gateway._idle[url]) == 1, "the fresh connection is kept in its place"
    finally:
        gateway.close()
    assert gateway._idle[url] == [], "closed with the gateway"


def test_no_server_is_a_gateway_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        url = f"http://127.0.0.1:{port}"
        gateway = Gateway([url])
        with pytest.raises(GatewayError) as failed:
            gateway.post(url, "/v3/kv/range", b"{}", {}, 1.0)
        assert not isinstance(failed.value, GatewayTimeout)


def test_a_silent_server_is_a_timeout_within_the_call() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)  # accepts in the kernel, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        gateway = Gateway([url])
        started = time.monotonic()
        with pytest.raises(GatewayTimeout):
            gateway.post(url, "/v3/kv/range", b"{}", {}, 0.3)
        assert time.monotonic() - started < 2.0


def test_a_connection_idle_too_long_is_closed_not_reused(server: ThreadingHTTPServer) -> None:
    url = _url(server)
    gateway = Gateway([url])
    try:
        gateway.post(url, "/v3/kv/range", b"{}", {}, 2.0)
        ((old, since),) = gateway._idle[url]
        gateway._idle[url] = [(old, since - 60.0)]  # as if idle for a minute
        gateway.post(url, "/v3/kv/range", b"{}", {}, 2.0)
        assert old.sock is None, "the stale connection was closed"
        ((fresh, _),) = gateway._idle[url]
        assert fresh is not old
    finally:
        gateway.close()
