"""Whether a server's whole answer to a text-protocol query batch has arrived.

Why by hand: a probe read on the event loop (no thread hop per probe, about half a probe's
CPU at a thousand nodes) must never block the loop, and libmariadb's reads block until
the answer they want is there, up to its whole-second read timeout. So the loop peeks at
the socket's bytes (MSG_PEEK, nothing consumed) and lets the driver read only once this
says the last result of the batch is in. No driver exposes that test; the framing it
needs is small and fixed (MariaDB/MySQL client/server protocol, text resultsets, with EOF
packets: the connection must not have negotiated CLIENT_DEPRECATE_EOF).

Every packet: a 3-byte little-endian length, a sequence byte, the body. A batch's answer is
one result per statement: an OK packet, an ERR packet (which ends the batch), or a result
set (column count, that many column definitions, EOF, rows, EOF). An OK or a final EOF
whose status has SERVER_MORE_RESULTS_EXISTS is followed by the next statement's result.
"""

from __future__ import annotations

_MORE_RESULTS = 0x0008  # SERVER_MORE_RESULTS_EXISTS in an OK or EOF packet's status
_OK, _EOF, _ERR = 0x00, 0xFE, 0xFF
_LARGE = 0xFFFFFF  # a packet of this length continues in the next one


def answer_complete(data: bytes) -> bool:
    """True when `data` (the bytes not yet read, from the start of an answer) holds the
    whole answer of a query batch; False when more is to come. Bytes after the answer
    cannot be there (one query in flight per session) and are not looked at.

    One loop over the packets with no call per packet: it runs on the event loop for every
    probe (a probe's answer is ~70 packets, mostly column definitions), and a helper call
    per packet made it 2.5x slower."""
    end = len(data)
    at = 0
    state = _RESULT
    left = 0  # column definitions (and their EOF) still to skip
    while at + 4 <= end:
        size = data[at] | data[at + 1] << 8 | data[at + 2] << 16
        start = at + 4
        at = start + size
        while size == _LARGE:  # continued in the next packet: one body, its parts added
            if at + 4 > end:
                return False
            size = data[at] | data[at + 1] << 8 | data[at + 2] << 16
            at += 4 + size
        if at > end:
            return False
        if state == _COLUMNS:
            left -= 1
            if not left:
                state = _ROWS
            continue
        first = data[start]
        if first == _ERR:  # a statement's error, or one mid-rows: the batch ends there
            return True
        if state == _ROWS:
            if first == _EOF and at - start < 9:  # a row starting 0xFE is >= 9 bytes long
                if at - start < 5 or not data[start + 3] & _MORE_RESULTS:
                    return True
                state = _RESULT
            continue
        if first == _OK:
            if not _ok_more(data, start, at):
                return True
            continue
        left = _lenenc(data, start) + 1  # the column count: definitions, then an EOF
        state = _COLUMNS
    return False


_RESULT, _COLUMNS, _ROWS = 0, 1, 2  # what the next packet is: a result's first, ...


def _ok_more(data: bytes, start: int, end: int) -> bool:
    """An OK packet's SERVER_MORE_RESULTS_EXISTS: after its two length-encoded integers
    (affected rows, last insert id) come the status flags."""
    at = start + 1
    for _ in range(2):
        if at >= end:
            return False
        at += _lenenc_width(data[at])
    return at + 2 <= end and bool(data[at] & _MORE_RESULTS)


def _lenenc(data: bytes, at: int) -> int:
    first = data[at]
    if first < 0xFB:
        return first
    width = _lenenc_width(first) - 1
    return int.from_bytes(data[at + 1 : at + 1 + width], "little")


def _lenenc_width(first: int) -> int:
    """Bytes a length-encoded integer takes, its first byte included."""
    if first < 0xFB:
        return 1
    return {0xFC: 3, 0xFD: 4, 0xFE: 9}.get(first, 1)
