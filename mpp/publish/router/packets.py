"""The few bytes of the MySQL protocol the router speaks itself: the ERR packet it sends a
client in place of a server's greeting when it cannot (or may not) route the connection.

Everything else is passed through untouched, so this is all the protocol it has to know.
"""

from __future__ import annotations

import struct

# Error codes for the ERR packet sent in place of the greeting. Server codes only: MariaDB's
# client library treats an ERR packet with a client code (2000-2999) as malformed.
ER_CON_COUNT_ERROR = 1040  # "Too many connections": over max_connections
ER_SERVER_SHUTDOWN = 1053  # no node to route to: like a server that is going away
MAX_MESSAGE = 500


def err_packet(code: int, message: str) -> bytes:
    """A MySQL ERR packet to send as the server's first packet (sequence id 0).

    Without the `#` + SQLSTATE marker: before the handshake no capabilities are agreed and
    libmysqlclient reads the marker only once CLIENT_PROTOCOL_41 is (a server refusing a
    connection before its greeting, e.g. "Host is not allowed to connect", omits it too);
    with it, MySQL's client would print "#08S01" as part of the message. The `mariadb`
    client shows `ERROR 1053 (HY000): <message>`, PyMySQL raises OperationalError(1053, msg).
    """
    payload = b"\xff" + struct.pack("<H", code) + message.encode("utf-8")[:MAX_MESSAGE]
    return struct.pack("<I", len(payload))[:3] + b"\x00" + payload
