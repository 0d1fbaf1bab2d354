"""A throw-away MariaDB cluster on 127.0.0.1 for the demo and the integration tests.

Everything lives in one directory D so that a sandbox can be inspected, resumed after a
reboot (``up`` again) and removed without leaving anything behind::

    D/sandbox.json        what we started (nodes, ports, PIDs, topology, setup progress)
    D/mpp.password        the monitor account's password (0600), reused by every ``up``
    D/mpp.toml            an mpp config pointing at the sandbox (written once, user-editable)
    D/.template/data      one ``mariadb-install-db`` result, copied for every node (with
                          MPP_SANDBOX_TEMPLATES set: one there for every sandbox instead)
    D/dbN/my.cnf          per-node config (also usable as ``mariadb --defaults-file=...``)
    D/dbN/data            datadir; socket, PID file and error.log sit next to it

Only processes recorded here, still named ``mariadbd`` and carrying our ``--datadir`` on
their command line are ever signalled, so a stale PID that was reused by something else is
left alone.

A support package, not a stage of mpp: it imports nothing else of mpp, so tests and
benchmarks can build a cluster without the code under test. Its rooms: ``lifecycle`` (the
verbs re-exported here), ``layout`` (paths in D), ``state`` (sandbox.json and its lock),
``accounts`` (users and passwords), ``sessions`` (connecting to nodes), ``processes``
(which PIDs are ours, signals, ports), ``server`` (datadirs, my.cnf, starting mariadbd),
``replication`` (ring or star, GTID), ``mpp_config`` (D/mpp.toml) and ``etcd`` (a local
etcd and test certificates, imported as ``mpp.sandbox.etcd``).
"""

from __future__ import annotations

from mpp.sandbox.accounts import (
    APP_DATABASE,
    APP_PASSWORD,
    APP_USER,
    MPP_USER,
    REPL_PASSWORD,
    REPL_USER,
    ROOT_PASSWORD,
)
from mpp.sandbox.errors import SandboxError
from mpp.sandbox.lifecycle import (
    SandboxNode,
    destroy,
    down,
    nodes,
    start_node,
    status,
    stop_node,
    up,
)
from mpp.sandbox.server import TEMPLATES_ENV
from mpp.sandbox.sessions import admin_connect, server_id_at
from mpp.sandbox.state import Topology

__all__ = [
    "APP_DATABASE",
    "APP_PASSWORD",
    "APP_USER",
    "MPP_USER",
    "REPL_PASSWORD",
    "REPL_USER",
    "ROOT_PASSWORD",
    "TEMPLATES_ENV",
    "SandboxError",
    "SandboxNode",
    "Topology",
    "admin_connect",
    "destroy",
    "down",
    "nodes",
    "server_id_at",
    "start_node",
    "status",
    "stop_node",
    "up",
]
