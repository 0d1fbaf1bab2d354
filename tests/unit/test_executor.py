"""The executor's pure helpers: which sessions a fence kills first, which actions run at once."""

from __future__ import annotations

from mpp.act.executor import _batches, kill_order
from mpp.model import Detach, Fence, Promote, Repoint
from mpp.probe.flavor import detect

MARIADB = detect("10.11.6-MariaDB")
MYSQL = detect("8.0.36")


def test_sessions_waiting_for_a_semi_sync_ack_are_killed_last() -> None:
    """A group-commit leader killed first would let its followers get OK for writes no
    replica has; everyone else goes first."""
    rows = [
        (7, "Waiting for semi-sync ACK from slave"),
        (8, "Commit"),
        (9, None),
        (10, "Waiting for semi-sync ACK from slave"),
        (11, "Update"),
    ]
    assert kill_order(rows, MARIADB) == [8, 9, 11, 7, 10]
    assert kill_order([(3, "Waiting for semi-sync ACK from replica"), (4, "")], MYSQL) == [4, 3]
    assert kill_order([], MARIADB) == []


def test_detaches_and_repoints_run_in_batches_the_rest_alone() -> None:
    actions = [
        Fence("db1", best_effort=True),
        Detach("db2"),
        Detach("db3"),
        Promote("db2"),
        Repoint("db3", source="db2"),
        Repoint("db4", source="db2"),
    ]
    assert _batches(actions) == [
        [Fence("db1", best_effort=True)],
        [Detach("db2"), Detach("db3")],
        [Promote("db2")],
        [Repoint("db3", source="db2"), Repoint("db4", source="db2")],
    ]
