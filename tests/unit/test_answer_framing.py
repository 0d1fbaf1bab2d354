"""mpp/probe/answer.py on generated answers (tests/integration/test_probe_answer.py has the
real server's): any batch of OK packets, result sets and a final ERR, with rows of any
bytes a server can send, reads complete when whole and never before. Rows are drawn to look
like framing: starting 0xFE (a row whose first value is 16 MiB or more), or 5 bytes long.
(A row never starts 0xFF, nor 0xFE below 9 bytes: no length-encoded value does.)"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mpp.probe.answer import answer_complete
from tests.examples import examples

_MORE = 0x0008


def _packets(bodies: list[bytes]) -> bytes:
    return b"".join(
        len(b).to_bytes(3, "little") + bytes([seq % 256]) + b for seq, b in enumerate(bodies, 1)
    )


def _eof(more: bool) -> bytes:
    return b"\xfe\x00\x00" + bytes([0x22 | (_MORE if more else 0)]) + b"\x00"


def _ok(more: bool) -> bytes:
    return b"\x00\x00\x00" + bytes([0x02 | (_MORE if more else 0)]) + b"\x00\x00\x00"


rows = st.one_of(
    st.binary(min_size=1, max_size=40).filter(lambda b: b[0] not in (0xFE, 0xFF)),
    st.binary(min_size=8, max_size=30).map(lambda b: b"\xfe" + b),  # >= 9 bytes
    st.binary(min_size=4, max_size=4).map(lambda b: b"\x05" + b),  # EOF-sized
)
result_sets = st.tuples(
    st.integers(min_value=1, max_value=60),  # columns
    st.lists(rows, max_size=6),
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
        columns, values = part
        bodies.append(bytes([columns]))
        bodies += [b"\x03def\x00\x00\x00\x01c\x00\x0c!\x00"] * columns
        bodies.append(_eof(False))
        bodies += values
        bodies.append(_eof(more))
    if error_at_end:
        bodies.append(b"\xff\x7a\x04#42S02no such table")
    return _packets(bodies)


@settings(max_examples=examples(300), deadline=None)
@given(statements, st.booleans())
def test_an_answer_is_complete_when_whole_and_never_before(
    parts: list[object], error_at_end: bool
) -> None:
    whole = _batch(parts, error_at_end)
    assert answer_complete(whole)
    assert not any(answer_complete(whole[:k]) for k in range(len(whole)))


def test_a_packet_of_the_maximum_length_continues_in_the_next() -> None:
    """A row of 16 MiB or more comes in parts; a part is never a packet of its own, even
    when its bytes are those of the final EOF."""
    head = _packets([b"\x01", b"\x03def", _eof(False)])
    first = (0xFFFFFF).to_bytes(3, "little") + b"\x04" + b"\x01" + b"x" * (0xFFFFFF - 1)
    rest = len(_eof(False)).to_bytes(3, "little") + b"\x05" + _eof(False)
    final = len(_eof(False)).to_bytes(3, "little") + b"\x06" + _eof(False)
    assert not answer_complete(head + first + rest), "the row's last part is not its EOF"
    assert answer_complete(head + first + rest + final)
