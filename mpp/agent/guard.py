"""The fence check: every `fence_ttl / 6`, the rule of mpp.agent.fencing, and the fence.

Its own thread, apart from the renewals (a hung store call must not delay a fence) and from
the supervision of mysqld. Timing: the lease runs out `fence_ttl` after the last successful
renewal started; the next check comes at most one period later, the peer probes take at
most `peer_timeout`, then the fence itself (read_only, kills). mpp promotes past the node
only `fence_ttl + fence_margin` after it first saw the newest seq, so `fence_margin` must
cover period + peer_timeout + the fence (docs/agent.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mpp.agent.fencing import fence_reason, kill_reason, lease_expired
from mpp.agent.local import LocalServer
from mpp.agent.peers import count_reachable
from mpp.agent.renewal import Lease

log = logging.getLogger("mpp.agent")


class Guard:
    def __init__(
        self,
        node: str,
        server: LocalServer,
        lease: Lease,
        fence_ttl: float,
        peers: list[str],
        source: str | None,
        fenced: Callable[[str], None],
        stop: threading.Event,
        kill: Callable[[str], bool] | None = None,
    ) -> None:
        """`kill(why)`: SIGKILL mysqld and never restart it (rule 5 of mpp.agent.fencing);
        False when there was no process to kill. None: the agent cannot (rule 5 off)."""
        self.node = node
        self.server = server
        self.lease = lease
        self.fence_ttl = fence_ttl
        self.period = fence_ttl / 6
        self.peer_timeout = min(0.5, self.period)
        self.peers = peers
        self.source = source
        self.fenced = fenced  # tells the supervisor (and so the next report) why, or ''
        self.stop = stop
        self.poke = threading.Event()  # mpp asked: check now
        self._is_fenced = False
        self._last_error = ""
        self.kill = kill
        self.hung_after = 2 * self.period  # two checks in a row without an answer
        self._silent_since: float | None = None  # monotonic: the first unanswered read
        self._killed = False

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    self.check()
                except Exception:  # the check must outlive any one failure
                    log.exception("agent node=%s fence check failed", self.node)
                self.poke.wait(self.period)
                self.poke.clear()
        finally:
            self.server.close()

    def check(self) -> None:
        seen = self.lease.seen
        if seen.in_maintenance(time.time()):
            return  # the operator holds the node: no fence, not even a read
        writable = self.server.writable()
        now = time.monotonic()
        if writable is None:
            self._silent_since = self._silent_since or now
            self._maybe_kill(seen.asked, now)
            return
        self._silent_since = None
        if writable and self._is_fenced:
            log.warning("agent node=%s the server is writable again (not by the agent)", self.node)
            self._is_fenced = False
            self.fenced("")
        age = self.lease.age(time.monotonic())
        reachable = None
        if writable and not seen.asked and lease_expired(age, self.fence_ttl):
            reachable = count_reachable(self.peers, self.peer_timeout, self.source)
        why = fence_reason(
            writable=writable,
            maintenance=False,
            asked=seen.asked,
            lease_age=age,
            fence_ttl=self.fence_ttl,
            reachable=reachable,
            pool_size=1 + len(self.peers),
        )
        if not why:
            return
        started = time.monotonic()
        try:
            done = self.server.fence()
        except Exception as err:  # pymysql's errors above all: tried again next period
            text = f"fence failed: {err}"
            if text != self._last_error:
                log.error("agent node=%s %s (%s)", self.node, text, why)
                self._last_error = text
            return
        self._last_error = ""
        self._is_fenced = True
        took = time.monotonic() - started
        log.warning("agent node=%s FENCED: %s; %s in %.2f s", self.node, why, done, took)
        self.fenced(why)

    def _maybe_kill(self, asked: str, now: float) -> None:
        """Rule 5: a server that does not answer while a fence is due is killed."""
        if self.kill is None or self._killed or self._silent_since is None:
            return
        age = self.lease.age(now)
        reachable = None
        if not asked and lease_expired(age, self.fence_ttl):
            reachable = count_reachable(self.peers, self.peer_timeout, self.source)
        why = kill_reason(
            silent_for=now - self._silent_since,
            hung_after=self.hung_after,
            maintenance=False,
            asked=asked,
            lease_age=age,
            fence_ttl=self.fence_ttl,
            reachable=reachable,
            pool_size=1 + len(self.peers),
        )
        if why and self.kill(why):
            self._killed = True
            log.warning("agent node=%s KILLED mysqld: %s", self.node, why)
            self.fenced(why)
