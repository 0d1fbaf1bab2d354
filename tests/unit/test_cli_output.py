"""What the CLI prints is never interpreted: untrusted text (a replication error quoting a
row value, a name typed by the operator) is shown as it is (issue 15, item 3), and an
empty answer to a typo is an error, not an empty table (item 12). Real `mpp` processes on
a real SQLite store."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from mpp.model import Event, EventKind, NodeState, PoolState, State
from mpp.store.sqlite import SqliteStore
from tests.builders import config_doc, pool, write_config
from tests.daemons import mpp_command

# what a replica's SQL error can quote from a row: rich markup, a closing tag first
ROW_VALUE = "[/x] [bold]B[/bold] [link=http://evil]click[/link]"


def _mpp(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(mpp_command(config, *args), capture_output=True, text=True, timeout=30)


def _stored(tmp_path: Path) -> Path:
    path = write_config(
        tmp_path / "mpp.toml", config_doc(pool(count=2), mpp={"state": "sqlite://state.db"})
    )
    store = SqliteStore(tmp_path / "state.db")
    try:
        message = f"replication SQL thread stopped: 1062 Duplicate entry '{ROW_VALUE}'"
        nodes = (
            NodeState("db1", State.ACTIVE, lag=0, message="serving, writable"),
            NodeState("db2", State.FAILED_ONLINE, req=5, message=message),
        )
        event = Event(
            time.time(), "main", "db2", EventKind.STATE, "STANDBY", "FAILED_ONLINE", message
        )
        store.save(PoolState("main", nodes, cycle=3, updated_at=time.time()), (event,), None)
    finally:
        store.close()
    return path


def test_markup_in_messages_is_printed_as_it_is(tmp_path: Path) -> None:
    config = _stored(tmp_path)
    for args in (("status",), ("history",), ("history", "--node", "db2")):
        out = _mpp(config, *args)
        assert out.returncode == 0, out.stderr
        assert "Traceback" not in out.stderr
        # rich folds the message column; the tags survive literally, none is applied
        flat = "".join(out.stdout.split())
        assert "".join(ROW_VALUE.split()) in flat, out.stdout
    doc = json.loads(_mpp(config, "status", "--json").stdout)
    assert ROW_VALUE in doc["pools"][0]["nodes"][1]["message"]


def test_markup_in_an_operators_argument_is_one_plain_error_line(tmp_path: Path) -> None:
    config = _stored(tmp_path)
    out = _mpp(config, "recover", "[/x]")
    assert out.returncode != 0
    assert "Traceback" not in out.stderr and "MarkupError" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "'[/x]'" in lines[0], out.stderr


def test_history_of_an_unknown_pool_or_node_is_an_error_not_an_empty_table(
    tmp_path: Path,
) -> None:
    config = _stored(tmp_path)
    out = _mpp(config, "history", "--pool", "nope")
    assert out.returncode == 2 and "no pool named 'nope' (pools: main)" in out.stderr
    out = _mpp(config, "history", "--node", "db9")
    assert out.returncode == 2 and "no node named 'db9' (nodes: db1, db2)" in out.stderr
    # a known node with no history yet is a quiet node: an empty table, exit 0
    out = _mpp(config, "history", "--node", "db1", "--json")
    assert out.returncode == 0 and json.loads(out.stdout) == []
