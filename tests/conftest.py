"""Shared fixtures: a real MariaDB sandbox (mpp.sandbox) and an mpp config for it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mpp import sandbox
from mpp.config import Config, load
from mpp.sandbox.etcd import EtcdServer


@dataclass
class Cluster:
    dir: Path
    config_path: Path

    def config(self) -> Config:
        return load(self.config_path)

    def kill(self, node: str, sig: int | None = None) -> None:
        if sig is None:
            sandbox.stop_node(self.dir, node)
        else:
            sandbox.stop_node(self.dir, node, sig)

    def start(self, node: str) -> None:
        sandbox.start_node(self.dir, node)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`mpp --config <this cluster's config> ARGS` as a separate process."""
        return subprocess.run(
            [sys.executable, "-m", "mpp", "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def sql(self, node: str, statement: str) -> list[tuple[object, ...]]:
        conn = sandbox.admin_connect(self.dir, node)
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return list(cur.fetchall())
        finally:
            conn.close()


def _write_config(d: Path, interval: str, hostile: bool, extra: str = "") -> Path:
    """The sandbox's own mpp.toml, made quicker for tests (short interval and timeouts)."""
    text = (d / "mpp.toml").read_text()
    for line in filter(None, extra.splitlines()):  # pool keys: replace, or add before nodes
        key = line.split("=")[0].strip()
        if re.search(rf"^{key} = ", text, re.M):
            text = re.sub(rf"^{key} = .*$", line, text, count=1, flags=re.M)
        else:
            text = text.replace("\n[[pool.node]]", f"\n{line}\n\n[[pool.node]]", 1)
    text = text.replace('interval = "1s"', f'interval = "{interval}"')
    text = text.replace('connect_timeout = "1s"', 'connect_timeout = "500ms"')
    text = text.replace("hostile_takeover = false", f"hostile_takeover = {str(hostile).lower()}")
    path = d / "test.toml"
    path.write_text(text)
    return path


@pytest.fixture
def make_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Factory: a fresh 3-node master-master sandbox per call, destroyed after the test."""
    if shutil.which("mariadbd") is None and not Path("/usr/sbin/mariadbd").exists():
        pytest.fail("mariadbd is not installed: run `make test`, which installs it")
    made: list[Path] = []

    def make(
        base_port: int,
        nodes: int = 3,
        hostile: bool = False,
        interval: str = "200ms",
        topology: sandbox.Topology = "master-master",
        extra: str = "",
    ) -> Cluster:
        d = tmp_path_factory.mktemp("sandbox")
        made.append(d)
        sandbox.up(d, nodes=nodes, base_port=base_port, topology=topology)
        return Cluster(d, _write_config(d, interval, hostile, extra))

    yield make
    for d in made:
        sandbox.destroy(d)


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """One real etcd for the whole run; each test takes a prefix of its own."""
    server = EtcdServer(tmp_path_factory.mktemp("etcd"), 26710, 26711)
    server.start()
    yield server
    server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Where a test lives says what it needs: tests/integration and tests/faults start real
    servers (marked `integration`, left out by `make unit`); tests/unit need none."""
    root = Path(__file__).parent
    for item in items:
        folder = item.path.relative_to(root).parts[0]
        if folder in ("integration", "faults"):
            item.add_marker(pytest.mark.integration)
