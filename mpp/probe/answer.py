"""A server's answer to a text-protocol query batch, read as its bytes arrive.

Why by hand: a probe read on the event loop (no thread hop per probe, about half a probe's
CPU at a thousand nodes) must never block the loop, and libmariadb's reads block until the
answer they want is there, up to its whole-second read timeout. So the loop reads the kept
session's socket itself, without blocking, and gives each chunk to an `Answer`, which
walks the packets once, as they complete, and keeps their values. No driver offers that
for a connection it opened (asyncmy does it, at about twice mysqlclient's CPU per probe:
docs/benchmarks.md), and the part of the protocol it needs is small and fixed: the
MariaDB/MySQL client/server protocol's text resultsets, with EOF packets (the connection
must not have negotiated CLIENT_DEPRECATE_EOF; mpp/probe/mysql.py checks).

Every packet: a 3-byte little-endian length, a sequence byte, the body. A batch's answer is
one result per statement: an OK packet, an ERR packet (which ends the batch), or a result
set (column count, that many column definitions, EOF, rows, EOF). An OK or a final EOF
whose status has SERVER_MORE_RESULTS_EXISTS is followed by the next statement's result.

Values are converted as mysqlclient's default converters do for the types a probe reads
(integers, floats, decimals; text decoded as UTF-8, binary kept as bytes; NULL as None);
tests/integration/test_probe_answer.py holds the two to the same values on real answers.
Dates and times would stay text (mysqlclient makes datetime objects of them): no column a
probe reads has one on MariaDB 10.11 (11.6 adds DATETIME columns to SHOW SLAVE STATUS,
which mpp does not read).
A row's bytes are data, never framing: only its length-encoded lengths are read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_MORE_RESULTS = 0x0008  # SERVER_MORE_RESULTS_EXISTS in an OK or EOF packet's status
_OK, _EOF, _ERR, _NULL = 0x00, 0xFE, 0xFF, 0xFB
_LARGE = 0xFFFFFF  # a packet of this length continues in the next one
_BINARY = 63  # the `binary` collation's number: the column holds bytes, not text

# MYSQL_TYPE_* numbers -> how mysqlclient's default converters read the text of the value
_INTEGERS = {1, 2, 3, 8, 9, 13}  # TINY, SHORT, LONG, LONGLONG, INT24, YEAR
_FLOATS = {4, 5}  # FLOAT, DOUBLE
_DECIMALS = {0, 246}  # DECIMAL, NEWDECIMAL


class ServerError(Exception):
    """The server's ERR packet: args are (error number, message), as the drivers' errors.
    The message is the server's text (it may quote row values): it is only ever shown."""


class MalformedAnswer(ServerError):
    """Bytes that are not an answer of the protocol above; the session cannot be trusted."""

    def __init__(self, what: str) -> None:
        super().__init__(2027, f"malformed packet: {what}")  # CR_MALFORMED_PACKET


@dataclass(frozen=True, slots=True)
class ResultSet:
    names: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


# one statement's result: its rows, None for an OK packet, or the error that ended the batch
Result = ResultSet | ServerError | None
Converter = Callable[[bytes], Any]
# per statement of a batch (its index): its result set's column definitions as they came
# (the bytes from the column count to their EOF), their names and converters
KnownColumns = dict[int, tuple[bytes, tuple[str, ...], tuple[Converter, ...]]]
_KNOWN_RESULTS = 4  # statements of a batch whose columns are remembered (a probe's: 2-3)


