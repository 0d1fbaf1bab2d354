"""The partition injector and the agent helper on real sandboxes: a partition that drops
too little would let every "partitioned" scenario pass on a pool that was never cut, one
that drops too much (or heals too little) would fail scenarios for the harness's fault;
an agent helper that writes an invalid config would run scenarios without agents."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from mpp import faults, sandbox
from mpp.faults.agents import Agents, FenceKeys, agent_config, toml_value
from mpp.faults.partition import (
    CLIENT_SOURCE,
    PinnedClient,
    SocketSampler,
    allow_from,
    clear_rules,
    isolate_primary,
    leftover_rules,
    partition_rules,
    reachable,
    socket_sql,
)
from mpp.sandbox.sessions import accepts_connections
from tests.conftest import Cluster
from tests.integration.test_topology import pr_cluster

Make = Callable[..., Cluster]
OTHER_SIDE = "127.0.0.1"  # replicas, mpp and the writer connect from here


def test_the_rules_name_the_node_both_ways_and_every_other_port_for_the_source() -> None:
    rules = partition_rules(4001, [4002, 4003, 4001, 9000], "127.0.0.6")
    assert rules == [
        ["!", "-s", "127.0.0.6", "--dport", "4001"],
        ["!", "-d", "127.0.0.6", "--sport", "4001"],
        ["-s", "127.0.0.6", "--dport", "4002"],
        ["-d", "127.0.0.6", "--sport", "4002"],
        ["-s", "127.0.0.6", "--dport", "4003"],
        ["-d", "127.0.0.6", "--sport", "4003"],
        ["-s", "127.0.0.6", "--dport", "9000"],
        ["-d", "127.0.0.6", "--sport", "9000"],
    ]


def test_isolate_primary_cuts_exactly_its_side_off_and_the_heal_restores_everything(
    make_cluster: Make,
) -> None:
    d = pr_cluster(make_cluster).dir
    ports = faults.ports(d)
    primary, others = ports["db1"], [ports["db2"], ports["db3"]]
    # a port outside the sandbox standing for mpp's API: listening, so reachable is real
    extra = _listener()
    try:
        extra_port = extra.getsockname()[1]
        assert reachable(primary, OTHER_SIDE) and reachable(primary, CLIENT_SOURCE)
        assert all(reachable(p, CLIENT_SOURCE) for p in [*others, extra_port])

        heal = isolate_primary(d, "db1", extra_ports=[extra_port])
        try:
            assert len(leftover_rules(primary)) == 8
            assert not reachable(primary, OTHER_SIDE), "the other side still reaches db1"
            assert not reachable(primary, "127.0.0.5"), "only the primary side gets through"
            assert reachable(primary, CLIENT_SOURCE), "the primary side lost its own node"
            for p in [*others, extra_port]:
                assert not reachable(p, CLIENT_SOURCE), f"the primary side still reaches {p}"
                assert reachable(p, OTHER_SIDE), f"the other side lost {p}"
            # the replicas (connected from 127.0.0.1) lose the primary: IO thread not Yes
            lost = faults.poll_until(
                lambda: all(
                    faults.replica_status(d, r)["Slave_IO_Running"] != "Yes" for r in ("db2", "db3")
                ),
                15,
                period=0.1,
            )
            assert lost, [faults.replica_status(d, r)["Slave_IO_Running"] for r in ("db2", "db3")]
        finally:
            heal()
        heal()  # a second call (the runner's cleanup) does nothing, and fails on nothing
        assert leftover_rules(primary) == []
        assert reachable(primary, OTHER_SIDE) and reachable(primary, CLIENT_SOURCE)
        assert all(reachable(p, CLIENT_SOURCE) for p in [*others, extra_port])
        # rules an Undo never removed (a scenario that failed before its heals): cleared
        isolate_primary(d, "db1")
        assert clear_rules([primary, *others]) == 6 and leftover_rules(primary) == []
        assert reachable(primary, OTHER_SIDE)
        back = faults.poll_until(
            lambda: all(
                faults.replica_status(d, r)["Slave_IO_Running"] == "Yes" for r in ("db2", "db3")
            ),
            30,
            period=0.1,
        )
        assert back, "the replicas did not reconnect after the heal"
    finally:
        extra.close()


def test_both_sides_stay_visible_to_the_judges_during_the_partition(
    make_cluster: Make,
) -> None:
    d = pr_cluster(make_cluster).dir
    faults.create_table(d)
    allow_from(d, CLIENT_SOURCE)
    sampler = SocketSampler(d, every=0.05, timeout=0.5)
    client = PinnedClient("db1", faults.ports(d)["db1"], 5_000_000, timeout=1.0)
    sampler.start()
    client.start()
    heal = None
    try:
        assert faults.poll_until(lambda: len(client.acks) >= 20, 10), client.errors[-3:]
        heal = isolate_primary(d, "db1")
        cut = faults.now()
        # the sampler goes on seeing db1 (its socket is no TCP path) as the writable one
        assert sampler.wait_rounds(5, timeout=10)
        after = sampler.snapshot(since=cut)
        assert after and all(r.read_only["db1"] == 0 for r in after), after[-1]
        assert all(r.writable == ["db1"] for r in after)
        # the primary side's client keeps writing: its server is on its side. Its commits
        # wait for a semi-sync ack only where semi-sync is on, and the sandbox has it off
        n = len(client.acks)
        assert faults.poll_until(lambda: len(client.acks) >= n + 10, 10), client.errors[-3:]
        # read_only refuses it as the fence will: a refusal, neither an ack nor ambiguous
        socket_sql(d, "db1", "SET GLOBAL read_only = 1")  # over TCP it is cut off too
        fenced = faults.now()
        assert faults.poll_until(lambda: client.first_refusal(fenced), 10)
        assert sampler.wait_rounds(3)
        assert sampler.snapshot()[-1].writable == []
        assert not [a for a in client.snapshot() if a.at > fenced + 0.5]
    finally:
        client.close()
        sampler.close()
        if heal is not None:
            heal()
    assert faults.lost_ids(d, "db1", [a.id for a in client.acks]) == []


def test_the_fence_keys_render_as_the_toml_the_agent_reads() -> None:
    assert toml_value(["a", 'b"c', 1, True]) == '["a", "b\\"c", 1, true]'
    keys = FenceKeys("sqlite:///x/state.db", "3s", ("127.0.0.1:1", "127.0.0.1:2"), CLIENT_SOURCE)
    doc = tomllib.loads("".join(f"{k} = {toml_value(v)}\n" for k, v in keys.as_keys().items()))
    assert doc == {
        "store": "sqlite:///x/state.db",
        "fence_ttl": "3s",
        "peers": ["127.0.0.1:1", "127.0.0.1:2"],
        "source_address": CLIENT_SOURCE,
    }
    assert "source_address" not in FenceKeys("etcd://h:1/p").as_keys()


def test_agents_start_hold_restart_and_stop_on_a_real_sandbox(
    make_cluster: Make, tmp_path: Path
) -> None:
    """With the agent config keys main knows today (no fence keys): every node's agent
    holds its mysqld, a kill -9 is answered by the agent's restart through the sandbox's
    start, and stopping the agents leaves the nodes running."""
    d = pr_cluster(make_cluster).dir
    agents = Agents(d, tmp_path / "agents", mysqld={"retry_limit": 1})
    try:
        agents.start()
        config = agent_config(d, "db2", tmp_path / "check")
        done = subprocess.run(
            [sys.executable, "-c", _VALIDATE, str(config)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-800:]
        db1 = agents.running["db1"]
        held = db1.report()
        assert held["mode"] == "pid_file", held
        pid = held["pid"]
        assert pid == {n.name: n.pid for n in sandbox.status(d)}["db1"]
        faults.kill(d, "db1")
        back = db1.wait_report(
            "a restart", lambda r: r.get("running") and r.get("pid") not in (None, pid), 30
        )
        assert back["restarts_used"] == 1, back
        port = faults.ports(d)["db1"]
        assert faults.poll_until(lambda: accepts_connections(port, sandbox.ROOT_PASSWORD), 20)
        assert {n.name: n.pid for n in sandbox.status(d)}["db1"] == back["pid"]
        # the operator's restart of the agent (after it gave up): a new agent, same mysqld
        before = db1.report()["agent_pid"]
        agents.restart("db1")
        again = db1.report()
        assert again["agent_pid"] != before and again["pid"] == back["pid"], again
        assert again["restarts_used"] == 0, "a new agent starts with its restarts back"
    finally:
        codes = agents.stop()
    assert codes == {"db1": 0, "db2": 0, "db3": 0}, [a.tail() for a in agents.running.values()]
    assert all(n.running for n in sandbox.status(d)), "pid_file mode leaves mysqld running"
    assert "mysqld restarted" in agents.running["db1"].log.read_text()
    for pid in (agents.running[n].report().get("agent_pid") for n in ("db2", "db3")):
        assert pid is not None and not _alive(int(pid))


_VALIDATE = (
    "import sys; from pathlib import Path; from mpp.config.agent import load_agent; "
    "c = load_agent(Path(sys.argv[1])); assert c.mysqld.pid_file and c.probe is not None; "
    "c.password()"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _listener() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s


def test_scenario_agent_keys_are_checked_when_loaded(tmp_path: Path) -> None:
    """A misspelt agent key would run agents with defaults and prove nothing about the
    setting; a client_source of 127.0.0.1 would put the primary side's client on the other
    side of the partition."""
    from mpp.faults.runner import INJECTORS
    from mpp.faults.scenario import ScenarioError, load

    path = tmp_path / "s.toml"
    base = (
        '[[scenario]]\nname = "x"\n{extra}\n'
        'steps = [{{ at = 1.0, fault = "isolate_primary" }}]\n'
        "[scenario.expect]\nfailover = true\nfenced_first = true\nafter_last = 2.5\n"
    )
    path.write_text(
        base.format(
            extra='agents = true\nagent = { fence_ttl = "2s", retry_limit = 1 }\n'
            'client_source = "127.0.0.6"'
        )
    )
    (scenario,) = load(path, set(INJECTORS))
    assert scenario.agents and scenario.agent == {"fence_ttl": "2s", "retry_limit": 1}
    assert scenario.client_source == "127.0.0.6"
    assert scenario.expect.fenced_first and scenario.expect.after_last == 2.5
    path.write_text(base.format(extra='agents = true\nagent = { fence_tll = "2s" }'))
    with pytest.raises(ScenarioError, match=r"agent: unknown key\(s\) \['fence_tll'\]"):
        load(path, set(INJECTORS))
    path.write_text(base.format(extra='agent = { fence_ttl = "2s" }'))
    with pytest.raises(ScenarioError, match="needs agents = true"):
        load(path, set(INJECTORS))
    path.write_text(base.format(extra='client_source = "127.0.0.1"'))
    with pytest.raises(ScenarioError, match=r"other than 127\.0\.0\.1"):
        load(path, set(INJECTORS))


def test_the_runner_gives_each_agent_its_store_peers_and_the_primary_its_side(
    make_cluster: Make, tmp_path: Path
) -> None:
    """What the agents of a partition row are told (read back from the files they get):
    the scenario's store, the lease, the other nodes as peers, and only the first primary
    the primary side's address; `fence = false` writes none of it."""
    from mpp.faults.cluster import Daemon
    from mpp.faults.runner import Run, _agents
    from mpp.faults.scenario import Expect, Scenario, Step

    d = pr_cluster(make_cluster).dir
    scenario = Scenario(
        name="x",
        what="",
        steps=(Step(1.0, "isolate_primary"),),
        expect=Expect(failover=True),
        agents=True,
        agent={"fence_ttl": "2s", "retry_limit": 1},
        client_source=CLIENT_SOURCE,
    )
    run = Run(d, d / "mpp.toml", daemon=cast(Daemon, None))
    agents = _agents(scenario, run, "db1")
    ports = faults.ports(d)
    docs = {}
    for node in ports:
        path = agent_config(d, node, tmp_path, fence=agents.fence.get(node), mysqld=agents.mysqld)
        docs[node] = tomllib.loads(path.read_text())
    store = f"sqlite://{d.resolve()}/state.db"
    for node, doc in docs.items():
        assert doc["store"] == store and doc["fence_ttl"] == "2s"
        assert doc["peers"] == [f"127.0.0.1:{p}" for n, p in ports.items() if n != node]
        assert doc["mysqld"]["retry_limit"] == 1
        assert doc["probe"]["address"] == f"127.0.0.1:{ports[node]}"
    assert docs["db1"]["source_address"] == CLIENT_SOURCE
    assert "source_address" not in docs["db2"] and "source_address" not in docs["db3"]
    assert agents.directory == d.parent / "x.agents"
    plain = dataclasses.replace(scenario, agent={"fence": False})
    assert _agents(plain, run, "db1").fence == {}
