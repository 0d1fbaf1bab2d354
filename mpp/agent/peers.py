"""Which of the pool's other nodes this host can reach: a TCP connect to each one's mysqld.

A connect, not a login: the question is whether this host is cut off from the rest of the
pool, and a connect is what a partition stops first. Only a completed connect counts: a
refused one (no mysqld there) is a peer that could not be promoted anyway, so counting it
out errs on the side of fencing. All peers are tried at once, each within `timeout`, so
the check takes one timeout at most.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

from mpp.config.values import split_address


def reachable(address: str, timeout: float, source: str | None = None) -> bool:
    """A TCP connect to HOST:PORT completed within `timeout` (from `source`, if set)."""
    host, port = split_address(address)
    try:
        with socket.create_connection(
            (host, port), timeout=timeout, source_address=(source, 0) if source else None
        ):
            return True
    except OSError:
        return False


def count_reachable(peers: list[str], timeout: float, source: str | None = None) -> int:
    """This node plus the peers in reach."""
    if not peers:
        return 1
    with ThreadPoolExecutor(len(peers), thread_name_prefix="peer") as pool:
        found = list(pool.map(lambda a: reachable(a, timeout, source), peers))
    return 1 + sum(found)
