"""The probe's two drivers against real mariadbd: mysqlclient (the default) and PyMySQL (the
fallback when MySQLdb cannot be imported, and the driver of TLS targets) read the same
Observation, classify errors alike, and keep the hard deadline on a SIGSTOPped server; and
the daemon's pacing, pools on ticks spread over the interval.

One primary-replica sandbox for the module; the tests that stop a node start it again."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import signal
import socket
import statistics
import sys
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

from mpp import sandbox
from mpp.config import load
from mpp.model import Event, Observation, PoolState
from mpp.probe import connection
from mpp.probe.connection import PYMYSQL, Driver, Target, pool_targets, probe_driver
from mpp.probe.mysql import NodeProber
from mpp.run.daemon import make_workers, run_forever
from mpp.store import SqliteStore
from tests.builders import write_config
from tests.ports import Ports

DRIVERS = ["mysqlclient", "pymysql"]


@pytest.fixture(scope="module")
def pr(tmp_path_factory: pytest.TempPathFactory, ports: Ports) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("drivers") / "sandbox"
    try:
        sandbox.up(directory, nodes=3, base_port=ports.block(3), topology="primary-replica")
        yield directory
    finally:
        sandbox.destroy(directory)


def _targets(directory: Path) -> dict[str, Target]:
    config = load(directory / "mpp.toml")
    return pool_targets(config, config.pool[0])


def _driver(name: str, target: Target) -> Driver:
    driver = probe_driver(target)
    assert driver.name == "mysqlclient", "bootstrap installs mysqlclient: the probe's default"
    return driver if name == "mysqlclient" else PYMYSQL


def _probe(target: Target, driver: Driver) -> Observation:
    prober = NodeProber(target, driver)
    try:
        return prober.probe()
    finally:
        prober.close()


def _comparable(o: Observation) -> Observation:
    return dataclasses.replace(o, at=0.0, latency_ms=None)


def test_both_drivers_read_the_same_observation(pr: Path) -> None:
    for node, target in _targets(pr).items():
        mine = _probe(target, _driver("mysqlclient", target))
        theirs = _probe(target, PYMYSQL)
        assert mine.reachable and mine.error == "", mine
        assert _comparable(mine) == _comparable(theirs), (node, mine, theirs)
        assert mine.flavor == "mariadb" and mine.version.startswith("10."), mine
        if node == "db1":
            assert mine.read_only is False and mine.replication is None, mine
        else:
            assert mine.read_only is True and mine.replication is not None, mine
            assert mine.replication.sql_running and mine.replication.io_running, mine


def test_the_fallback_probes_when_mysqldb_cannot_be_imported(
    pr: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pip install mpp` without a compiler or libmariadb-dev: the probes use PyMySQL."""
    target = _targets(pr)["db2"]
    monkeypatch.setitem(sys.modules, "MySQLdb", None)  # `import MySQLdb` raises ImportError
    connection._installed.cache_clear()
    try:
        driver = probe_driver(target)
        assert driver is PYMYSQL
        assert "cannot be imported" in connection.probe_driver_note()
        seen = _probe(target, driver)
        assert seen.reachable and seen.read_only is True and seen.replication is not None, seen
    finally:
        monkeypatch.undo()
        connection._installed.cache_clear()
    assert probe_driver(target).name == "mysqlclient"


def test_targets_libmariadb_cannot_serve_as_configured_keep_pymysql(pr: Path) -> None:
    target = _targets(pr)["db1"]
    tls = connection.Tls("verify_ca", ca_file="/nonexistent/ca.pem")
    assert probe_driver(dataclasses.replace(target, tls=tls)) is PYMYSQL
    assert probe_driver(dataclasses.replace(target, source_address="127.0.0.1")) is PYMYSQL
    assert probe_driver(dataclasses.replace(target, host="localhost")) is PYMYSQL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("name", DRIVERS)
def test_errors_are_classified_alike(pr: Path, name: str) -> None:
    """No server (FAILED_OFFLINE material) against a server that answered with an error; the
    password never in the error, nor in any repr."""
    target = _targets(pr)["db2"]
    driver = _driver(name, target)
    nobody = _probe(dataclasses.replace(target, port=_free_port()), driver)
    assert not nobody.reachable and "cannot connect: 20" in nobody.error, nobody
    secret = "wr0ng-€-secret"
    denied = _probe(dataclasses.replace(target, password=SecretStr(secret)), driver)
    assert denied.reachable and "cannot connect: 1045" in denied.error, denied
    assert secret not in denied.error
    prober = NodeProber(dataclasses.replace(target, password=SecretStr(secret)), driver)
    assert secret not in repr(prober.target) + repr(prober.driver) + repr(prober)


