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
    future = prober.start(loop, threads)
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


def test_the_driver_reads_the_session_after_polls_on_the_loop(
    pr: Path, threads: ThreadPoolExecutor
) -> None:
    """The loop writes the batch and reads its answer past libmariadb; the driver's own
    next command on the same kept session (a poll in a thread, as when the loop's start
    found the prober busy) must still read its own answer, in step."""
    prober = NodeProber(_target(pr, "db2"))
    try:

        async def main() -> list[Observation]:
            loop = asyncio.get_running_loop()
            seen = [await _poll(prober, threads, 2.0)]  # connects, in a thread
            for _ in range(3):
                on_loop = prober.start_on_loop(loop, threads)
                assert on_loop is not None, "a kept session: on the loop"
                seen.append(await asyncio.wait_for(on_loop, 2.0))
            kept = prober._conn
            seen.append(await loop.run_in_executor(threads, prober.probe))
            assert prober._conn is kept, "the thread's poll read the same session"
            on_loop = prober.start_on_loop(loop, threads)
            assert on_loop is not None
            seen.append(await asyncio.wait_for(on_loop, 2.0))
            return seen

        seen = _run(main())
    finally:
        prober.close()
    assert all(o.reachable for o in seen), seen
    assert len({_same(o) for o in seen}) == 1, "every poll read the same server state"


def test_an_answer_past_the_limit_is_read_in_a_thread_from_then_on(
    pr: Path, threads: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the loop holds of one answer is bounded (MOST_READ): past it that poll fails
    (its bytes are consumed, the session is dropped) and the node's answers are read by
    the driver, in a thread, from then on. Here the limit is made smaller than a probe's
    ~3.5 KB answer."""
    from mpp.probe import mysql

    prober = NodeProber(_target(pr, "db2"))
    try:

        async def main() -> list[Observation]:
            loop = asyncio.get_running_loop()
            seen = [await _poll(prober, threads, 2.0)]  # connects, in a thread
            monkeypatch.setattr(mysql, "MOST_READ", 256)
            on_loop = prober.start_on_loop(loop, threads)
            assert on_loop is not None, "sent on the loop"
            seen.append(await asyncio.wait_for(on_loop, 2.0))
            for _ in range(2):
                assert prober.start_on_loop(loop, threads) is None, "in a thread now"
                seen.append(await _poll(prober, threads, 2.0))
            return seen

        first, large, *after = _run(main())
    finally:
        prober.close()
    assert first.reachable and all(o.reachable for o in after), (first, after)
    assert large.error.startswith("query failed: 2020 an answer past 256 bytes"), large
    assert _same(after[0]) == _same(after[1]) == _same(first)
