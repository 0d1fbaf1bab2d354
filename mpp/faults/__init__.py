"""The fault harness: real failures put into a real sandbox, judged from outside mpp.

Why it exists: unit tests prove that the logic decides well on the observations it is
given; only a scenario proves that the pool stays safe when a server really crashes or
hangs under load. A scenario has three parts, one module each:

- `injectors`: the fault itself. kill -9 (a crash), SIGSTOP (a hang, which the kernel
  hides by still accepting connections), SIGCONT / restart, and two SQL faults that
  produce the states a manager exists to prevent: a second writable node, and a node
  lacking acknowledged writes. Then the faults a scenario runner calls by name, each
  `name(d, node, **options)` returning an `Undo` that heals it: replication threads
  stopped (`stop_io`, `stop_sql`) or failing (`break_io`), a lagging replica (`lag`), a
  node out of connections (`exhaust_connections`) and an errant transaction
  (`errant_write`).
- `workload`: clients writing through the fault as the non-SUPER `app` user, each keeping
  the exact record of what the server acknowledged (a writer that finds the primary by
  itself, and clients pinned to a stale address).
- `watchers`: the verdict, taken on the servers, never from mpp's own view: the most nodes
  ever writable at once (must be 1), the acknowledged ids missing on the final primary
  (must be none), and the timings in between.
- `partition` and `agents`: a partition of the primary with its own side (iptables on
  the loopback, by source address; a sampler through the Unix sockets and a client bound
  to that side to judge both), and an `mpp agent` beside every node, for the rows that
  prove what the node agent adds.

The harness knows nothing of mpp's daemon or logic (it imports only mpp.sandbox), so the
tests and the benches measure mpp the way an application and an operator would see it.
"""

from ._sql import TABLE, WRITE_TIMEOUT, app_connect, err_text, now, ports, root_sql
from .injectors import (
    WRONG_REPL_PASSWORD,
    Fault,
    Undo,
    break_io,
    cut_from_mpp,
    delete_unlogged,
    errant_write,
    exhaust_connections,
    hang,
    inject,
    kill,
    lag,
    resume,
    set_read_only,
    stop_io,
    stop_sql,
)
from .watchers import (
    IoWatch,
    ReadOnlySampler,
    ReadOnlyWatch,
    Round,
    gtid_binlog_pos,
    lost_ids,
    poll_until,
    present_ids,
    replica_status,
    wait_caught_up,
    wait_for,
)
from .workload import REFUSED_BY_READ_ONLY, Ack, PatientClient, StaleClient, Writer, create_table

__all__ = [
    "REFUSED_BY_READ_ONLY",
    "TABLE",
    "WRITE_TIMEOUT",
    "WRONG_REPL_PASSWORD",
    "Ack",
    "Fault",
    "IoWatch",
    "PatientClient",
    "ReadOnlySampler",
    "ReadOnlyWatch",
    "Round",
    "StaleClient",
    "Undo",
    "Writer",
    "app_connect",
    "break_io",
    "create_table",
    "cut_from_mpp",
    "delete_unlogged",
    "err_text",
    "errant_write",
    "exhaust_connections",
    "gtid_binlog_pos",
    "hang",
    "inject",
    "kill",
    "lag",
    "lost_ids",
    "now",
    "poll_until",
    "ports",
    "present_ids",
    "replica_status",
    "resume",
    "root_sql",
    "set_read_only",
    "stop_io",
    "stop_sql",
    "wait_caught_up",
    "wait_for",
]