class Answer:
    """The answer so far; `feed` each chunk read from the socket, in order, until it says
    the answer is whole. A packet is parsed once, when its last byte has come; only the
    bytes not yet parsed are kept between chunks (and a result set's column definitions
    until their end, to be remembered), so an answer of many packets costs linear time
    however it is cut. One large packet still in coming is copied once per chunk (a 1 MiB
    row in 1,448-byte chunks ~9 ms, measured; the prober reads at most MOST_READ)."""

    __slots__ = (
        "_at",
        "_began",
        "_convert",
        "_data",
        "_fed",
        "_known",
        "_left",
        "_names",
        "_rows",
        "_seq",
        "_state",
        "results",
    )

    def __init__(self, known: KnownColumns | None = None) -> None:
        self._known: KnownColumns = {} if known is None else known
        self._began = 0  # where the result set being read began (its column count)
        self._data = b""  # the bytes kept: from the first not parsed (or _began) on
        self._at = 0  # where in _data the first packet not yet parsed starts
        self._fed = 0
        self._seq = 1  # the sequence byte the next packet must have (the command had 0)
        self._state = _RESULT
        self._left = 0  # column definitions still to read
        self._names: list[str] = []
        self._convert: list[Converter] = []
        self._rows: list[tuple[Any, ...]] = []
        self.results: list[Result] = []

    @property
    def size(self) -> int:
        """Bytes fed so far (the prober bounds what one answer may hold)."""
        return self._fed

    def feed(self, chunk: bytes) -> bool:
        """True once the whole answer is in. Raises MalformedAnswer on bytes no server
        sends: a packet out of sequence, bytes after the answer (one query in flight per
        session: nothing may follow its answer), a body that is not what it must be."""
        self._fed += len(chunk)
        data = self._data = self._data + chunk if self._data else chunk
        end = len(data)
        at = self._at
        while at + 4 <= end:
            if self._state == _RESULT:
                self._began = at
                known = self._known.get(len(self.results))
                if (
                    known is not None
                    and data[at + 3] == self._seq
                    and data.startswith(known[0], at)
                ):
                    # the same columns as this statement's last answer, byte for byte
                    # (sequence bytes included): the count, each definition, their EOF
                    self._names, self._convert, self._rows = list(known[1]), list(known[2]), []
                    self._seq = (self._seq + len(known[1]) + 2) & 0xFF
                    self._state = _ROWS
                    at += len(known[0])
                    continue
            size = data[at] | data[at + 1] << 8 | data[at + 2] << 16
            start, stop = at + 4, at + 4 + size
            if size == _LARGE:  # continued in the next packet(s): one body, parts joined
                body, stop, parts = _joined(data, at, self._seq)
                if not parts:
                    break
            elif stop > end:
                break
            else:
                if data[at + 3] != self._seq:
                    raise MalformedAnswer("a packet out of sequence")
                body, parts = data[start:stop], 1
            self._seq = (self._seq + parts) & 0xFF
            at = self._at = stop
            if not body:
                raise MalformedAnswer("an empty packet")
            if self._packet(body):
                if at != end:
                    raise MalformedAnswer("bytes after the answer")
                return True
        # keep what is not parsed yet; inside a result set's column definitions, from its
        # start (remembered whole at their end)
        cut = self._began if self._state in (_COLUMNS, _COLUMNS_END) else at
        self._data, self._at, self._began = data[cut:], at - cut, self._began - cut
        return False

    def _packet(self, body: bytes) -> bool:
        """One packet's body; True when it ends the answer."""
        state = self._state
        if state == _COLUMNS:
            self._column(body)
            self._left -= 1
            if not self._left:
                self._state = _COLUMNS_END
            return False
        first = body[0]
        if state == _COLUMNS_END:
            if first != _EOF or len(body) >= 9:
                raise MalformedAnswer("no EOF after the column definitions")
            self._state = _ROWS
            self._remember()
            return False
        if first == _ERR:  # a statement's error, or one mid-rows: the batch ends there
            self.results.append(_error(body))
            return True
        if state == _ROWS:
            if first == _EOF and len(body) < 9:  # a row starting 0xFE is >= 9 bytes long
                self.results.append(ResultSet(tuple(self._names), tuple(self._rows)))
                self._state = _RESULT
                return len(body) < 5 or not body[3] & _MORE_RESULTS
            self._rows.append(self._row(body))
            return False
        if first == _OK:
            self.results.append(None)
            return not _ok_more(body)
        if first == _NULL:  # LOCAL INFILE: a probe's statements never ask for a file
            raise MalformedAnswer("a request for a local file")
        count, _ = _lenenc(body, 0)
        if not count:
            raise MalformedAnswer("a result set of no columns")
        self._left, self._names, self._convert, self._rows = count, [], [], []
        self._state = _COLUMNS
        return False

    def _remember(self) -> None:
        """This result set's column definitions, for the next answer to the same batch: a
        probe's are ~70 packets (most of its answer) and the same every poll, so the next
        answer compares their bytes at once instead of reading them one by one."""
        index = len(self.results)
        if index < _KNOWN_RESULTS:
            # from the column count to the end of the EOF just parsed (feed's _at)
            self._known[index] = (
                self._data[self._began : self._at],
                tuple(self._names),
                tuple(self._convert),
            )

    def _column(self, body: bytes) -> None:
        """A column definition: catalog, schema, table, original table, name, original name
        (length-encoded), with MariaDB's extended metadata (libmariadb asks for it) one more
        length-encoded string, then always 0x0C and 12 fixed bytes: the character set (2),
        the display length (4), the type (1), flags (2), decimals (1), two zeros. So the
        fixed part is read from the end, whichever strings came before it."""
        at = 0
        for _ in range(4):
            size, at = _lenenc(body, at)
            at += size
        size, at = _lenenc(body, at)
        if at + size + 13 > len(body) or body[-13] != 0x0C:
            raise MalformedAnswer("a short column definition")
        self._names.append(body[at : at + size].decode("utf-8", "replace"))
        self._convert.append(_converter(body[-6], body[-12] | body[-11] << 8))

    def _row(self, body: bytes) -> tuple[Any, ...]:
        values: list[Any] = []
        at, end = 0, len(body)
        for convert in self._convert:
            if at >= end:
                raise MalformedAnswer("a row shorter than its columns")
            first = body[at]
            if first == _NULL:
                values.append(None)
                at += 1
                continue
            if first < 0xFB:
                size, at = first, at + 1
            else:
                size, at = _lenenc(body, at)
            if at + size > end:
                raise MalformedAnswer("a value past its row's end")
            try:
                values.append(convert(body[at : at + size]))
            except (ValueError, ArithmeticError):  # not a number where the type says one
                raise MalformedAnswer("a value not of its column's type") from None
            at += size
        return tuple(values)


