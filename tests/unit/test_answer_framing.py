"""mpp/probe/answer.py on generated answers (tests/integration/test_probe_answer.py has the
real server's): any batch of OK packets, result sets and a final ERR, with values of any
bytes a server can send, reads complete when whole and never before, whatever chunks it
comes in, and gives back the values it was made of. Rows are drawn to look like framing:
starting 0xFE (a value's length in its 9-byte form), or 5 bytes long (an EOF's size), with
value bytes that are themselves packets. (A row never starts 0xFF, nor 0xFE below 9 bytes:
no length-encoded value does.)"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpp.probe.answer import (
    Answer,
    KnownColumns,
    MalformedAnswer,
    ResultSet,
    ServerError,
    answer_complete,
)
from tests.examples import examples

_MORE = 0x0008
_VAR_STRING, _LONGLONG, _BINARY, _UTF8MB4 = 0xFD, 0x08, 63, 45


def _packets(bodies: list[bytes]) -> bytes:
    return b"".join(
        len(b).to_bytes(3, "little") + bytes([seq % 256]) + b for seq, b in enumerate(bodies, 1)
    )


def _eof(more: bool) -> bytes:
    return b"\xfe\x00\x00" + bytes([0x22 | (_MORE if more else 0)]) + b"\x00"


def _ok(more: bool) -> bytes:
    return b"\x00\x00\x00" + bytes([0x02 | (_MORE if more else 0)]) + b"\x00\x00\x00"


def _column(name: bytes, kind: int = _VAR_STRING, charset: int = _BINARY) -> bytes:
    """A column definition as MariaDB sends it to libmariadb (with the extended metadata's
    empty string before the fixed part)."""
    fixed = charset.to_bytes(2, "little") + b"\x10\x00\x00\x00" + bytes([kind]) + b"\x00" * 5
    return b"\x03def\x00\x00\x00" + bytes([len(name)]) + name + b"\x00\x00\x0c" + fixed


def _value(v: bytes | None, long_form: bool) -> bytes:
    if v is None:
        return b"\xfb"
    if long_form:  # the 9-byte form a server uses from 16 MiB: a row starting 0xFE
        return b"\xfe" + len(v).to_bytes(8, "little") + v
    return bytes([len(v)]) + v if len(v) < 0xFB else b"\xfc" + len(v).to_bytes(2, "little") + v


values = st.one_of(
    st.none(),
    st.binary(max_size=30),
    st.just(_packets([_eof(False)])),  # a value that is the final EOF, header and all
    st.binary(min_size=4, max_size=4),  # with one column: a row of an EOF's size
    st.binary(min_size=251, max_size=300),  # a 3-byte length
)
result_sets = st.integers(min_value=1, max_value=5).flatmap(
    lambda columns: st.tuples(
        st.just(columns),
        st.lists(
            st.tuples(st.lists(values, min_size=columns, max_size=columns), st.booleans()),
            max_size=6,
        ),
    )
)
statements = st.lists(st.one_of(st.just("ok"), result_sets), min_size=1, max_size=4)


def _batch(parts: list[object], error_at_end: bool) -> bytes:
    bodies: list[bytes] = []
    for i, part in enumerate(parts):
        more = i < len(parts) - 1 or error_at_end
        if part == "ok":
            bodies.append(_ok(more))
            continue
        assert isinstance(part, tuple)
        columns, rows = part
        bodies.append(bytes([columns]))
        bodies += [_column(b"c%d" % k) for k in range(columns)]
        bodies.append(_eof(False))
        for row, long_form in rows:
            bodies.append(b"".join(_value(v, long_form and k == 0) for k, v in enumerate(row)))
        bodies.append(_eof(more))
    if error_at_end:
        bodies.append(b"\xff\x7a\x04#42S02no such table")
    return _packets(bodies)


def _expected(parts: list[object], error_at_end: bool) -> list[object]:
    out: list[object] = []
    for part in parts:
        if part == "ok":
            out.append(None)
            continue
        assert isinstance(part, tuple)
        columns, rows = part
        out.append((tuple(f"c{k}" for k in range(columns)), tuple(tuple(r) for r, _ in rows)))
    if error_at_end:
        out.append((1146, "no such table"))
    return out


def _got(answer: Answer) -> list[object]:
    return [
        (r.names, r.rows)
        if isinstance(r, ResultSet)
        else (r.args[0], r.args[1])
        if isinstance(r, ServerError)
        else r
        for r in answer.results
    ]


@settings(max_examples=examples(300), deadline=None)
@given(statements, st.booleans(), st.integers(min_value=1, max_value=64))
def test_an_answer_is_complete_when_whole_and_never_before(
    parts: list[object], error_at_end: bool, chunk: int
) -> None:
    whole = _batch(parts, error_at_end)
    assert answer_complete(whole)
    assert not any(answer_complete(whole[:k]) for k in range(len(whole)))
    fed = Answer()
    pieces = [whole[k : k + chunk] for k in range(0, len(whole), chunk)]
    assert [fed.feed(p) for p in pieces] == [False] * (len(pieces) - 1) + [True]
    assert _got(fed) == _expected(parts, error_at_end)
    # the next answer to the same batch, with the columns the first one taught it (whole,
    # and in chunks), and an answer with other columns after it
    known: KnownColumns = {}
    assert Answer(known).feed(whole)
    again = Answer(known)
    assert again.feed(whole) and _got(again) == _expected(parts, error_at_end)
    chunked = Answer(known)
    assert [chunked.feed(p) for p in pieces][-1] and _got(chunked) == _got(again)
    other = _batch([(3, [([b"a", None, b"c"], False)])], False)
    last = Answer(known)
    assert last.feed(other) and _got(last) == [(("c0", "c1", "c2"), ((b"a", None, b"c"),))]


def test_values_are_read_as_their_column_types_say() -> None:
    """Integers as int, text as str (UTF-8), binary as bytes, NULL as None: mysqlclient's
    default conversions for what a probe reads."""
    answer = Answer()
    whole = _packets(
        [
            b"\x03",
            _column(b"n", _LONGLONG),
            _column(b"t", charset=_UTF8MB4),
            _column(b"b"),
            _eof(False),
            _value(b"-42", False) + _value("é ✓".encode(), False) + _value(b"\x00\xff", False),
            b"\xfb\xfb\xfb",
            _eof(False),
        ]
    )
    assert answer.feed(whole)
    assert _got(answer) == [(("n", "t", "b"), ((-42, "é ✓", b"\x00\xff"), (None, None, None)))]


@pytest.mark.parametrize(
    "bodies",
    [
        [b"\x01", _column(b"n", _LONGLONG), _eof(False), _value(b"4x", False), _eof(False)],
        [b"\x02", _column(b"a"), _column(b"b"), _eof(False), _value(b"x", False), _eof(False)],
        [b"\x01", _column(b"a"), _eof(False), b"\x05ab", _eof(False)],
        [b"\x01", b"\x03def\x00", _eof(False)],
        [b"\x01", _column(b"a"), _ok(False)],
        [_ok(True), b""],
        [b"\xfbfile.csv"],
    ],
    ids=[
        "text where the type says a number",
        "a row with fewer values than columns",
        "a value past its row's end",
        "a short column definition",
        "no EOF after the columns",
        "an empty packet",
        "a request for a local file",
    ],
)
def test_bytes_no_server_sends_are_refused(bodies: list[bytes]) -> None:
    """Refused (the prober then drops the session), never taken for an answer or raised
    as anything else."""
    with pytest.raises(MalformedAnswer):
        Answer().feed(_packets(bodies))


def test_a_packet_out_of_sequence_or_after_the_answer_is_refused() -> None:
    """libmariadb refuses a packet whose sequence byte is not the next one; so does Answer,
    and bytes after a whole answer (nothing may follow it: one query in flight) too."""
    whole = _packets([b"\x01", _column(b"a"), _eof(False), _value(b"x", False), _eof(False)])
    assert Answer().feed(whole)
    skipped = bytearray(whole)
    skipped[3] = 2  # the first packet's sequence byte
    with pytest.raises(MalformedAnswer, match="out of sequence"):
        Answer().feed(bytes(skipped))
    with pytest.raises(MalformedAnswer, match="after the answer"):
        Answer().feed(whole + b"\x01\x00\x00\x06\x00")


def test_a_packet_of_the_maximum_length_continues_in_the_next() -> None:
    """A row of 16 MiB or more comes in parts; a part is never a packet of its own, even
    when its bytes are those of the final EOF."""
    head = _packets([b"\x01", _column(b"c"), _eof(False)])
    size = 0xFFFFFF - 4  # the value's last 5 bytes, an EOF's, are the second part
    value = b"\xfe" + size.to_bytes(8, "little") + b"x" * (size - len(_eof(False))) + _eof(False)
    first = (0xFFFFFF).to_bytes(3, "little") + b"\x04" + value[:0xFFFFFF]
    rest = (len(value) - 0xFFFFFF).to_bytes(3, "little") + b"\x05" + value[0xFFFFFF:]
    final = len(_eof(False)).to_bytes(3, "little") + b"\x06" + _eof(False)
    assert not answer_complete(head + first + rest), "the row's last part is not its EOF"
    answer = Answer()
    assert answer.feed(head + first + rest + final)
    result = answer.results[0]
    assert isinstance(result, ResultSet) and result.rows[0][0] == value[9:]
