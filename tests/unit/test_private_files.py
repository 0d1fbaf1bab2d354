"""Files mpp writes that quote servers or hold secrets are its owner's only (issue 15,
item 13): the state store with its WAL (history quotes row values from replication
errors) and the sandbox's password files, 0600 from their first byte."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from mpp.model import NodeState, PoolState, State
from mpp.sandbox.accounts import write_secret
from mpp.store.sqlite import SqliteStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_state_store_and_its_wal_are_0600_in_a_0700_directory(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask: what mpp must not rely on
    try:
        path = tmp_path / "fresh" / "state.db"
        store = SqliteStore(path)
        try:
            store.save(
                PoolState(
                    "main", (NodeState("db1", State.ACTIVE),), cycle=1, updated_at=time.time()
                ),
                (),
                None,
            )
            files = [path, path.with_name("state.db-wal"), path.with_name("state.db-shm")]
            assert all(f.exists() for f in files)
            assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
            assert _mode(path.parent) == 0o700
        finally:
            store.close()
    finally:
        os.umask(old)


def test_a_state_file_left_world_readable_is_tightened_on_open(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    tmp_path.chmod(0o755)
    SqliteStore(path).close()
    path.chmod(0o644)
    SqliteStore(path).close()
    assert _mode(path) == 0o600
    assert _mode(tmp_path) == 0o755  # a directory mpp did not make is not mpp's to change


def test_a_secret_file_is_0600_even_when_it_existed_readable(tmp_path: Path) -> None:
    path = tmp_path / "repl.password"
    path.write_text("old")
    path.chmod(0o644)
    write_secret(path, "s3cret")
    assert path.read_text() == "s3cret" and _mode(path) == 0o600
    fresh = tmp_path / "mpp.password"
    write_secret(fresh, "x")
    assert _mode(fresh) == 0o600
