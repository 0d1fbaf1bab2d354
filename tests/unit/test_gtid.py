from hypothesis import given
from hypothesis import strategies as st

from mpp.logic.gtid import Gtids, beyond, contains, parse, union


def test_mariadb_positions() -> None:
    a = parse("0-1-100,1-2-5")
    b = parse("0-2-102")
    assert str(a) == "0-1-100,1-2-5"
    assert str(beyond(a, b)) == "1-2-5"
    assert contains(parse("0-2-102,1-2-5"), a)
    assert not contains(a, b)
    assert str(union(a, b)) == "0-2-102,1-2-5"
    assert parse("").empty and contains(a, parse(""))


def test_mysql_sets() -> None:
    u = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
    a = parse(f"{u.upper()}:1-5:7-9")
    b = parse(f"{u}:1-8")
    assert str(beyond(a, b)) == f"{u}:9"
    assert contains(parse(f"{u}:1-9"), a)
    assert str(union(a, b)) == f"{u}:1-9"


def _ids(g: Gtids) -> set[tuple[str, int]]:
    return {(u, n) for u, spans in g.mysql for a, b in spans for n in range(a, b + 1)}


spans = st.lists(st.tuples(st.integers(1, 40), st.integers(0, 6)), max_size=5)


def _text(uuid: str, parts: list[tuple[int, int]]) -> str:
    return uuid + "".join(f":{a}-{a + w}" for a, w in parts) if parts else ""


@given(spans, spans)
def test_mysql_subtraction_matches_set_semantics(
    x: list[tuple[int, int]], y: list[tuple[int, int]]
) -> None:
    a, b = parse(_text("u1", x)), parse(_text("u1", y))
    assert _ids(beyond(a, b)) == _ids(a) - _ids(b)
    assert contains(a, b) == (_ids(b) <= _ids(a))


def test_errant_on_mariadb_uses_the_promotion_point_and_the_writer() -> None:
    from mpp.logic.gtid import errant

    promoted = parse("0-1-3")
    assert str(errant(parse("0-1-4"), promoted, parse("0-2-9"))) == "0-1-4"
    assert errant(parse("0-2-7"), promoted, parse("0-2-9")).empty  # replicated from db2
    assert errant(parse("0-1-3"), promoted, parse("0-1-3")).empty  # nothing new anywhere
    assert str(errant(parse("0-1-4"), promoted, parse("0-1-3"))) == "0-1-4"
    u = "u1"
    assert str(errant(parse(f"{u}:1-5"), parse(""), parse(f"{u}:1-4"))) == f"{u}:5"


def test_errant_after_two_failovers_counts_the_active_nodes_promotion_point() -> None:
    """db1 left out at 0-1-3 (db2 promoted), db3 promoted at 0-2-9 and writing since: db1,
    still catching up, ends with db2's 0-2-7, which db3 was promoted holding (the one-poll
    false quarantine in docs/reliability.md); a db2 GTID past that point, or another
    server's at the same seq, is still errant."""
    from mpp.logic.gtid import errant

    left_out, head, promoted = parse("0-1-3"), parse("0-3-12"), parse("0-2-9")
    assert str(errant(parse("0-2-7"), left_out, head)) == "0-2-7"  # without the point
    assert errant(parse("0-2-7"), left_out, head, promoted).empty
    assert errant(parse("0-2-9"), left_out, head, promoted).empty
    assert str(errant(parse("0-2-10"), left_out, head, promoted)) == "0-2-10"
    assert str(errant(parse("0-1-7"), left_out, head, promoted)) == "0-1-7"
    assert str(errant(parse("1-2-7"), left_out, head, promoted)) == "1-2-7"  # other domain


_mariadb = st.builds(
    lambda d, s, n: parse(f"{d}-{s}-{n}"),
    st.integers(0, 2),
    st.integers(1, 3),
    st.integers(1, 20),
)


@given(_mariadb, _mariadb, _mariadb, st.lists(_mariadb, max_size=3))
def test_held_positions_only_ever_clear_an_errant_verdict(
    own: Gtids, base: Gtids, head: Gtids, held: list[Gtids]
) -> None:
    """More known history never makes a transaction errant, and never clears one that is
    past every known point of its server's stream."""
    from mpp.logic.gtid import errant

    plain = set(errant(own, base, head).mariadb)
    more = set(errant(own, base, head, *held).mariadb)
    assert more <= plain
    for d, s, n in plain - more:
        assert any(p.mariadb[0][:2] == (d, s) and n <= p.mariadb[0][2] for p in held)
