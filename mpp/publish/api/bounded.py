"""The API's connections, bounded before anything is parsed.

The API runs in the process that runs failovers, and every load balancer must reach it
without a token; uvicorn alone bounds none of this. Measured before: an idle connection was
still open after 130 s; 240 of them took every descriptor; an unauthenticated 100 MB POST
was read and parsed before its 401 (RSS 66 -> 322 MB); a 50 MB header was accepted; four
unfinished 25 MB headers slowed /v1/health to 448 ms. So, per connection:

- a cap (`[api] max_connections`, lowered by the descriptor budget), where the oldest idle
  connection makes room for a new one (mpp.publish.caps);
- `[api] header_timeout`: a request's head must arrive within it, counted from the
  connection or from the previous response (slowloris, idle sockets);
- at most MAX_HEAD bytes of head (431) and MAX_BODY of body (413, from Content-Length
  before a byte of it is read, or when a chunked body passes it);
- a request with a body to a route that needs the token is refused (401/403) from its
  headers, before its body is read.

This subclasses uvicorn's httptools protocol, the one `mpp run` uses, because no setting of
uvicorn (nor of Starlette, which only sees a request once its head is parsed) does these;
`data_received` is taken over to refuse before parsing, keeping uvicorn's own handling of
a malformed request. The routes' checks stay as they are: this is the layer before them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import httptools
from pydantic import SecretStr
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mpp.publish.api.security import bearer_credentials, token_refusal
from mpp.publish.caps import ConnectionCap

log = logging.getLogger("mpp.api")

MAX_HEAD = 16 * 1024  # request line and headers: a check's are ~100 bytes
MAX_BODY = 64 * 1024  # the largest command body is a few dozen bytes of JSON
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REASONS = {
    401: "Unauthorized",
    403: "Forbidden",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
}


@dataclass(frozen=True)
class Bounds:
    max_connections: int
    header_timeout: float
    token: SecretStr | None  # every request with a body is a command, and needs it
    max_head: int = MAX_HEAD
    max_body: int = MAX_BODY


def protocol(bounds: Bounds) -> type[HttpToolsProtocol]:
    """The protocol class for one API listener (its cap is shared by its connections)."""
    cap: ConnectionCap[Any] = ConnectionCap(
        "API", "[api] max_connections", bounds.max_connections, log
    )

    class Bounded(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._refused = False
            self._head = 0  # bytes of the current request's head seen so far
            self._in_head = True
            self._tail = b""  # the last bytes seen, for a head end split across reads
            self._body = 0
            self._deadline: asyncio.TimerHandle | None = None
            if not cap.admit(self):
                self._refuse_busy()
                return
            self._arm()

        # -- what the cap asks -------------------------------------------------------

        def busy(self) -> bool:
            return not self._in_head and not self._refused

        def drop(self) -> None:
            self._refused = True
            self._disarm()
            self.transport.close()

        # -- the head deadline -------------------------------------------------------

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(bounds.header_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self._in_head and not self._refused:
                # nothing was asked (or not all of it) in time: no answer owed to an idle
                # socket; a dribbled head gets its 408
                if self._head:
                    self._refuse(408, "request head not received in time")
                else:
                    self.drop()

        # -- refusals ----------------------------------------------------------------

        def _refuse(self, status: int, detail: str, extra: bytes = b"") -> None:
            """Answer and close without reading further; `detail` is mpp's, never input."""
            self._refused = True
            self._disarm()
            body = json.dumps({"error": detail}).encode()  # the API's one error shape
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                "content-type: application/json\r\n"
                f"content-length: {len(body)}\r\n"
                "connection: close\r\n"
            ).encode()
            self.transport.write(head + extra + b"\r\n" + body)
            self.transport.close()

        def _refuse_busy(self) -> None:
            self._refused = True
            body = b"every API connection is answering a request; try again\n"
            self.transport.write(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + body
            )
            self.transport.close()

        # -- reading -----------------------------------------------------------------

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return  # answered and closing: nothing more is read
            if self._in_head:
                seen = self._tail + data
                end = seen.find(b"\r\n\r\n")
                self._head += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
                self._tail = seen[-3:]
                if self._head > bounds.max_head:
                    self._refuse(431, f"request head over {bounds.max_head} bytes")
                    return
            self._unset_keepalive_if_required()
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                if self._refused:
                    return  # one of the callbacks below refused mid-feed
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            except httptools.HttpParserUpgrade:
                self._unsupported_upgrade_warning()  # no WebSocket here (ws = "none")

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._disarm()
            headers = dict(self.headers)
            method = self.parser.get_method().decode("ascii", "replace")
            length = headers.get(b"content-length")
            chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
            try:
                size = int(length) if length is not None else 0
            except ValueError:
                size = 0  # the parser rejects a malformed length itself
            if method in _BODY_METHODS and (size > 0 or chunked):
                # who asks comes first: a stranger learns nothing, not even the size limit
                given = bearer_credentials(headers.get(b"authorization"))
                refusal = token_refusal(bounds.token, given)
                if refusal is not None:
                    status, detail = refusal
                    extra = b"www-authenticate: Bearer\r\n" if status == 401 else b""
                    self._refuse(status, detail, extra)
                    raise _Refused
            if size > bounds.max_body:
                self._refuse(413, f"request body over {bounds.max_body} bytes")
                raise _Refused
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if self._refused:
                return
            self._body += len(body)
            if self._body > bounds.max_body:
                self._refuse(413, f"request body over {bounds.max_body} bytes")
                raise _Refused
            super().on_body(body)

        def on_message_begin(self) -> None:
            self._body = 0
            super().on_message_begin()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self._refused and not self.transport.is_closing():
                # the next request's head, on a kept-alive connection, within the deadline
                self._in_head, self._head, self._tail = True, 0, b""
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            cap.forget(self)
            self._disarm()
            super().connection_lost(exc)

    Bounded.cap = cap  # type: ignore[attr-defined]  # the tests read its counters
    return Bounded


class _Refused(Exception):
    """Raised in a parser callback to stop the parse of a refused request (httptools then
    raises HttpParserError out of feed_data, which data_received expects)."""
