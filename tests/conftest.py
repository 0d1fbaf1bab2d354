"""Shared fixtures: free ports, a real MariaDB sandbox (mpp.sandbox) with an mpp config for
it, and a real etcd."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, settings

from mpp import sandbox
from mpp.config import Config, load
from mpp.sandbox.etcd import EtcdServer
from tests.builders import Doc, merged, write_config
from tests.daemons import mpp_command
from tests.examples import MUTATE
from tests.ports import Ports, session_ports

# `make mutate` (MPP_HYPOTHESIS=mutate): fewer examples (tests/examples.py scales the tests
# that set their own), always the same ones, and no example database, so that one mutant's
# verdict does not depend on which mutants ran before it; no shrinking either: a mutant is
# killed by the first failing example, the smallest one is of no use there.
settings.register_profile(
    "mutate",
    max_examples=20,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
)
if MUTATE:
    settings.load_profile("mutate")


@dataclass
class Cluster:
    dir: Path
    config_path: Path
    doc: Doc  # what config_path holds

    def config(self) -> Config:
        return load(self.config_path)

    def variant(self, name: str, changes: Mapping[str, Any]) -> Path:
        """Another config file for this sandbox, NAME.toml: this one with `changes` over it."""
        return write_config(self.dir / f"{name}.toml", merged(self.doc, changes))

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
            mpp_command(self.config_path, *args), capture_output=True, text=True, timeout=60
        )

    def sql(self, node: str, statement: str) -> list[tuple[object, ...]]:
        conn = sandbox.admin_connect(self.dir, node)
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return list(cur.fetchall())
        finally:
            conn.close()


def quick_config(
    d: Path, interval: str, hostile: bool, pool: Mapping[str, Any], sections: Mapping[str, Any]
) -> Doc:
    """The sandbox's own mpp.toml, made quicker for tests (short interval and timeouts), with
    `pool` keys over its pool's and `sections` ([api], [router], ...) added."""
    doc = tomllib.loads((d / "mpp.toml").read_text())
    doc = merged(doc, {"mpp": {"interval": interval, "connect_timeout": "500ms"}, **sections})
    doc["pool"] = [merged(doc["pool"][0], {"hostile_takeover": hostile, **pool})]
    return doc


@pytest.fixture(scope="session", autouse=True)
def shared_sandbox_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One mariadb-install-db for the whole run (MPP_SANDBOX_TEMPLATES, mpp/sandbox/server.py):
    about a second of every one of the suite's ~90 sandboxes. The servers, the mpp processes
    and the benchmarks the tests start inherit it; a value set by the caller is kept."""
    name = sandbox.TEMPLATES_ENV
    if os.environ.get(name):
        yield
        return
    os.environ[name] = str(tmp_path_factory.mktemp("templates"))
    try:
        yield
    finally:
        os.environ.pop(name, None)


@pytest.fixture(scope="session")
def ports() -> Ports:
    """Free ports for this session's servers: `ports.port()`, or `ports.block(n)` for n
    consecutive ones (tests/ports.py)."""
    return session_ports()


@pytest.fixture
def make_cluster(tmp_path_factory: pytest.TempPathFactory, ports: Ports) -> Iterator[object]:
    """Factory: a fresh 3-node master-master sandbox per call, destroyed after the test.
    Its config is test.toml: `pool` keys over the pool's, `sections` added ([api], ...)."""
    if shutil.which("mariadbd") is None and not Path("/usr/sbin/mariadbd").exists():
        pytest.fail("mariadbd is not installed: run `make test`, which installs it")
    made: list[Path] = []

    def make(
        nodes: int = 3,
        hostile: bool = False,
        interval: str = "200ms",
        topology: sandbox.Topology = "master-master",
        pool: Mapping[str, Any] | None = None,
        base_port: int | None = None,
        **sections: Any,
    ) -> Cluster:
        d = tmp_path_factory.mktemp("sandbox")
        made.append(d)
        base = ports.block(nodes) if base_port is None else base_port
        sandbox.up(d, nodes=nodes, base_port=base, topology=topology)
        doc = quick_config(d, interval, hostile, pool or {}, sections)
        return Cluster(d, write_config(d / "test.toml", doc), doc)

    yield make
    for d in made:
        sandbox.destroy(d)


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory, ports: Ports) -> Iterator[EtcdServer]:
    """One real etcd for the whole run; each test takes a prefix of its own."""
    server = EtcdServer(tmp_path_factory.mktemp("etcd"), ports.port(), ports.port())
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
