"""The tests' port allocator (tests/ports.py): below the ephemeral range, consecutive blocks,
busy ports stepped around, and never the same port to two processes at once."""

from __future__ import annotations

import socket
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.builders import config_doc, config_text, pool
from tests.ports import Ports, default_band, ephemeral_range


def test_the_band_is_below_the_ephemeral_range() -> None:
    band = default_band()
    assert band.stop <= ephemeral_range().start and len(band) >= 1000


def test_blocks_are_consecutive_free_and_never_handed_out_twice(tmp_path: Path) -> None:
    with socket.socket() as squatter:  # a process that takes no lock, on a port of its own
        squatter.bind(("127.0.0.1", 0))
        busy = squatter.getsockname()[1]
        ports = Ports(range(busy - 1, busy + 40), tmp_path)  # its own lock files too
        ports.cursor = busy - 1
        base = ports.block(3)
        assert busy not in range(base, base + 3), "a busy port is in no block"
        more = [ports.port() for _ in range(3)]
    assert len({*range(base, base + 3), *more}) == 6, "no port is handed out twice"
    assert all(p > base + 2 for p in more), "each process goes on from its last port"
    ports.close()


def test_concurrent_processes_get_different_ports(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from tests.ports import Ports; "
        f"p = Ports(range(23100, 23140), Path({str(tmp_path)!r})); p.cursor = 23100; "
        "print(p.block(5)); sys.stdout.flush(); sys.stdin.read()"
    )
    ours = Ports(range(23100, 23140), tmp_path)
    ours.cursor = 23100
    mine = ours.block(5)
    other = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert other.stdout is not None and other.stdin is not None
    theirs = int(other.stdout.readline())
    other.stdin.close()
    other.wait(10)
    assert not set(range(mine, mine + 5)) & set(range(theirs, theirs + 5))
    ours.close()


def test_config_text_is_the_toml_of_the_document() -> None:
    doc = config_doc(pool(max_lag="1h", hooks={"timeout": "5s"}), api={"listen": "h:1"})
    assert tomllib.loads(config_text(doc)) == doc
