"""What mpp tells load balancers and clients, recorded from their side, and judged against
the servers: no surface may send a client to a node that is not the primary.

Three surfaces say where writes go: the HTTP rw check (`GET /v1/check/POOL/NODE/rw`, what
HAProxy's httpchk or keepalived asks), the HAProxy agent-check port (`POOL/NODE/rw`), and
the built-in router's rw port (it forwards each new connection). `SurfaceWatch` asks the
first two about every node every 100 ms; `RouterClient` connects through the router, as
an application would, and writes through it.

The judge is the read_only sampler (mpp.faults.watchers), not mpp's own record: an answer
"UP for rw" about a node is wrong when every sample of that node around the answer saw it
read-only (a balancer believing it would send writes to a replica, or to a fenced old
primary). A node that did not answer the sampler (hung, down) proves nothing either way;
two nodes UP for rw in one round is wrong whatever the servers say. A router connection
is judged by the session itself: the node it landed on, and that node's read_only at that
moment, confirmed by the sampler the same way (a fence racing the connection's login is
not a wrong route).
"""

from __future__ import annotations

import contextlib
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pymysql

from ._sql import TABLE, Background, Conn, app_connect, now, table_name
from .watchers import Round
from .workload import REFUSED_BY_READ_ONLY, Ack

# how far from an answer the samples that judge it may be: two of the sampler's periods
# (50 ms) plus the time a sample takes
_WITHIN = 0.3


@dataclass(frozen=True)
class Answer:
    """One surface's word about one node: UP for rw or not (None: no answer)."""

    asked: float
    at: float
    surface: str
    node: str
    up: bool | None


@dataclass(frozen=True)
class Landing:
    """One connection through the router's rw port: where it landed and in what state."""

    started: float
    at: float
    node: str
    read_only: int


class SurfaceWatch(Background):
    """Asks the HTTP rw check and the agent-check about every node, all at once, every
    `every` seconds, and keeps each answer."""

    def __init__(
        self,
        pool: str,
        nodes: list[str],
        api: tuple[str, int] | None,
        agent: tuple[str, int] | None,
        every: float = 0.1,
        timeout: float = 0.5,
    ) -> None:
        super().__init__("surface-watch")
        self.pool = pool
        self.nodes = nodes
        self.api = api
        self.agent = agent
        self.every = every
        self.timeout = timeout
        self.rounds: list[list[Answer]] = []
        jobs = len(nodes) * ((api is not None) + (agent is not None))
        self._pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="surface")
        self._http = httpx.Client(timeout=timeout)

    def _http_check(self, node: str) -> Answer:
        assert self.api is not None
        host, port = self.api
        url = f"http://{host}:{port}/v1/check/{self.pool}/{node}/rw"
        asked = now()
        try:
            up: bool | None = self._http.get(url).status_code == 200
        except httpx.HTTPError:
            up = None
        return Answer(asked, now(), "http rw check", node, up)

    def _agent_check(self, node: str) -> Answer:
        assert self.agent is not None
        asked = now()
        try:
            with socket.create_connection(self.agent, timeout=self.timeout) as s:
                s.sendall(f"{self.pool}/{node}/rw\n".encode())
                line = s.makefile("rb").readline(512).decode(errors="replace")
            words = line.split("#", 1)[0].split()
            up: bool | None = "up" in words if words else None
        except OSError:
            up = None
        return Answer(asked, now(), "agent-check", node, up)

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                futures = []
                for node in self.nodes:
                    if self.api is not None:
                        futures.append(self._pool.submit(self._http_check, node))
                    if self.agent is not None:
                        futures.append(self._pool.submit(self._agent_check, node))
                self.rounds.append([f.result() for f in futures])
                self.stop.wait(self.every)
        finally:
            self._http.close()

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def answers(self) -> list[Answer]:
        return [a for r in list(self.rounds) for a in r]


