"""GTID positions and sets as values: parse, compare, subtract (pure, no I/O).

MariaDB writes a position as one `domain-server-seq` per replication domain ("0-1-100");
MySQL writes a set of `uuid:intervals` ("3E11FA47-...:1-5:7"). The two are told apart by
their syntax, so the logic can compare candidates without knowing the server flavor. Both
answer the two questions failover asks: "has A everything B has?" (choose the most advanced
candidate, refuse one that lacks transactions) and "what does A have beyond B?" (errant
transactions on a returning old primary, what a forced takeover may lose).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MARIADB = re.compile(r"^\d+-\d+-\d+$")


@dataclass(frozen=True)
class Gtids:
    """Either MariaDB domain positions or MySQL uuid interval sets (one kind per value)."""

    mariadb: tuple[tuple[int, int, int], ...] = ()  # (domain, server_id, seq), one per domain
    mysql: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = ()  # (uuid, ((start, end),))

    @property
    def empty(self) -> bool:
        return not self.mariadb and not self.mysql

    def __str__(self) -> str:
        if self.mariadb:
            return ",".join(f"{d}-{s}-{n}" for d, s, n in self.mariadb)
        return ",".join(
            uuid + "".join(f":{a}" if a == b else f":{a}-{b}" for a, b in spans)
            for uuid, spans in self.mysql
        )


def parse(text: str) -> Gtids:
    """Parse either syntax; an empty string is the empty position."""
    parts = [p.strip() for p in text.replace("\n", "").split(",") if p.strip()]
    if not parts:
        return Gtids()
    if all(_MARIADB.match(p) for p in parts):
        by_domain: dict[int, tuple[int, int, int]] = {}
        for p in parts:
            d, s, n = (int(x) for x in p.split("-"))
            if d not in by_domain or n > by_domain[d][2]:
                by_domain[d] = (d, s, n)
        return Gtids(mariadb=tuple(sorted(by_domain.values())))
    sets: dict[str, list[tuple[int, int]]] = {}
    for p in parts:
        uuid, *spans = p.split(":")
        if not spans:
            raise ValueError(f"not a GTID: {p!r}")
        for span in spans:
            a, _, b = span.partition("-")
            sets.setdefault(uuid.lower(), []).append((int(a), int(b or a)))
    return Gtids(mysql=tuple((u, _merge(v)) for u, v in sorted(sets.items())))


def _merge(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return tuple(out)


def beyond(a: Gtids, b: Gtids) -> Gtids:
    """What `a` has that `b` lacks (empty when b contains a).

    MariaDB positions carry only the last GTID per domain, so within a domain "more" means a
    higher sequence number; that is exact for one writer at a time per domain, which is
    what a failover pool is (gtid_strict_mode keeps it so).
    """
    if a.mariadb or b.mariadb:
        theirs = {d: n for d, _s, n in b.mariadb}
        return Gtids(mariadb=tuple(g for g in a.mariadb if g[2] > theirs.get(g[0], 0)))
    mine = dict(a.mysql)
    other = dict(b.mysql)
    out: list[tuple[str, tuple[tuple[int, int], ...]]] = []
    for uuid, spans in mine.items():
        left = _subtract(spans, other.get(uuid, ()))
        if left:
            out.append((uuid, left))
    return Gtids(mysql=tuple(out))


def _subtract(
    spans: tuple[tuple[int, int], ...], minus: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for a, b in spans:
        pieces = [(a, b)]
        for c, d in minus:
            nxt: list[tuple[int, int]] = []
            for x, y in pieces:
                if d < x or c > y:
                    nxt.append((x, y))
                    continue
                if x < c:
                    nxt.append((x, c - 1))
                if d < y:
                    nxt.append((d + 1, y))
            pieces = nxt
        out.extend(pieces)
    return tuple(out)


def errant(own: Gtids, promoted: Gtids, active: Gtids, *held: Gtids) -> Gtids:
    """Transactions on a returning node that the ACTIVE node's history does not contain.

    MySQL sets answer this exactly (own minus active). A MariaDB position holds only the last
    GTID per domain, so the question becomes: was that last transaction written after the
    promotion point by someone other than the current primary's stream? A GTID the ACTIVE
    node also ends with (same server, no higher seq) is one it replicated, not an errant one.
    `held`: other positions the ACTIVE node's history is known to contain (where it was
    promoted), read the same way: after two failovers a node still catching up ends with
    the middle primary's stream (0-2-2999), which the ACTIVE node's promotion point
    (0-2-4172) covers once its own writes (0-3-...) have moved its head on.
    """
    if not (own.mariadb or promoted.mariadb or active.mariadb):
        return beyond(own, active)
    base = {d: n for d, _s, n in promoted.mariadb}
    streams = [{d: (s, n) for d, s, n in p.mariadb} for p in (active, *held)]
    out = []
    for d, s, n in own.mariadb:
        if n <= base.get(d, 0):
            continue
        if any(st.get(d, (-1, 0))[0] == s and n <= st[d][1] for st in streams):
            continue
        out.append((d, s, n))
    return Gtids(mariadb=tuple(out))


def contains(a: Gtids, b: Gtids) -> bool:
    """Has `a` everything `b` has?"""
    return beyond(b, a).empty


def union(*positions: Gtids) -> Gtids:
    """The furthest point of several positions (MariaDB: max seq per domain)."""
    text = ",".join(str(p) for p in positions if not p.empty)
    return parse(text)