@pytest.mark.parametrize("name", DRIVERS)
def test_a_server_killed_under_a_kept_connection_is_unreachable(pr: Path, name: str) -> None:
    target = _targets(pr)["db3"]
    prober = NodeProber(target, _driver(name, target))
    try:
        assert prober.probe().reachable
        sandbox.stop_node(pr, "db3", signal.SIGKILL)
        gone = prober.probe()
        code = int(gone.error.split(": ")[1].split()[0])
        assert not gone.reachable and code in (2002, 2003, 2006, 2013, 2055), gone
    finally:
        prober.close()
        sandbox.start_node(pr, "db3")


@pytest.mark.parametrize("name", DRIVERS)
def test_a_sigstopped_server_never_holds_the_probe_past_its_deadline(pr: Path, name: str) -> None:
    """As the daemon runs a probe: in a thread under an asyncio deadline. The probe that
    hangs is cut at the deadline; the next one, while the first is still blocked in the
    driver, is skipped at once; after SIGCONT the node reads OK again."""
    target = dataclasses.replace(_targets(pr)["db2"], query_timeout=0.3)
    prober = NodeProber(target, _driver(name, target))
    deadline = 0.5
    threads = ThreadPoolExecutor(max_workers=2)  # not asyncio.run's: that one is waited for

    async def probe() -> tuple[Observation | None, float]:
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            seen = await asyncio.wait_for(loop.run_in_executor(threads, prober.probe), deadline)
        except TimeoutError:
            seen = None
        return seen, time.monotonic() - started

    try:
        assert prober.probe().reachable
        sandbox.stop_node(pr, "db2", signal.SIGSTOP)
        hung, took = asyncio.run(probe())
        # either cut by the deadline or failed by the driver's own (1 s) timeout first
        assert hung is None or not hung.reachable, hung
        assert took < deadline + 0.4, took
        skipped = prober.probe()
        if hung is None:  # still blocked in the driver: skipped at once, not queued
            assert not skipped.reachable and "still running" in skipped.error, skipped
    finally:
        sandbox.stop_node(pr, "db2", signal.SIGCONT)
        threads.shutdown(wait=True)
    try:
        for _ in range(20):
            if prober.probe().reachable:
                break
            time.sleep(0.3)
        assert prober.probe().reachable
    finally:
        prober.close()


def test_pools_cycle_on_their_own_ticks_spread_over_the_interval(pr: Path, tmp_path: Path) -> None:
    """Four pools over the same three servers in one `run_forever`: pool j's cycles start
    j/4 of the interval after pool 0's, and each keeps the interval between its cycles."""
    doc = tomllib.loads((pr / "mpp.toml").read_text())
    doc["mpp"] = {**doc["mpp"], "interval": "800ms", "state": f"sqlite://{tmp_path}/state.db"}
    doc["pool"] = [{**doc["pool"][0], "name": f"p{j}"} for j in range(4)]
    path = write_config(pr / "pacing.toml", doc)
    config = load(path)
    store = SqliteStore(config.state_path)
    seen: dict[str, list[float]] = {}

    def record(state: PoolState, events: tuple[Event, ...]) -> None:
        seen.setdefault(state.name, []).append(time.monotonic())

    workers, threads = make_workers(config, store, publishers=(record,))

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(3.5, stop.set)
        await run_forever(workers, stop)

    try:
        asyncio.run(main())
    finally:
        for w in workers:
            w.close()
        threads.shutdown(wait=False, cancel_futures=True)
        store.close()
    firsts = [seen[f"p{j}"][0] for j in range(4)]
    offsets = [round(f - firsts[0], 3) for f in firsts]
    for j, offset in enumerate(offsets):  # 0, 0.2, 0.4, 0.6 s; a loaded machine adds lag
        assert j * 0.2 - 0.1 < offset < j * 0.2 + 0.12, offsets
    for pool, times in seen.items():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(times) >= 4, (pool, times)
        assert 0.6 < statistics.median(gaps) < 1.0, (pool, gaps)
