"""A network partition on one machine: the primary, its agent and its clients on one side,
everyone else (the replicas, mpp, the store) on the other.

Every sandbox node listens on 127.0.0.1, so "sides" are made of source addresses: the
primary's side binds its sessions to `client_source` (127.0.0.6 by default; any 127/8
address is local on Linux), everything else connects from 127.0.0.1. `isolate_primary`
then drops, with iptables on `lo` (INPUT sees every loopback packet once):

1. every packet to the node's port that does not come from `client_source`, and every
   packet from the node's port that does not go to it: replicas' IO threads, mpp's probes
   and the writer on the other side lose the primary, silently (DROP, not REJECT: a real
   partition answers nothing, so only timeouts notice);
2. every packet between `client_source` and each other node's port, and each extra port
   given (mpp's API, etcd's client ports): the primary's agent cannot reach its peers or
   mpp, and its clients cannot find the new primary.

The rules carry a comment tag naming the port and the source, and the heal deletes exactly
those rules (as `injectors.cut_from_mpp` does). Run it only on ports of your own: the rules
apply to the whole machine's loopback.

While the partition holds, the judges still have to see both sides: `SocketSampler` reads
read_only through each node's Unix socket, which no iptables rule touches, and
`PinnedClient` is the primary side's application, writing from `client_source`.
"""

from __future__ import annotations

import contextlib
import shlex
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pymysql

from mpp import sandbox
from mpp.sandbox.layout import socket_path

from ._sql import Background, Conn, drop, err_text, now, ports, table_name
from .injectors import Undo, _once
from .watchers import ReadOnlySampler, _Probe
from .workload import REFUSED_BY_READ_ONLY, TABLE, Ack

__all__ = [
    "CLIENT_SOURCE",
    "PinnedClient",
    "SocketSampler",
    "allow_from",
    "clear_rules",
    "isolate_primary",
    "leftover_rules",
    "partition_rules",
    "reachable",
    "socket_sql",
]

CLIENT_SOURCE = "127.0.0.6"
TAG = "mpp-faults-isolate"


def partition_rules(
    port: int, others: Iterable[int], source: str = CLIENT_SOURCE
) -> list[list[str]]:
    """The match part of each DROP rule (after `INPUT -i lo -p tcp`), in insertion order:
    what `isolate_primary` puts in, given here apart so that it can be read and tested."""
    rules = [
        ["!", "-s", source, "--dport", str(port)],  # nobody but its side reaches the node
        ["!", "-d", source, "--sport", str(port)],  # the node answers nobody but its side
    ]
    for other in sorted(set(others) - {port}):
        rules.append(["-s", source, "--dport", str(other)])  # its side reaches nobody else
        rules.append(["-d", source, "--sport", str(other)])
    return rules


def isolate_primary(
    d: Path,
    node: str,
    client_source: str = CLIENT_SOURCE,
    extra_ports: Iterable[int] = (),
) -> Undo:
    """Partition {node, whatever binds `client_source`} from everything else (see the
    module text): returns the Undo that deletes exactly the rules put in. `extra_ports`:
    ports beyond the other nodes' that the node's side must not reach (mpp's API, etcd)."""
    by_name = ports(d)
    port = by_name[node]
    others = [p for n, p in by_name.items() if n != node] + [int(p) for p in extra_ports]
    tag = f"{TAG}-{port}-{client_source}"
    rules = partition_rules(port, others, client_source)
    done: list[list[str]] = []
    try:
        for rule in rules:
            _iptables("-I", rule, tag)
            done.append(rule)
    except BaseException:
        for rule in reversed(done):
            with contextlib.suppress(RuntimeError):
                _iptables("-D", rule, tag)
        raise

    def heal() -> None:
        for rule in reversed(rules):
            _iptables("-D", rule, tag)

    return _once(heal)


def cut_port(port: int) -> Undo:
    """Every TCP connection to 127.0.0.1:`port` dropped (its SYN never answered): the cut
    between an mpp instance and one of its checkpoints. Tagged as the partition rules are,
    so clear_rules([port]) removes it whatever became of the heal."""
    rule = ["--dport", str(port)]
    tag = f"{TAG}-{port}-checkpoint"
    _iptables("-I", rule, tag)
    return _once(lambda: _iptables("-D", rule, tag))


class Gateway(Background):
    """A TCP listener standing for a network device an mpp instance watches as one of its
    checkpoints (MPP's "internal" kind: the LAN's router); it accepts and closes."""

    def __init__(self, port: int) -> None:
        super().__init__(f"gateway-{port}")
        self.port = port
        self.sock = socket.create_server(("127.0.0.1", port), backlog=64)
        self.sock.settimeout(0.2)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.close()

    def close(self) -> None:
        super().close()
        self.sock.close()


def _iptables(op: str, rule: list[str], tag: str) -> None:
    spec = ["INPUT", "-i", "lo", "-p", "tcp", *rule, "-m", "comment", "--comment", tag]
    try:
        # -w: other tests on the machine change rules too; wait for the xtables lock
        subprocess.run(
            ["iptables", "-w", "5", op, *spec, "-j", "DROP"], check=True, capture_output=True
        )
    except FileNotFoundError:
        raise RuntimeError("iptables is not installed: scripts/bootstrap.sh installs it") from None
    except subprocess.CalledProcessError as err:
        why = err.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"iptables {op} {' '.join(rule)}: {why}") from None


def leftover_rules(port: int | None = None) -> list[str]:
    """The partition rules in INPUT now (of one node's port, or all): [] after every heal."""
    done = subprocess.run(
        ["iptables", "-w", "5", "-S", "INPUT"], check=True, capture_output=True, text=True
    )
    mark = f"{TAG}-{port}-" if port is not None else TAG
    return [ln for ln in done.stdout.splitlines() if mark in ln]


