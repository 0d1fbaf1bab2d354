"""The probe read on the event loop (NodeProber.start_on_loop) against real mariadbd: the
same Observation as in a thread, the hard deadline on a SIGSTOPped server with the loop
never held, and a kept session that died taken for what it is (one fresh connect, in a
thread): a killed session reads reachable, a killed server unreachable.

One primary-replica sandbox for the module; the tests that stop a node start it again."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mpp import sandbox
from mpp.config import load
from mpp.faults import root_sql
from mpp.model import Observation
from mpp.probe.connection import Target, pool_targets
from mpp.probe.mysql import NodeProber
from mpp.run import eventloop
from tests.ports import Ports

T = TypeVar("T")


@pytest.fixture(scope="module")
def pr(tmp_path_factory: pytest.TempPathFactory, ports: Ports) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("onloop") / "sandbox"
    try:
        sandbox.up(directory, nodes=2, base_port=ports.block(2), topology="primary-replica")
        yield directory
    finally:
        sandbox.destroy(directory)


@pytest.fixture
def threads() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(4)
    yield pool
    pool.shutdown(wait=False, cancel_futures=True)


def _target(directory: Path, node: str) -> Target:
    config = load(directory / "mpp.toml")
    return pool_targets(config, config.pool[0])[node]


async def _poll(prober: NodeProber, threads: ThreadPoolExecutor, deadline: float) -> Observation:
    """One poll as the daemon's PoolWorker.probe makes it; None from start_on_loop: a thread."""
    loop = asyncio.get_running_loop()
    future = prober.start_on_loop(loop, threads) or loop.run_in_executor(threads, prober.probe)
    done, _ = await asyncio.wait([future], timeout=deadline)
    if future in done:
        return future.result()
    prober.abandon()
    return Observation(prober.target.node, time.time(), reachable=False, error="deadline")


def _run(work: Coroutine[Any, Any, T]) -> T:
    """`work` on mpp's event loop (uvloop where installed, as the daemon runs)."""
    box: list[T] = []

    async def main() -> None:
        box.append(await work)

    eventloop.run(main())
    return box[0]


def _same(o: Observation) -> Observation:
    return dataclasses.replace(o, at=0.0, latency_ms=None)


def test_a_kept_session_is_read_on_the_loop_and_reads_the_same(
    pr: Path, threads: ThreadPoolExecutor
) -> None:
    for node in ("db1", "db2"):
        prober = NodeProber(_target(pr, node))
        try:

            async def main(prober: NodeProber) -> tuple[Observation, Observation]:
                loop = asyncio.get_running_loop()
                assert prober.start_on_loop(loop, threads) is None, "no session yet: a thread"
                first = await _poll(prober, threads, 2.0)
                on_loop = prober.start_on_loop(loop, threads)
                assert on_loop is not None, "a kept mysqlclient session: on the loop"
                second = await asyncio.wait_for(on_loop, 2.0)
                return first, second

            first, second = _run(main(prober))
            assert first.reachable and second.reachable, (first, second)
            assert _same(first) == _same(second), (first, second)
            if node == "db2":
                assert second.replication is not None and second.replication.io_running
        finally:
            prober.close()


def test_a_hung_server_never_holds_the_loop_or_the_poll_past_its_deadline(
    pr: Path, threads: ThreadPoolExecutor
) -> None:
    prober = NodeProber(_target(pr, "db2"))
    gaps: list[float] = []

    async def ticker(until: float) -> None:
        last = time.monotonic()
        while (now := time.monotonic()) < until:
            gaps.append(now - last)
            last = now
            await asyncio.sleep(0.005)

    async def main() -> tuple[Observation, float, Observation]:
        assert (await _poll(prober, threads, 2.0)).reachable
        sandbox.stop_node(pr, "db2", signal.SIGSTOP)
        try:
            tick = asyncio.ensure_future(ticker(time.monotonic() + 1.2))
            began = time.monotonic()
            hung = await _poll(prober, threads, 0.5)
            took = time.monotonic() - began
            await tick
        finally:
            sandbox.stop_node(pr, "db2", signal.SIGCONT)
        after = await _poll(prober, threads, 3.0)
        return hung, took, after

    try:
        hung, took, after = _run(main())
    finally:
        prober.close()
    assert not hung.reachable and hung.error == "deadline", hung
    assert took < 0.6, f"the poll took {took:.3f} s against a 0.5 s deadline"
    assert max(gaps) < 0.1, f"the loop was held {max(gaps):.3f} s"
    assert after.reachable, f"after SIGCONT a fresh session reads it: {after}"