class RouterClient(Background):
    """An application behind the router: a new connection through the rw port every
    `every` seconds, each asking where it landed and writing one row (ids from `first_id`,
    acknowledged ones recorded like the writer's, so the lost-write check covers the
    router's path too)."""

    def __init__(
        self,
        port: int,
        ports: dict[str, int],
        first_id: int,
        every: float = 0.1,
        timeout: float = 5.0,
        table: str = TABLE,
    ) -> None:
        super().__init__("router-client")
        self.port = port
        self.node_at = {p: n for n, p in ports.items()}
        self.next_id = first_id
        self.every = every
        self.timeout = timeout
        self.landings: list[Landing] = []
        self.acks: list[Ack] = []
        self.errors: list[tuple[float, str]] = []
        self._sql = f"INSERT INTO {table_name(table)} (id) VALUES (%s)"

    def _once(self) -> None:
        started = now()
        conn: Conn | None = None
        try:
            # the router holds a new rw connection while no node may take writes (failover,
            # switchover): a long connect timeout lets it
            conn = app_connect(self.port, timeout=self.timeout)
            with conn.cursor() as cur:
                cur.execute("SELECT @@port, @@global.read_only")
                row = cur.fetchone()
            if row is None:
                return
            node = self.node_at.get(int(row[0]), f"port {row[0]}")
            self.landings.append(Landing(started, now(), node, int(row[1])))
            i = self.next_id
            self.next_id += 1
            with conn.cursor() as cur:
                cur.execute(self._sql, (i,))
            self.acks.append(Ack(i, now(), node))
        except pymysql.MySQLError as err:
            code = err.args[0] if err.args else 0
            if code not in REFUSED_BY_READ_ONLY and len(self.errors) < 200:
                self.errors.append((now(), str(err)[:200]))
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def run(self) -> None:
        while not self.stop.is_set():
            self._once()
            self.stop.wait(self.every)

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=self.timeout + 5)


def _read_only_around(
    rounds: list[Round], node: str, start: float, end: float, grace: float
) -> bool:
    """`node` was read-only from `grace` before `start` until `end`, by the samples: every
    one answered in that stretch (at least one, the earliest no later than `start - grace`)
    and the first one asked after `end` (within `_WITHIN`) saw read_only = 1. A node that
    did not answer, or was not sampled near enough, proves nothing. Samples, not rounds,
    are dated: a round lasts as long as its slowest node.

    `grace` is mpp's poll interval: mpp learns of a change at its next poll, so a node that
    became read-only (a restarted ACTIVE node comes back with read_only = ON) may still be
    called UP until then; after a whole interval it may not."""
    lo = start - grace
    samples = sorted((r.answered.get(node, r.ended), r.read_only.get(node)) for r in rounds)
    window = [(t, v) for t, v in samples if lo <= t <= start]
    window += [(t, v) for t, v in samples if t < lo][-1:]  # the one that dates the start
    after = [(r.started, r.read_only.get(node)) for r in rounds if r.started >= end]
    if not window or not after or abs(min(window)[0] - lo) > _WITHIN:
        return False
    t1, v1 = min(after)
    return all(v == 1 for _, v in window) and v1 == 1 and t1 - end <= _WITHIN


@dataclass(frozen=True)
class Misroute:
    """A client sent, or that would have been sent, to a node that was not the primary."""

    at: float
    what: str


def misroutes(
    rounds: list[Round],
    answers: list[list[Answer]],
    landings: list[Landing],
    grace: float = 0.0,
) -> list[Misroute]:
    """Every time a surface sent, or would have sent, a client to a node that was not the
    primary (one entry each; `summary` groups them)."""
    wrong: list[Misroute] = []
    for batch in answers:
        for surface in sorted({a.surface for a in batch}):
            up = sorted(a.node for a in batch if a.surface == surface and a.up)
            if len(up) > 1:
                wrong.append(
                    Misroute(batch[0].at, f"{surface} said rw UP for {', '.join(up)} at once")
                )
        for a in batch:
            if a.up and _read_only_around(rounds, a.node, a.asked, a.at, grace):
                wrong.append(
                    Misroute(a.at, f"{a.surface} said rw UP for {a.node}, which was read-only")
                )
    for landing in landings:
        if landing.read_only == 1 and _read_only_around(
            rounds, landing.node, landing.started, landing.at, grace
        ):
            wrong.append(
                Misroute(landing.at, f"router sent a client to {landing.node}, which was read-only")
            )
    return wrong


def summary(wrong: list[Misroute], since: float = 0.0, limit: int = 5) -> list[str]:
    """The first few kinds of wrong route: how often, and when first (seconds after
    `since`, the workload's start)."""
    kinds: dict[str, list[float]] = {}
    for w in sorted(wrong, key=lambda w: w.at):
        kinds.setdefault(w.what, []).append(w.at)
    return [
        f"{what} (x{len(times)}, first at {times[0] - since:.2f} s)"
        for what, times in list(kinds.items())[:limit]
    ]