_RESULT, _COLUMNS, _COLUMNS_END, _ROWS = 0, 1, 2, 3  # what the next packet is


def _joined(data: bytes, at: int, seq: int) -> tuple[bytes, int, int]:
    """A body of 16 MiB or more, sent as packets of the maximum length and a shorter last
    one (each with the next sequence byte): the parts joined, where the last ends, and how
    many packets it took; (b"", at, 0) while one is missing."""
    parts: list[bytes] = []
    end = len(data)
    while True:
        if at + 4 > end:
            return b"", at, 0
        size = data[at] | data[at + 1] << 8 | data[at + 2] << 16
        if at + 4 + size > end:
            return b"", at, 0
        if data[at + 3] != (seq + len(parts)) & 0xFF:
            raise MalformedAnswer("a packet out of sequence")
        parts.append(data[at + 4 : at + 4 + size])
        at += 4 + size
        if size != _LARGE:
            return b"".join(parts), at, len(parts)


def _error(body: bytes) -> ServerError:
    """An ERR packet: 0xFF, the error number (2), '#' and a SQLSTATE (5), the message."""
    if len(body) < 3:
        return MalformedAnswer("a short error packet")
    code = body[1] | body[2] << 8
    text = body[9:] if body[3:4] == b"#" else body[3:]
    return ServerError(code, text.decode("utf-8", "replace"))


def _ok_more(body: bytes) -> bool:
    """An OK packet's SERVER_MORE_RESULTS_EXISTS: after its two length-encoded integers
    (affected rows, last insert id) come the status flags."""
    at = 1
    for _ in range(2):
        if at >= len(body):
            return False
        at += _lenenc_width(body[at])
    return at + 2 <= len(body) and bool(body[at] & _MORE_RESULTS)


def _lenenc(data: bytes, at: int) -> tuple[int, int]:
    """A length-encoded integer at `at`: its value and where what follows it starts."""
    if at >= len(data):
        raise MalformedAnswer("a length past the packet's end")
    first = data[at]
    if first < 0xFB:
        return first, at + 1
    width = _lenenc_width(first)
    if width == 1 or at + width > len(data):
        raise MalformedAnswer("a bad length")
    return int.from_bytes(data[at + 1 : at + width], "little"), at + width


def _lenenc_width(first: int) -> int:
    """Bytes a length-encoded integer takes, its first byte included."""
    if first < 0xFB:
        return 1
    return {0xFC: 3, 0xFD: 4, 0xFE: 9}.get(first, 1)


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _converter(kind: int, charset: int) -> Converter:
    if kind in _INTEGERS:
        return int
    if kind in _FLOATS:
        return float
    if kind in _DECIMALS:
        return _decimal
    return bytes if charset == _BINARY else _text


def _decimal(value: bytes) -> Decimal:
    return Decimal(value.decode("ascii"))


def answer_complete(data: bytes) -> bool:
    """Whether `data`, from the start of an answer, holds all of it (bytes that are not an
    answer read as incomplete)."""
    try:
        return Answer().feed(data)
    except MalformedAnswer:
        return False


class AnswerCursor:
    """An Answer read as the probe reads a driver's cursor (mpp/probe/lean.py): the first
    result taken by `received`, then `fetchone`, `nextset`, `description`; an ERR packet
    raises ServerError where the driver would raise its error."""

    def __init__(self, answer: Answer) -> None:
        self._results = answer.results
        self._next = 0
        self._rows: tuple[tuple[Any, ...], ...] = ()
        self._at = 0
        self.description: tuple[tuple[str], ...] | None = None

    def __enter__(self) -> AnswerCursor:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def received(self) -> None:
        self._take()

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def nextset(self) -> bool:
        if self._next >= len(self._results):
            return False
        self._take()
        return True

    def _take(self) -> None:
        if self._next >= len(self._results):
            raise MalformedAnswer("no result")
        result = self._results[self._next]
        self._next += 1
        if isinstance(result, ServerError):
            raise result
        if result is None:
            self._rows, self.description = (), None
        else:
            self._rows = result.rows
            self.description = tuple((name,) for name in result.names)
        self._at = 0