def test_a_killed_session_reads_reachable_and_a_killed_server_unreachable(
    pr: Path, threads: ThreadPoolExecutor
) -> None:
    prober = NodeProber(_target(pr, "db2"))
    try:

        async def main() -> tuple[Observation, Observation, Observation]:
            assert (await _poll(prober, threads, 2.0)).reachable
            ids = [
                row[0]
                for row in root_sql(
                    pr,
                    "db2",
                    "SELECT id FROM information_schema.processlist "
                    f"WHERE user = '{sandbox.MPP_USER}'",
                )
            ]
            assert ids, "the prober's session is there"
            for session in ids:
                root_sql(pr, "db2", f"KILL CONNECTION {int(str(session))}")
            killed = await _poll(prober, threads, 3.0)
            assert (await _poll(prober, threads, 2.0)).reachable
            sandbox.stop_node(pr, "db2", signal.SIGKILL)
            try:
                dead = await _poll(prober, threads, 3.0)
            finally:
                sandbox.start_node(pr, "db2")
            again = await _poll(prober, threads, 3.0)
            return killed, dead, again

        killed, dead, again = _run(main())
    finally:
        prober.close()
    assert killed.reachable, f"a killed session is not a dead server: {killed}"
    assert not dead.reachable and dead.error.startswith("cannot connect"), dead
    assert again.reachable, again


def test_an_answer_larger_than_the_peek_limit_is_read_in_a_thread(
    pr: Path, threads: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond MOST_PEEKED bytes the peek might never see an answer's end (the socket's
    buffer): such an answer is read in a thread; here the limit is made smaller than a
    probe's ~3.5 KB answer, so every poll goes that way, and reads the same."""
    from mpp.probe import mysql

    reference = NodeProber(_target(pr, "db2"))
    monkeypatch.setattr(mysql, "MOST_PEEKED", 256)
    prober = NodeProber(_target(pr, "db2"))
    in_thread: list[float] = []
    read_rest = prober._read_rest

    def spied(started: float, t0: float) -> Observation:
        in_thread.append(started)
        return read_rest(started, t0)

    monkeypatch.setattr(prober, "_read_rest", spied)
    try:

        async def main() -> tuple[Observation, Observation, Observation]:
            expected = await _poll(reference, threads, 2.0)
            await _poll(prober, threads, 2.0)  # connects, in a thread
            on_loop = prober.start_on_loop(asyncio.get_running_loop(), threads)
            assert on_loop is not None, "sent on the loop"
            large = await asyncio.wait_for(on_loop, 2.0)
            return expected, large, await _poll(prober, threads, 2.0)

        expected, large, after = _run(main())
    finally:
        prober.close()
        reference.close()
    assert large.reachable and _same(large) == _same(expected), (large, expected)
    assert after.reachable, "the prober was freed for the next poll"
    assert len(in_thread) == 2, "both polls on the kept session read in a thread"


def test_a_server_that_closed_mid_answer_is_read_at_once() -> None:
    """A peek shows the bytes before the server's FIN, not the FIN: POLLRDHUP does, so a
    partial answer from a closed connection goes to the driver (which fails at once) instead
    of waiting for the deadline. On a real socket pair: part of an answer, then the close."""
    import socket as sockets

    from mpp.probe.mysql import _peer_closed

    mine, server = sockets.socketpair()
    try:
        server.sendall(b"\x01\x00\x00\x01\x02")  # a column count: the answer goes on
        time.sleep(0.05)
        seen = mine.recv(100, sockets.MSG_PEEK)
        assert seen and not _peer_closed(seen, mine), "open: more may come"
        server.close()
        time.sleep(0.05)
        assert _peer_closed(mine.recv(100, sockets.MSG_PEEK), mine), "closed after the bytes"
    finally:
        mine.close()
