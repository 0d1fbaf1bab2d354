"""Listening sockets for every surface that serves (API, agent-check, router ports).

Bound by `mpp run` before its loop starts, so a port in use fails at start, naming the key.
"""

from __future__ import annotations

import socket


def bind(listen: str, what: str) -> socket.socket:
    """Bind HOST:PORT now, so `mpp run` fails at start (naming the key) if it cannot."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when the
    # proto says TCP, and without it a keep-alive HTTP client waits 40 ms (Nagle + delayed
    # ACK) for every response written in two parts.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        raise OSError(err.errno, f"{what} listen = {listen!r}: {err.strerror}") from None
    return sock
