"""The HAProxy agent-check listener: the reply line for each request, and real TCP exchanges."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from mpp.config import Config, ConfigError
from mpp.model import NodeState, PoolState, State
from mpp.publish import haproxy_agent as agent_module
from mpp.publish.haproxy_agent import Agent
from mpp.publish.hub import Hub
from mpp.publish.listen import bind
from mpp.run.services import Integrations
from tests.builders import config, config_doc, pool_state
from tests.ports import Ports


def agent_config(listen: str) -> Config:
    doc = config_doc(agent={"listen": listen})
    return config(doc, Path("/tmp/mpp-agent-test.toml"))


CONFIG = agent_config("127.0.0.1:1")  # never bound: the tests that listen bind their own
STATE = pool_state(
    ("db1", State.ACTIVE, 0), ("db2", State.STANDBY, 0), ("db3", State.STANDBY, 30), cycle=4
)


def make(state: PoolState | None = STATE) -> Agent:
    return Agent(CONFIG, Hub(CONFIG, {"main": state}))


def test_answers() -> None:
    a = make()
    assert a.answer("main/db1/rw\n") == "up ready #db1 is ACTIVE\n"
    assert a.answer("main/db2/rw") == "down #db2 is STANDBY; ACTIVE: db1\n"
    assert a.answer("main/db2/ro") == "up ready #db2 is STANDBY, status OK, lag 0s <= 10s\n"
    assert a.answer("main/db3/ro") == "down #db3 lag 30s > 10s\n"
    assert a.answer("main/db3/ro max_lag=1m").startswith("up ready #")
    assert a.answer("main/rw") == "up ready #pool main: ACTIVE db1\n"
    assert a.answer("main/db1/ok\r\n").startswith("up ready #")


def test_draining_node_answers_drain_for_every_role() -> None:
    a = make(PoolState("main", STATE.nodes, cycle=4, draining=("db1",)))
    for role in ("rw", "ro", "ok"):
        assert a.answer(f"main/db1/{role}") == "drain #db1 is draining (switchover in progress)\n"
    assert a.answer("main/db2/ro").startswith("up ready")


@pytest.mark.parametrize(
    ("request_line", "reason"),
    [
        ("", "no agent-send string"),
        ("main/db9/rw", "unknown node 'db9' in pool 'main'"),
        ("other/db1/rw", "unknown pool 'other'"),
        ("main/db1/rx", "unknown role 'rx'; use rw, ro or ok"),
        ("main", "cannot read 'main'"),
        ("main/db1/ro max_lag=soon", "max_lag: 'soon' is not a duration"),
        ("main/db1/ro weight=5", "unknown option 'weight=5'"),
    ],
)
def test_bad_requests_answer_down_with_the_reason(request_line: str, reason: str) -> None:
    line = make().answer(request_line)
    assert line.startswith("down #") and reason in line and line.endswith("\n")
    assert line.count("#") == 1 and line.count("\n") == 1


def test_no_state_yet_is_down() -> None:
    assert make(None).answer("main/db1/rw") == "down #no state yet: mpp has not polled pool main\n"


async def _exchange(port: int, send: bytes | None) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if send is not None:
        writer.write(send)
        await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)  # until the agent closes
    writer.close()
    return data


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_real_tcp_exchanges(monkeypatch: pytest.MonkeyPatch, loop: str, ports: Ports) -> None:
    """On both event loops: `mpp run` uses uvloop when the router is configured (its
    transports are not asyncio.Transport subclasses; an isinstance check once failed every
    agent connection there)."""
    monkeypatch.setattr(agent_module, "READ_TIMEOUT", 0.2)
    port = ports.port()
    hub = Hub(CONFIG, {"main": STATE})
    a = Agent(CONFIG, hub)

    async def scenario() -> list[bytes]:
        stop = asyncio.Event()
        sock = bind(f"127.0.0.1:{port}", "[agent]")
        server = asyncio.create_task(a.serve(sock, stop))
        await asyncio.sleep(0.05)
        try:
            answers = [
                await _exchange(port, b"main/db1/rw\n"),
                await _exchange(port, b"main/db2/rw\r\n"),
                await _exchange(port, None),  # no agent-send: answered after the timeout
                await _exchange(port, b"main/db1/"),  # no newline: answered at the timeout
            ]
            # the Hub changes: the next check says so, no restart, no MySQL
            hub.publish(
                PoolState(
                    "main",
                    tuple(
                        NodeState(x.name, State.STANDBY if x.name == "db1" else x.state, lag=0)
                        for x in STATE.nodes
                    ),
                    cycle=5,
                ),
                (),
            )
            answers.append(await _exchange(port, b"main/db1/rw\n"))
            many = await asyncio.gather(*(_exchange(port, b"main/rw\n") for _ in range(50)))
            answers.append(b"".join(set(many)))
            return answers
        finally:
            stop.set()
            await server

    if loop == "uvloop":
        import uvloop

        answers = uvloop.run(scenario())
    else:
        answers = asyncio.run(scenario())
    assert answers[0] == b"up ready #db1 is ACTIVE\n"
    assert answers[1] == b"down #db2 is STANDBY; ACTIVE: db1\n"
    assert answers[2].startswith(b"down #no agent-send string")
    assert answers[3] == b"down #unknown role ''; use rw, ro or ok\n"
    assert answers[4] == b"down #db1 is STANDBY; ACTIVE: none\n"
    assert answers[5] == b"down #pool main has no ACTIVE node\n"


def test_port_in_use_is_a_config_error_naming_the_key(ports: Ports) -> None:
    port = ports.port()
    cfg = agent_config(f"127.0.0.1:{port}")
    taken = socket.socket()
    taken.bind(("127.0.0.1", port))
    taken.listen()
    try:
        with pytest.raises(ConfigError, match=rf"\[agent\] listen = '127.0.0.1:{port}'"):
            Integrations(cfg, Hub(cfg))
    finally:
        taken.close()