def clear_rules(ports: Iterable[int]) -> int:
    """Delete every partition rule of these node ports, whoever put it in and whatever its
    Undo's fate (a scenario that failed before its heals ran): the ports go back to the
    allocator, and a rule left behind would cut the next user of one off. How many went."""
    gone = 0
    for port in ports:
        for line in leftover_rules(port):
            spec = shlex.split(line)
            if spec[:2] != ["-A", "INPUT"]:
                continue
            done = subprocess.run(
                ["iptables", "-w", "5", "-D", *spec[1:]], capture_output=True, check=False
            )
            gone += done.returncode == 0
    return gone


def reachable(port: int, source: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether a TCP connection from `source` to 127.0.0.1:`port` completes within
    `timeout`: a dropped SYN is a timeout, which is what a partition looks like."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.bind((source, 0))
            s.connect(("127.0.0.1", port))
        except OSError:
            return False
    return True


def allow_from(d: Path, source: str) -> None:
    """The `app` account from `source` on every node (unreplicated, as the sandbox makes
    its accounts): the sandbox grants it on 127.0.0.1 only, and the primary side's client
    connects from `source`."""
    account = f"'{sandbox.APP_USER}'@'{source}'"
    for n in sandbox.status(d):
        conn = sandbox.admin_connect(d, n.name, connect_timeout=2, read_timeout=10)
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION sql_log_bin = 0")
                cur.execute(
                    f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY %s", (sandbox.APP_PASSWORD,)
                )
                cur.execute(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON "
                    f"`{sandbox.APP_DATABASE}`.* TO {account}"
                )
        finally:
            conn.close()


def socket_sql(d: Path, node: str, sql: str, timeout: float = 2.0) -> list[Any]:
    """One statement as root through the node's Unix socket: what an operator on the
    node's own host can still do while the network has cut it off."""
    conn = sandbox.admin_connect(
        d,
        node,
        unix_socket=str(socket_path(d.resolve(), node)),
        connect_timeout=timeout,
        read_timeout=timeout,
    )
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


class _SocketProbe(_Probe):
    """The sampler's probe through the node's Unix socket (root@localhost)."""

    def read_only(self) -> int | None:
        try:
            if self.conn is None:
                self.conn = sandbox.admin_connect(
                    self.d,
                    self.node,
                    unix_socket=str(socket_path(self.d.resolve(), self.node)),
                    connect_timeout=self.timeout,
                    read_timeout=self.timeout,
                    write_timeout=self.timeout,
                )
            with self.conn.cursor() as cur:
                cur.execute("SELECT @@global.read_only")
                row = cur.fetchone()
            return int(row[0]) if row else None
        except Exception:
            self.close()
            return None


class SocketSampler(ReadOnlySampler):
    """The read_only sampler of the matrix, reading each node through its Unix socket: a
    partitioned primary is cut from every TCP client on the other side, the sampler
    included, and a sampler that cannot see it would count it not writable, hiding the
    very split brain a partition risks."""

    def __init__(
        self, d: Path, nodes: list[str] | None = None, every: float = 0.05, timeout: float = 0.5
    ) -> None:
        super().__init__(d, nodes, every, timeout)
        self._probes = [_SocketProbe(p.d, p.node, p.timeout) for p in self._probes]


class PinnedClient(Background):
    """The primary side's application: INSERTs to one node from `source` (so the partition
    keeps it with the node), each acknowledged one recorded. A refused write (read_only) is
    certainly not written; one without an answer is ambiguous, never counted as lost."""

    def __init__(
        self,
        node: str,
        port: int,
        first_id: int,
        source: str = CLIENT_SOURCE,
        timeout: float = 5.0,
        pause: float = 0.01,
        table: str = TABLE,
    ) -> None:
        super().__init__(f"pinned-{node}")
        self.node = node
        self.port = port
        self.source = source
        self.timeout = timeout
        self.pause = pause
        self.next_id = first_id
        self.acks: list[Ack] = []
        self.refused: list[tuple[float, int]] = []
        self.ambiguous: list[int] = []
        self.errors: list[tuple[float, str]] = []
        self._sql = f"INSERT INTO {table_name(table)} (id) VALUES (%s)"

    def _connect(self) -> Conn:
        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            bind_address=self.source,
            user=sandbox.APP_USER,
            password=sandbox.APP_PASSWORD,
            database=sandbox.APP_DATABASE,
            autocommit=True,
            connect_timeout=self.timeout,
            read_timeout=self.timeout,
            write_timeout=self.timeout,
            ssl_disabled=True,
        )

    def run(self) -> None:
        conn: Conn | None = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = self._connect()
                i = self.next_id
                self.next_id += 1
                try:
                    sent = now()
                    with conn.cursor() as cur:
                        cur.execute(self._sql, (i,))
                    self.acks.append(Ack(i, now(), self.node, sent))
                except pymysql.MySQLError as err:
                    if err.args and err.args[0] in REFUSED_BY_READ_ONLY:
                        self.refused.append((now(), i))
                    else:
                        self.ambiguous.append(i)
                    raise
            except Exception as err:
                if len(self.errors) < 200:
                    self.errors.append((now(), err_text(err)[:100]))
                drop(conn)
                conn = None
                self.stop.wait(max(self.pause, 0.05))
                continue
            if self.pause:
                self.stop.wait(self.pause)
        drop(conn)

    def snapshot(self) -> list[Ack]:
        return list(self.acks)

    def first_refusal(self, after: float) -> float | None:
        """When read_only first refused one of its writes after `after`: the fence as the
        primary side's application sees it."""
        return next((t for t, _ in list(self.refused) if t > after), None)
