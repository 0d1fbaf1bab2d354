"""Carrying out the logic's actions on the servers, in order, each under a deadline.

The executor decides nothing: it runs the list the pure logic returned, stops at the first
failure (the logic sees the result next cycle and decides again), and reports an Outcome per
action for the history. SQL comes from the flavor module.

Best-effort actions (fencing a primary that may be hung rather than dead) run in the
background with a long read timeout, so the promotion does not wait for them and a hung
server that wakes up finds the fence already queued. That alone cannot order the fence
before every queued client commit; the guarantee that no acknowledged write is lost comes
from semi-sync (docs/topology.md).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pymysql

from mpp.config import Config, PoolConfig

# the actions are named as plan.Fence, plan.Promote...: the plan is the executor's vocabulary
from mpp.model import plan
from mpp.model.plan import Action, Outcome
from mpp.probe.connection import admin_targets, open_connection, pool_targets, pool_tls
from mpp.probe.flavor import Flavor, detect

log = logging.getLogger("mpp.executor")

_BACKGROUND_FENCE_SECONDS = 30.0
# MySQL client-side errnos start here (2003 cannot connect, 2013 lost...): below it, the
# server answered and refused
_CLIENT_ERRORS = 2000
_SETTLE_SECONDS = 0.05  # for commits in progress to reach their ACK wait (see _fence)


class ActionFailed(Exception):
    pass


class Executor:
    def __init__(self, config: Config, pool: PoolConfig) -> None:
        self.pool = pool
        self.config = config
        self.targets = pool_targets(config, pool)
        # nodes with an admin_address: tried when the main port refuses mpp (1040...)
        self.admin = admin_targets(config, pool)
        # where replicas are pointed: the replication address, which may not be mpp's
        self.addresses = {n.name: n.source_host_port for n in pool.node}
        self.tls = pool_tls(config, pool)  # replication uses TLS as mpp's sessions do
        self._late: deque[Outcome] = deque()

    def run(self, actions: tuple[Action, ...] | list[Action]) -> list[Outcome]:
        """Run in order; stop at the first failure of an action that is not best-effort.

        Consecutive detaches, and consecutive repoints, run at once: each starts with STOP
        SLAVE, which on a semi-sync replica of a hung primary waits about a second, and they
        do not depend on each other.
        """
        outcomes: list[Outcome] = []
        for batch in _batches(actions):
            if batch[0].best_effort:
                threading.Thread(
                    target=self._background, args=(batch[0],), daemon=True, name="fence"
                ).start()
                continue
            if len(batch) == 1:
                done = [self.do(batch[0])]
            else:
                with ThreadPoolExecutor(len(batch), thread_name_prefix="repoint") as pool:
                    done = list(pool.map(self.do, batch))
            for outcome in done:
                log.info(
                    "action %s: %s %s",
                    outcome.action.describe(),
                    "ok" if outcome.ok else "FAILED",
                    outcome.detail,
                )
            outcomes += done
            if not all(o.ok for o in done):
                break
        return outcomes

    def late_outcomes(self) -> list[Outcome]:
        """Outcomes of background actions finished since the last call (for the history)."""
        out = []
        while self._late:
            out.append(self._late.popleft())
        return out

    def _background(self, action: Action) -> None:
        outcome = self.do(action, read_timeout=_BACKGROUND_FENCE_SECONDS)
        log.info("background %s: %s %s", action.describe(), outcome.ok, outcome.detail)
        self._late.append(outcome)

    def do(self, action: Action, read_timeout: float | None = None) -> Outcome:
        started = time.perf_counter()
        # statements that wait (catch-up, STOP SLAVE on a replica of a hung primary) get their
        # action's own timeout on top of the usual one
        timeout = getattr(action, "timeout", 0.0) or self.pool.catchup_timeout
        # a fence asks for read_only before anything else, in its own session (see _fence)
        pending = (
            _ReadOnlyRequest(partial(self.connect, action.node))
            if isinstance(action, plan.Fence)
            else None
        )
        try:
            conn = self.connect(action.node, read_timeout or self.config.query_timeout + timeout)
        except pymysql.MySQLError as err:
            return Outcome(action, False, f"cannot connect: {_text(err)}", _since(started))
        try:
            flavor = detect(conn.get_server_info())  # type: ignore[no-untyped-call]
            if pending is not None:
                detail = self._fence(conn, flavor, pending)
            else:
                detail = self._dispatch(conn, flavor, action)
            return Outcome(action, True, detail, _since(started))
        except (pymysql.MySQLError, ActionFailed) as err:
            return Outcome(action, False, _text(err), _since(started))
        finally:
            conn.close()

    def connect(self, node: str, read_timeout: float) -> pymysql.connections.Connection[Any]:
        """A session to `node`: its main port, else its admin path (admin_address) when the
        server answered there but refused mpp (1040 too many connections, an account
        refused): the way a full primary can still be fenced. A port that does not answer
        at all is not retried elsewhere: the server (or the path to it) is gone."""
        try:
            return open_connection(self.targets[node], read_timeout)
        except pymysql.MySQLError as err:
            admin = self.admin.get(node)
            code = err.args[0] if err.args and isinstance(err.args[0], int) else 0
            if admin is None or not 0 < code < _CLIENT_ERRORS:
                raise
            log.info("%s refused mpp on its main port (%s): through its admin path", node, code)
            return open_connection(admin, read_timeout)

    def _dispatch(self, conn: Any, flavor: Flavor, action: Action) -> str:
        match action:
            case plan.Detach():
                _stop_receiving(conn, flavor)
                return "stopped receiving from the old primary"
            case plan.Unfence():
                _execute(conn, flavor.unfence_sql())
                return "writable again"
            case plan.SetReadOnly():
                _execute(conn, flavor.fence_sql())
                return "read_only on"
            case plan.RelaxSemiSync():
                _execute(conn, flavor.relax_semi_sync_sql())
                return "semi-sync primary off: commits no longer wait for a replica"
            case plan.CatchUp(source=source, timeout=timeout):
                return self._catch_up(conn, flavor, source, timeout)
            case plan.Promote(timeout=timeout, semi_sync=semi):
                return self._promote(conn, flavor, timeout, semi)
            case plan.SemiSync():
                _execute(conn, self._semi_sync_primary_sql(flavor))
                return "semi-sync primary settings applied"
            case plan.Repoint(source=source, semi_sync=semi, keep_writable=ring):
                return self._repoint(conn, flavor, source, semi, fence=not ring)
        raise ActionFailed(f"unknown action {action!r}")

    def _fence(self, conn: Any, flavor: Flavor, pending: _ReadOnlyRequest) -> str:
        """Freeze writes with a pending read_only, then kill client sessions, those waiting
        for a semi-sync acknowledgement last, until read_only is on.

        Neither simple order is safe. read_only alone waits for commits in progress, and a
        commit waiting for an acknowledgement that never comes returns OK when
        semi_sync_timeout ends: a write only this node has. Killing sessions first lets a
        killed group-commit leader stop waiting, and the group's other members, not yet
        killed, get OK (the SIGSTOP bench caught both). While read_only is pending, every new
        write waits behind it ("Waiting for backup lock"), so the set of commits in progress
        is closed; after a short settle each group's leader is waiting for its ACK, and
        killing everyone else before the waiters leaves no member to receive an OK.
        """
        killed = 0
        pending.sent.wait(_BACKGROUND_FENCE_SECONDS)
        if not pending.done.wait(_SETTLE_SECONDS):
            while not pending.done.is_set():
                killed += kill_clients(conn, flavor)
                pending.done.wait(0.05)
        if pending.failure is not None:
            raise pending.failure
        killed += kill_clients(conn, flavor)  # the rest reconnect elsewhere
        return f"read_only on, {killed} client connection(s) killed"

    def _catch_up(self, conn: Any, flavor: Flavor, source: str, timeout: float) -> str:
        """Wait until this node applied everything the (fenced) source has written."""
        src = open_connection(self.targets[source])
        try:
            with src.cursor() as cur:
                cur.execute(flavor.binlog_pos_sql)
                row = cur.fetchone()
                position = str(row[0] if row else "")
        finally:
            src.close()
        return self._wait(conn, flavor, position, timeout, f"{source}'s {position}")

    def _wait(self, conn: Any, flavor: Flavor, position: str, timeout: float, what: str) -> str:
        if not position:
            return "nothing to wait for"
        sql, success = flavor.wait_sql()
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute(sql, (position, max(0.0, timeout)))
            row = cur.fetchone()
        if row is None or row[0] != success:
            raise ActionFailed(f"not caught up with {what} within {timeout:g}s")
        return f"caught up with {what} in {(time.perf_counter() - t0) * 1000:.0f} ms"

    def _promote(self, conn: Any, flavor: Flavor, timeout: float, semi_sync: bool) -> str:
        steps = []
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(flavor.replica_status_sql)
            row = cur.fetchone()
        rep = flavor.replication(row)
        if rep is not None:
            # stop receiving first, so the position we wait for is final
            _stop_receiving(conn, flavor)
            with conn.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute(flavor.replica_status_sql)
                rep = flavor.replication(cur.fetchone())
            received = rep.gtid_io_pos if rep else ""
            steps.append(self._wait(conn, flavor, received, timeout, f"its relay log {received}"))
        _execute(conn, flavor.promote_sql())
        steps.append("replication reset, writable")
        if semi_sync:
            _execute(conn, self._semi_sync_primary_sql(flavor))
            strict = self.pool.semi_sync == "strict"
            steps.append("strict semi-sync primary on" if strict else "semi-sync primary on")
        return "; ".join(steps)

    def _semi_sync_primary_sql(self, flavor: Flavor) -> list[str]:
        """The primary side of semi-sync with the pool's timeout, or strict (the timeout at
        its maximum, wait-no-replica on): Promote and SemiSync."""
        strict = self.pool.semi_sync == "strict"
        return flavor.semi_sync_sql(True, int(self.pool.semi_sync_timeout * 1000), strict=strict)

    def _repoint(
        self, conn: Any, flavor: Flavor, source: str, semi_sync: bool, fence: bool = True
    ) -> str:
        host, port = self.addresses[source]
        prepare, change, start = flavor.repoint_sql()
        tls_sql, tls_values = flavor.tls_clause(self.tls)
        beat_sql, beat_values = flavor.heartbeat_clause(self.config.mpp.interval)
        if fence:
            _execute(conn, flavor.fence_sql())
        _kill_receiver(conn, flavor)  # its STOP must not wait for a hung old source
        repl_password = self.config.repl_password(self.pool).get_secret_value()
        with conn.cursor() as cur:
            for sql in prepare:
                cur.execute(sql)
            if semi_sync:
                for sql in flavor.semi_sync_sql(False, 0):
                    cur.execute(sql)
            values = (host, port, self.pool.repl_user, repl_password, *tls_values, *beat_values)
            cur.execute(change + tls_sql + beat_sql, values)
            cur.execute(start)
        mode = "read_only on" if fence else "read_only left as it was (ring member)"
        return f"replicating from {source} ({host}:{port}), {mode}"


class _ReadOnlyRequest:
    """SET GLOBAL read_only (super_read_only on MySQL) in a session of its own, started
    before the fence's other session connects: on a hung server both connections queue, and
    the request is among the first things the server runs when it wakes up."""

    def __init__(self, connect: Callable[[float], pymysql.connections.Connection[Any]]) -> None:
        self.sent = threading.Event()
        self.done = threading.Event()
        self.failure: BaseException | None = None
        threading.Thread(target=self._run, args=(connect,), daemon=True, name="read-only").start()

    def _run(self, connect: Callable[[float], pymysql.connections.Connection[Any]]) -> None:
        try:
            conn = connect(_BACKGROUND_FENCE_SECONDS)
            try:
                flavor = detect(conn.get_server_info())  # type: ignore[no-untyped-call]
                self.sent.set()
                _execute(conn, flavor.fence_sql())
            finally:
                conn.close()
        except BaseException as err:  # reported by the fence, in the executor's thread
            self.failure = err
        finally:
            self.sent.set()
            self.done.set()


def kill_clients(conn: Any, flavor: Flavor) -> int:
    """KILL every client session of a fenced server, in `kill_order`; how many went. Shared
    by mpp's fence and the agent's self-fence, which must kill in the same order."""
    killed = 0
    with conn.cursor() as cur:
        cur.execute(flavor.client_threads_sql)
        for thread_id in kill_order(cur.fetchall(), flavor):
            try:
                cur.execute(f"KILL CONNECTION {int(thread_id)}")
                killed += 1
            except pymysql.MySQLError:
                pass  # it ended on its own meanwhile
    return killed


def kill_order(rows: Sequence[tuple[Any, Any]], flavor: Flavor) -> list[int]:
    """Session ids to kill, those waiting for a semi-sync acknowledgement last.

    With AFTER_SYNC and binlog group commit, one session (the group's leader) waits for the
    acknowledgement on behalf of the whole group. Killed, it stops waiting and the group
    commits: a member not yet killed gets OK for a write that no replica has, which is lost
    with the failover (the bench saw this about once in 20 SIGSTOP runs). A group's members
    are all in the processlist before its leader starts to wait, so killing everyone else
    first, and the waiters of that same listing after, leaves no member to receive an OK.
    """
    waiting = [int(i) for i, state in rows if flavor.waits_for_ack(state)]
    others = [int(i) for i, state in rows if not flavor.waits_for_ack(state)]
    return others + waiting


def _batches(actions: tuple[Action, ...] | list[Action]) -> list[list[Action]]:
    """Group consecutive detaches or repoints so they can run at once; the rest runs alone."""
    out: list[list[Action]] = []
    for action in actions:
        kind = type(action)
        if out and kind in (plan.Detach, plan.Repoint) and all(type(a) is kind for a in out[-1]):
            out[-1].append(action)
        else:
            out.append([action])
    return out


def _kill_receiver(conn: Any, flavor: Flavor) -> None:
    """Interrupt the replication receiver where the flavor allows it, so that the STOP that
    follows does not wait for a hung source (Flavor.io_thread_ids_sql: a second saved)."""
    if not flavor.io_thread_ids_sql:
        return
    with conn.cursor() as cur:
        cur.execute(flavor.io_thread_ids_sql)
        killed = cur.fetchall()
        for (thread_id,) in killed:
            with contextlib.suppress(pymysql.MySQLError):  # it stopped on its own meanwhile
                cur.execute(f"KILL CONNECTION {int(thread_id)}")
        # Then until the killed thread is gone. A STOP that starts while the thread is
        # still on its way out waited a whole second (1,003 ms in 7 of 12 detaches from a
        # hung primary, MariaDB 10.11: as if the thread's last signal went by before the
        # STOP waited for it); one that starts after it returns in milliseconds.
        deadline = time.monotonic() + _RECEIVER_GONE_SECONDS
        while killed and time.monotonic() < deadline:
            time.sleep(0.002)
            cur.execute(flavor.io_thread_ids_sql)
            killed = cur.fetchall()


_RECEIVER_GONE_SECONDS = 0.5  # past this the STOP waits for it as it did before


def _stop_receiving(conn: Any, flavor: Flavor) -> None:
    _kill_receiver(conn, flavor)
    with conn.cursor() as cur:
        cur.execute(flavor.stop_io_sql)


def _execute(conn: Any, statements: list[str]) -> None:
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)


def _since(started: float) -> float:
    return time.perf_counter() - started


def _text(err: BaseException) -> str:
    if isinstance(err, pymysql.MySQLError) and len(err.args) > 1:
        return f"{err.args[0]} {err.args[1]}"
    return str(err) or type(err).__name__
