"""Runs one fault scenario against a fresh sandbox and mpp, and judges it from outside.

Per scenario: a 3-node primary-replica sandbox with semi-sync, `mpp run` as a process,
a writer recording every acknowledged id and a read_only sampler on every node; then the
scenario's faults at their times, the heals, and a settling period. The verdict comes from
the servers and from mpp's own record (`mpp status`/`history --json`), never from mpp's
internals: acknowledged ids missing on the final primary (lost), the most nodes writable at
one instant, the failovers mpp recorded, the first acknowledged write on the new primary
(RTO), the end states, and the final topology (one writable primary, every other healthy
node replicating from it without errors).
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pymysql.cursors

from mpp import sandbox

from . import injectors
from ._sql import now, ports, root_sql
from .agents import Agents, FenceKeys
from .cluster import Daemon, mpp_cli, node_states, wait_settled, write_config
from .etcd import EtcdCluster
from .partition import (
    Gateway,
    PinnedClient,
    SocketSampler,
    allow_from,
    clear_rules,
    cut_port,
    isolate_primary,
)
from .proxy import Proxies
from .scenario import Scenario, Step
from .surfaces import RouterClient, SurfaceWatch, misroutes, summary
from .watchers import ReadOnlySampler, lost_ids
from .workload import Writer, create_table

Heal = Callable[[], object]


@dataclass
class Run:
    """What an injector may touch: the sandbox, and the mpp process under test."""

    d: Path
    config: Path
    daemon: Daemon
    etcd: EtcdCluster | None = None  # the store, when the scenario puts it on etcd
    proxies: Proxies | None = None  # between mpp and the nodes, when the scenario has them
    agents: Agents | None = None  # an `mpp agent` per node, when the scenario has them
    gateway: Gateway | None = None  # the internal checkpoint, when the scenario has one
    # ports the primary side of a partition must not reach besides the nodes' (mpp's own)
    mpp_ports: tuple[int, ...] = ()
    # every fault as it went in: (started, injector returned, fault, node)
    injected: list[tuple[float, float, str, str]] = field(default_factory=list)
    # a sited scenario's instances, in the order of its sites (`daemon` is the second's)
    instances: list[Instance] = field(default_factory=list)


Injector = Callable[..., Heal | None]


@dataclass
class Instance:
    """One of a sited scenario's mpp instances (Scenario.sites)."""

    site: str
    daemon: Daemon
    api: str  # its API's base URL, as the harness reaches it (from 127.0.0.1)


def _kill(run: Run, node: str) -> Heal:
    injectors.kill(run.d, node)
    return partial(injectors.resume, run.d, node)


def _hang(run: Run, node: str) -> Heal:
    """SIGSTOP; healed by SIGCONT, or, with agents, as the operator heals a node its agent
    killed for a fence and gave up on (the agent restarted, which starts mysqld)."""
    injectors.hang(run.d, node)
    return partial(_operator_restart, run, node)


def _writable(run: Run, node: str) -> Heal:
    """A second writable node (what a careless operator or a broken fence leaves)."""
    injectors.set_read_only(run.d, node, False)
    return partial(injectors.set_read_only, run.d, node, True)


def _pause_mpp(run: Run, node: str) -> Heal:
    """mpp itself hung (SIGSTOP): nothing decides or fences until it resumes."""
    run.daemon.proc.send_signal(signal.SIGSTOP)
    return partial(run.daemon.proc.send_signal, signal.SIGCONT)


def _kill_mpp(run: Run, node: str) -> Heal:
    """mpp killed -9 (mid-failover when timed so); healed by starting a new `mpp run` on the
    same store, which must finish towards the recorded decision, never pick another."""
    run.daemon.proc.send_signal(signal.SIGKILL)
    run.daemon.stop()

    def restart() -> None:
        run.daemon = Daemon(run.config, run.daemon.log.with_suffix(".restarted.log"))

    return restart


def _switchover(run: Run, node: str) -> None:
    """A planned switchover to `node`, as an operator runs it (`mpp switchover`); the
    step waits for it, and a refused or rolled-back one fails the scenario."""
    done = mpp_cli(run.config, "switchover", "main", "--to", node, timeout=60.0)
    if done.returncode != 0:
        raise RuntimeError(f"mpp switchover to {node} failed: {done.stdout.strip()[-300:]}")


def _on_sandbox(fault: Callable[..., Heal | None]) -> Injector:
    """An injector of mpp.faults.injectors (sandbox directory, node, options -> heal)."""

    def inject(run: Run, node: str, **options: Any) -> Heal | None:
        return fault(run.d, node, **options)

    return inject


def _kill_etcd(run: Run, node: str, member: int | str = "leader") -> Heal:
    """One etcd member of three SIGKILLed (an index, "leader" or "follower"); healed by
    restarting it on its data directory. `node` is not used: the store is no node's."""
    if run.etcd is None:
        raise RuntimeError('kill_etcd needs store = "etcd3"')
    return partial(run.etcd.restart, run.etcd.kill(member))


def _latency(run: Run, node: str, ms: float = 200.0) -> Heal:
    """`ms` added each way on every path between mpp and the nodes (the proxies); `node` is
    not used. Healed by setting the delay back to 0."""
    proxies = run.proxies
    if proxies is None:
        raise RuntimeError("latency needs proxied = true")
    proxies.set_delay(ms / 1000.0)
    return partial(proxies.set_delay, 0.0)


def _isolate_primary(run: Run, node: str, client_source: str = "127.0.0.6") -> Heal:
    """`node` with whatever binds `client_source` (its agent, its clients) partitioned from
    the other nodes, mpp and the store (mpp.faults.partition)."""
    store = tuple(run.etcd.client_ports) if run.etcd is not None else ()
    return isolate_primary(run.d, node, client_source, (*run.mpp_ports, *store))


def _cut_checkpoints(run: Run, node: str) -> Heal:
    """The instance cut off from its internal checkpoint (iptables DROP to the gateway):
    by its own rule it is on the wrong side of a LAN cut. `node` is not used."""
    if run.gateway is None:
        raise RuntimeError("cut_checkpoints needs checkpoints = true")
    return cut_port(run.gateway.port)


def _kill_supervised(run: Run, node: str, up_within: float = 20.0) -> Heal:
    """kill -9 a node its agent supervises, once it is up again (a repeated step waits for
    the agent's restart of the previous kill, rather than finding no process to kill). No
    restart by the harness: that is the agent's. The heal, at the end, is the operator's
    after the agent gave up: the agent restarted (giving up is final until then), which
    starts mysqld again; nothing changes for a node the agent kept running."""

    def up() -> bool:
        rec = {n.name: n for n in sandbox.status(run.d)}[node]
        return rec.running and _accepts(run.d, node)

    deadline = time.monotonic() + up_within
    while not up():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{node} not back within {up_within:g} s: nothing to kill")
        time.sleep(_POLL)
    injectors.kill(run.d, node)
    return partial(_operator_restart, run, node)


def _operator_restart(run: Run, node: str) -> None:
    agent = run.agents.running.get(node) if run.agents is not None else None
    if run.agents is not None and agent is not None and agent.report().get("gave_up"):
        run.agents.restart(node)
    injectors.resume(run.d, node)  # without an agent (or one that did not start it): the node


def _accepts(d: Path, node: str) -> bool:
    """Whether the node answers a root login now (a started mariadbd still in recovery
    does not, and a kill then would be a kill of a start, not of a server)."""
    try:
        sandbox.admin_connect(d, node, connect_timeout=0.5, read_timeout=0.5).close()
    except (pymysql.MySQLError, OSError):
        return False
    return True


INJECTORS: dict[str, Injector] = {
    "kill_etcd": _kill_etcd,
    "latency": _latency,
    "kill": _kill,
    "hang": _hang,
    "writable": _writable,
    "pause_mpp": _pause_mpp,
    "kill_mpp": _kill_mpp,
    "switchover": _switchover,
    "isolate_primary": _isolate_primary,
    "kill_supervised": _kill_supervised,
    "cut_checkpoints": _cut_checkpoints,
    **{
        name: _on_sandbox(getattr(injectors, name))
        for name in (
            "stop_io",
            "stop_sql",
            "break_io",
            "lag",
            "exhaust_connections",
            "cut_from_mpp",
        )
    },
    "errant_write": _on_sandbox(injectors.errant_write),
}


# per scenario, after the sandbox's three node ports: the API (HTTP checks), the agent-check
# and the router's rw port, so every scenario watches every surface
SURFACE_PORTS = 3
# and the gateway a scenario with checkpoints watches as its internal checkpoint, and the
# APIs of a sited scenario's two other instances
PORTS_PER_SCENARIO = 3 + SURFACE_PORTS + 1 + 2
ROUTER_FIRST_ID = 10_000_000  # the router client's ids, apart from the writer's
PINNED_FIRST_ID = 20_000_000  # the primary side's client (client_source)
_CONNECT_TIMEOUT = 1.0  # mpp's, in every scenario


def gateway_port(base_port: int) -> int:
    return base_port + 3 + SURFACE_PORTS


def checkpoints_toml(base_port: int) -> str:
    """The instance's one internal checkpoint: the gateway (MPP's LAN router)."""
    return (
        f'\n[[checkpoint]]\nname = "lan-gateway"\nkind = "internal"\n'
        f'target = "tcp:127.0.0.1:{gateway_port(base_port)}"\ntimeout = "300ms"\n'
    )


def surfaces_toml(base_port: int) -> str:
    """The [api], [agent] and [router] sections a scenario's mpp serves."""
    api, agent, rw = (base_port + 3 + i for i in range(SURFACE_PORTS))
    return (
        f'\n[api]\nlisten = "127.0.0.1:{api}"\n'
        f'\n[agent]\nlisten = "127.0.0.1:{agent}"\n'
        f'\n[router]\nrw = "127.0.0.1:{rw}"\n'
    )


@dataclass
class Row:
    """One line of the matrix."""

    name: str
    passed: bool = False
    rto: float | None = None
    lost: int | None = None
    max_writable: int | None = None
    misrouted: int | None = None  # answers or connections that sent a client off the primary
    failovers: int = 0
    recorded: str = ""
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    gap: str = ""
    # the first primary's read_only turned 1 (the sampler), from the first fault
    fenced: float | None = None
    # the first primary's last answer read_only = 0 before that, from the first fault
    writable_until: float | None = None
    # the first acknowledged write after the last fault, from that fault
    after_last: float | None = None
    notes: list[str] = field(default_factory=list)  # what else the table should say
    injected_at: list[float] = field(default_factory=list)  # each fault, from the first


def net_timeout(d: Path, seconds: int) -> None:
    """slave_net_timeout on every node, the replicas' IO threads reconnected so that they
    use it (a receiver reads it when it connects)."""
    for node in sandbox.nodes(d):
        root_sql(d, node.name, f"SET GLOBAL slave_net_timeout = {int(seconds)}")
        if node.name != "db1":
            root_sql(d, node.name, "STOP SLAVE")
            root_sql(d, node.name, "START SLAVE")


def run_scenario(scenario: Scenario, root: Path, base_port: int) -> Row:
    """Build, break, heal and judge; the sandbox and mpp are gone when it returns."""
    row = Row(scenario.name, gap=scenario.gap)
    started = time.monotonic()
    d = root / scenario.name
    run: Run | None = None
    writer: Writer | None = None
    sampler: ReadOnlySampler | None = None
    routes: list[object] = []  # an etcd store, proxies: stopped after mpp
    watch: SurfaceWatch | None = None
    client: RouterClient | None = None
    pinned: PinnedClient | None = None
    try:
        # every node starts read-only, as production servers should (a restarted old primary
        # must not take writes before mpp decides); the primary is made writable once
        sandbox.up(
            d, nodes=3, base_port=base_port, topology="primary-replica", read_only_start=True
        )
        if scenario.slave_net_timeout:
            net_timeout(d, scenario.slave_net_timeout)
        config = write_config(
            d,
            scenario.interval,
            f"{_CONNECT_TIMEOUT:g}s",
            scenario.pool,
            "scenario.toml",
            scenario.mpp,
            surfaces_toml(base_port)
            + (checkpoints_toml(base_port) if scenario.checkpoints else ""),
        )
        gateway = Gateway(gateway_port(base_port)) if scenario.checkpoints else None
        if gateway is not None:
            gateway.start()
            routes.append(gateway)
        run = _routes(scenario, d, config, routes, base_port)
        run.gateway = gateway
        # the primary side reaches no instance but its own site's
        extra = [_site_api_port(base_port, 1)] if scenario.sites else []
        run.mpp_ports = (*(base_port + 3 + i for i in range(SURFACE_PORTS)), *extra)
        wait_settled(d, config, run.daemon, "db1")
        if run.instances:
            _wait_views(run, "db1")
        create_table(d, "db1")
        roles = {"primary": "db1", "replica": "db2", "replica2": "db3"}
        if scenario.agents:
            run.agents = _agents(scenario, run, roles["primary"])
            run.agents.start()
        writer = Writer(ports(d), rate=scenario.write_rate)
        # a partitioned node is out of every TCP client's reach: the sampler reads through
        # the Unix sockets then, or it would count the cut-off primary not writable
        partitioned = "isolate_primary" in scenario.faults
        sampler = SocketSampler(d) if partitioned else ReadOnlySampler(d)
        if scenario.client_source:
            allow_from(d, scenario.client_source)
            pinned = PinnedClient(
                roles["primary"],
                ports(d)[roles["primary"]],
                PINNED_FIRST_ID,
                scenario.client_source,
            )
            pinned.start()
        host = "127.0.0.1"
        watch = SurfaceWatch("main", sorted(ports(d)), (host, base_port + 3), (host, base_port + 4))
        client = RouterClient(base_port + 5, ports(d), ROUTER_FIRST_ID)
        for running in (writer, sampler, watch, client):
            running.start()
        t0 = now()
        first_fault = _inject_all(
            run, scenario, roles, t0, partial(_during, run, scenario, roles, row)
        )
        _settle(run, scenario, roles, row)
        for part in (writer, client, watch, sampler, pinned):
            if part is not None:
                part.close()
        _judge(run, scenario, roles, row, writer, sampler, t0, first_fault, client, pinned)
        # mpp sees a change at its next poll, which may itself take up to connect_timeout
        noticed = _seconds(scenario.interval) + _CONNECT_TIMEOUT
        if scenario.sites:
            # and with several instances, the surfaces answer from the store, which nobody
            # writes while the lease moves from a cut-off leader to the next: up to its TTL
            # (docs/quorum.md: the fenced primary still said UP for rw meanwhile)
            noticed += _seconds(str(scenario.mpp.get("leader_ttl", "10s")))
        wrong = misroutes(sampler.snapshot(), watch.rounds, client.landings, noticed)
        row.misrouted = len(wrong)
        row.problems.extend(summary(wrong, t0))
    except Exception as err:  # a scenario that cannot even run is a failed row, with why
        row.problems.append(f"{type(err).__name__}: {err}")
    finally:
        for thread in (writer, client, watch, sampler, pinned):
            if thread is not None:
                with contextlib.suppress(Exception):
                    thread.close()
        if run is not None and run.agents is not None:
            with contextlib.suppress(Exception):
                run.agents.stop()  # before the sandbox goes: no restart of a node stopped
        if run is not None:
            with contextlib.suppress(Exception):
                run.daemon.proc.send_signal(signal.SIGCONT)  # a paused mpp must hear the TERM
            run.daemon.stop()
            for other in run.instances:
                with contextlib.suppress(Exception):
                    other.daemon.stop()
        _close_routes(routes)
        if "isolate_primary" in scenario.faults:
            with contextlib.suppress(Exception):  # the heals may not have run
                clear_rules(range(base_port, base_port + 3))
        if scenario.checkpoints:
            with contextlib.suppress(Exception):
                clear_rules([gateway_port(base_port)])
        with contextlib.suppress(Exception):
            sandbox.destroy(d)
    row.passed = not row.problems
    row.seconds = round(time.monotonic() - started, 1)
    return row


def _routes(scenario: Scenario, d: Path, config: Path, routes: list[object], base_port: int) -> Run:
    """mpp started on the scenario's store and paths when they are not the sandbox's own:
    an etcd cluster in the scenario directory, proxies between mpp and the nodes (the
    config rewritten to use them first), an instance per site. Each goes into `routes` as
    soon as it runs, for `_close_routes` to stop whatever happens next."""
    etcd = EtcdCluster(d / "etcd") if scenario.store == "etcd3" else None
    proxies = Proxies(ports(d)) if scenario.proxied else None
    routes += [r for r in (proxies, etcd) if r is not None]
    text = config.read_text()
    if etcd is not None:
        etcd.start()
        text = etcd.route_config(text)
    if proxies is not None:
        text = proxies.route_config(text)
    config.write_text(text)
    log = d.parent / f"{scenario.name}.mpp.log"  # beside d, which goes at the end
    if scenario.sites:
        return _start_sites(scenario, d, config, etcd, proxies, base_port)
    return Run(d, config, Daemon(config, log), etcd, proxies)


def _site_api_port(base_port: int, i: int) -> int:
    """The API port of a sited scenario's first (i = 0) or third (i = 1) instance."""
    return gateway_port(base_port) + 1 + i


def _start_sites(
    scenario: Scenario,
    d: Path,
    config: Path,
    etcd: EtcdCluster | None,
    proxies: Proxies | None,
    base_port: int,
) -> Run:
    """Three instances on the scenario's etcd, one per site, node i in site i. The first
    site's is started first and leads: the partition of the primary's side then cuts off
    the leader with it, the hardest case. It comes from client_source, for its probes and
    for its store connections ([etcd] source_address), so the partition's rules take it
    along; the other two come from 127.0.0.1. The second site's instance is the one the
    matrix reads (`config`, every surface); the others serve only their API."""
    if etcd is None:
        raise RuntimeError("sites need store = etcd3")
    text = config.read_text()
    for node, site in zip(("db1", "db2", "db3"), scenario.sites, strict=True):
        text, found = re.subn(
            rf'^name = "{node}"$', f'name = "{node}"\nsite = "{site}"', text, count=1, flags=re.M
        )
        if not found:
            raise RuntimeError(f"no node {node} in {config}")
    surfaces = surfaces_toml(base_port)
    if surfaces not in text:
        raise RuntimeError(f"{config} lacks the scenario's surfaces")

    def sited(i: int, site: str, body: str, etcd_keys: str = "") -> str:
        keys = f'name = "mpp-{site}"\nsite = "{site}"\n'
        if i == 0:
            keys += f'source_address = "{scenario.client_source}"\n'
        return body.replace("[mpp]\n", "[mpp]\n" + keys, 1) + etcd_keys

    first, main, third = scenario.sites
    listens = [f"127.0.0.1:{_site_api_port(base_port, i)}" for i in (0, 1)]
    api_only = [f'\n[api]\nlisten = "{listen}"\n' for listen in listens]
    paths = [d / f"scenario-{site}.toml" for site in (first, third)]
    paths[0].write_text(
        sited(
            0,
            first,
            text.replace(surfaces, api_only[0]),
            f'\n[etcd]\nsource_address = "{scenario.client_source}"\n',
        )
    )
    paths[1].write_text(sited(2, third, text.replace(surfaces, api_only[1])))
    config.write_text(sited(1, main, text))
    logs = [d.parent / f"{scenario.name}.mpp-{site}.log" for site in (first, third)]
    lead = Instance(first, Daemon(paths[0], logs[0]), f"http://{listens[0]}")
    instances = [lead]
    try:
        wait_for_role(lead, "leader", 30.0)
        main_log = d.parent / f"{scenario.name}.mpp.log"
        daemon = Daemon(config, main_log)
        main_api = f"http://127.0.0.1:{base_port + 3}"
        instances.append(Instance(main, daemon, main_api))
        instances.append(Instance(third, Daemon(paths[1], logs[1]), f"http://{listens[1]}"))
    except BaseException:
        for started in instances:
            with contextlib.suppress(Exception):
                started.daemon.stop()
        raise
    return Run(d, config, daemon, etcd, proxies, instances=instances)


def role_of(instance: Instance) -> str | None:
    """What the instance's /v1/health says it is ("leader", "follower"); None: no answer."""
    with contextlib.suppress(httpx.HTTPError, ValueError):
        body = httpx.get(instance.api + "/v1/health", timeout=2.0).json()
        role = body.get("role") if isinstance(body, dict) else None
        return str(role) if role is not None else None
    return None


def wait_for_role(instance: Instance, role: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while role_of(instance) != role:
        if not instance.daemon.alive():
            raise RuntimeError(f"mpp of {instance.site} exited; see {instance.daemon.log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"mpp of {instance.site} not {role} within {timeout:g} s")
        time.sleep(0.2)


def _leaders(run: Run) -> list[str]:
    """The sites whose instance says it leads now."""
    return [i.site for i in run.instances if role_of(i) == "leader"]


def _wait_views(run: Run, node: str, timeout: float = 20.0) -> None:
    """Until the leader has every other instance's fresh view of `node` as answering: the
    quorum of views is in place before any fault."""
    deadline = time.monotonic() + timeout
    seen: object = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, IndexError):
            lead = next(i for i in run.instances if i.site in _leaders(run))
            nodes = httpx.get(lead.api + "/v1/pools", timeout=2.0).json()["pools"][0]["nodes"]
            seen = next(n for n in nodes if n["name"] == node).get("views")
            others = len(run.instances) - 1
            if isinstance(seen, str) and seen.count(" ok") == others and "stale" not in seen:
                return
        time.sleep(0.25)
    raise RuntimeError(f"the leader lacks the other instances' views of {node}: {seen!r}")


def _agents(scenario: Scenario, run: Run, primary: str) -> Agents:
    """An agent per node, its config and log beside the scenario's directory (kept after the
    sandbox goes, as mpp's log is): watch mode, the scenario's [mysqld] keys, and unless
    `fence = false` the fence keys: the scenario's store, its lease, the other nodes as
    peers, and for the first primary the primary side's address."""
    keys = dict(scenario.agent)
    fence = bool(keys.pop("fence", True))
    ttl = str(keys.pop("fence_ttl", "3s"))
    store = run.etcd.state_url if run.etcd is not None else f"sqlite://{run.d.resolve()}/state.db"
    addresses = {n: f"127.0.0.1:{p}" for n, p in ports(run.d).items()}
    fences = {
        node: FenceKeys(
            store,
            ttl,
            tuple(a for n, a in addresses.items() if n != node),
            (scenario.client_source or None) if node == primary else None,
        )
        for node in addresses
    }
    directory = run.d.parent / f"{scenario.name}.agents"
    return Agents(run.d, directory, fence=fences if fence else {}, mysqld=keys)


def _close_routes(routes: list[object]) -> None:
    for route in routes:
        with contextlib.suppress(Exception):
            if isinstance(route, Proxies):
                route.close()
            elif isinstance(route, EtcdCluster):
                route.stop()
            elif isinstance(route, Gateway):
                route.close()


def _seconds(duration: str) -> float:
    """A scenario's interval ("1s", "250ms") in seconds."""
    if duration.endswith("ms"):
        return float(duration[:-2]) / 1000
    return float(duration.rstrip("s"))


def _states_now(run: Run) -> dict[str, dict[str, Any]]:
    """The first pool's nodes as mpp shows them now, through the daemon's own API: a look
    takes milliseconds, where `mpp status` is a process start (about a second on a loaded
    machine, which delayed a timed fault by as much and shortened its down time; the
    flapping row's kills then fell between two polls). The CLI when the API does not
    answer (a scenario may cut mpp off, or restart it)."""
    listen = _api_listen(run.config)
    if listen:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, IndexError):
            pools = httpx.get(f"http://{listen}/v1/pools", timeout=2.0).json()["pools"]
            return {n["name"]: n for n in pools[0]["nodes"]}
    return node_states(run.config)


@cache
def _api_listen(config: Path) -> str | None:
    """The [api] listen address of a scenario's config (written once, before mpp starts)."""
    listen = tomllib.loads(config.read_text()).get("api", {}).get("listen")
    return str(listen) if listen else None


def _resolve(run: Run, ref: str, roles: dict[str, str]) -> str:
    if ref in ("active", "standby"):
        state = ref.upper()
        found = [
            n
            for n, s in _states_now(run).items()
            if s["state"] == state
            and (state == "ACTIVE" or (s["requests"] == 0 and n != roles["primary"]))
        ]
        if not found:
            raise RuntimeError(f"step wants a healthy {state} node, and the pool has none")
        return found[0]
    return roles.get(ref, ref)


def _inject_all(
    run: Run, scenario: Scenario, roles: dict[str, str], t0: float, before_heals: Heal
) -> float:
    """Every fault (and its timed heal) at its time, then the remaining heals at the end of
    the observation, latest fault healed first. Returns when the first fault went in.
    Steps `on = "failover"` are timed from when mpp records the failover."""
    plan: list[tuple[float, int, Step | Heal]] = [
        (t, i, step) for i, step in enumerate(scenario.steps) if not step.on for t in step.times()
    ]
    waiting = [(i, step) for i, step in enumerate(scenario.steps) if step.on]
    pending: list[Heal] = []
    first: float | None = None
    seq = len(scenario.steps)
    end = t0 + scenario.observe
    while (plan or waiting) and now() < end:
        if waiting and (took := _failover_recorded(run.d)) is not None:
            plan += [(took - t0 + t, i, step) for i, step in waiting for t in step.times()]
            waiting = []
        plan.sort(key=lambda item: (item[0], item[1]))
        if not plan or (waiting and t0 + plan[0][0] > now() + _POLL):
            time.sleep(_POLL)  # waiting for the failover record
            continue
        at, _, what = plan.pop(0)
        time.sleep(max(0.0, t0 + at - now()))
        if isinstance(what, Step):
            node = _resolve(run, what.node, roles)
            # the fault starts as the injector starts (a kill returns only once the process
            # is gone and reaped, which under load can outlast the failover itself)
            first = now() if first is None else first
            started = now()
            heal = INJECTORS[what.fault](run, node, **what.options)
            run.injected.append((started, now(), what.fault, node))
            if heal is None:
                continue
            if what.heal_after is not None:
                # down for heal_after from when the fault went in, however late that was
                seq += 1
                plan.append((max(at, started - t0) + what.heal_after, seq, heal))
            else:
                pending.append(heal)
        else:
            what()
    time.sleep(max(0.0, end - now()))
    before_heals()
    for _, _, what in plan:  # timed heals the observation ended before
        if not isinstance(what, Step):
            pending.append(what)
    for heal in reversed(pending):
        heal()
    return first if first is not None else t0


_POLL = 0.02


def _failover_recorded(d: Path) -> float | None:
    """When mpp's history first shows a failover (read straight from its SQLite file, as a
    monitoring script would; the CLI would take a process start per look)."""
    path = d / "state.db"
    if not path.exists():
        return None
    with contextlib.closing(sqlite3.connect(path, timeout=1.0)) as db:
        try:
            row = db.execute(
                "SELECT MIN(at) FROM event WHERE change_kind = 'failover' AND new = 'ACTIVE'"
            ).fetchone()
        except sqlite3.Error:
            return None
    return None if row is None or row[0] is None else float(row[0])


def _during(run: Run, scenario: Scenario, roles: dict[str, str], row: Row) -> None:
    """What must hold while the faults are still in: states, messages, ro checks, and in
    a sited scenario one leader, on the side of the cut that has the store."""
    expect = scenario.expect
    if run.instances:
        leaders = _leaders(run)
        row.notes.append(f"leading at the end of the fault: {', '.join(leaders) or 'none'}")
        if len(leaders) != 1 or leaders[0] == run.instances[0].site:
            row.problems.append(
                f"during the fault the instances of {leaders} say they lead: exactly one, "
                f"not {run.instances[0].site} (cut off from the store), must"
            )
    if not (expect.during_states or expect.during_message or expect.ro_down or expect.rw_down):
        return  # nothing to look at (and `mpp status` cannot read a store that lost quorum)
    states = _states_now(run)
    for ref, state in expect.during_states.items():
        node = _resolve(run, ref, roles)
        if states[node]["state"] != state:
            row.problems.append(f"during the fault {node} is {states[node]['state']}, not {state}")
    for ref, text in expect.during_message.items():
        node = _resolve(run, ref, roles)
        if text not in states[node]["message"]:
            row.problems.append(f"during the fault {node}'s message lacks {text!r}")
    for ref in expect.ro_down:
        node = _resolve(run, ref, roles)
        done = mpp_cli(run.config, "check", node, "--role", "ro")
        if done.returncode == 0:
            row.problems.append(f"during the fault the ro check says {done.stdout.strip()!r}")
    for ref in expect.rw_down:
        node = _resolve(run, ref, roles)
        done = mpp_cli(run.config, "check", node, "--role", "rw")
        if done.returncode == 0:
            row.problems.append(
                f"during the fault the rw check of {node} says {done.stdout.strip()!r}"
            )


def _settle(run: Run, scenario: Scenario, roles: dict[str, str], row: Row) -> None:
    """Until mpp shows one ACTIVE node, the expected end states, and every other node
    STANDBY and healthy, or quarantined for errant transactions (a killed primary may hold
    a commit no replica received: keeping it out is right), and the servers match (one
    writable primary, its replicas streaming); a pool that never gets there is a problem
    of the row."""
    wanted = {
        _resolve(run, ref, roles): [state] if isinstance(state, str) else state
        for ref, state in scenario.expect.states.items()
    }
    because = {_resolve(run, r, roles): t for r, t in scenario.expect.failed_because.items()}

    def settled(name: str, s: dict[str, Any]) -> bool:
        failed = s["state"].startswith("FAILED")
        if name in wanted:  # an expected FAILED end needs its reason, not a passing state
            healthy = s["state"] != "STANDBY" or s["requests"] == 0
            return (
                s["state"] in wanted[name]
                and healthy
                and (not failed or name not in because or because[name] in s["message"])
            )
        return (s["state"] in ("ACTIVE", "STANDBY") and s["requests"] == 0) or (
            s["state"] == "FAILED_ONLINE" and "errant transactions" in s["message"]
        )

    deadline = time.monotonic() + scenario.settle
    last: dict[str, Any] = {}
    quarantined: dict[str, str] | None = None  # the end states with an errant verdict, not yet held
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            states = _states_now(run)
            last = {n: (s["state"], s["requests"], s["message"][:160]) for n, s in states.items()}
            actives = [n for n, s in states.items() if s["state"] == "ACTIVE"]
            # and the servers match (the judge's final check): mpp may have just taken the
            # lease back (a healed cut) and not yet converged them
            if (
                len(actives) == 1
                and all(settled(n, s) for n, s in states.items())
                and not _topology(run.d, actives[0], states)
            ):
                errant = {n for n, s in states.items() if s["state"] == "FAILED_ONLINE"}
                # mpp judges a quarantined node again every poll, and a node caught up
                # mid-rejoin can read as errant for one poll (docs/reliability.md): an end
                # with a quarantine counts once the same states held a poll interval later
                ends = {n: s["state"] for n, s in states.items()}
                if not errant or quarantined == ends:
                    return
                quarantined = ends
                time.sleep(_seconds(scenario.interval))
                continue
            quarantined = None
        time.sleep(0.25)
    row.problems.append(f"not settled within {scenario.settle:g} s: {last}")


def _judge(
    run: Run,
    scenario: Scenario,
    roles: dict[str, str],
    row: Row,
    writer: Writer,
    sampler: ReadOnlySampler,
    t0: float,
    first_fault: float,
    client: RouterClient,
    pinned: PinnedClient | None = None,
) -> None:
    expect = scenario.expect
    pinned_acks = pinned.snapshot() if pinned is not None else []
    states = node_states(run.config)
    final = next((n for n, s in states.items() if s["state"] == "ACTIVE"), None)
    if run.instances:
        leaders = _leaders(run)
        if len(leaders) != 1:
            row.problems.append(f"after the heal the instances of {leaders} say they lead")
    history = _history(run.config, t0)
    promotions = [e for e in history if e.get("change") == "failover" and e["new"] == "ACTIVE"]
    row.failovers = len(promotions)
    row.recorded = "; ".join(
        f"{e['node']} {e['old']}>{e['new']}" for e in history if e["kind"] in _STATE_KINDS
    )
    row.max_writable = sampler.max_writable()
    if final is not None:
        # the router's path too, and the primary side's client
        acked = writer.acked_ids() | {a.id for a in client.acks} | {a.id for a in pinned_acks}
        row.lost = len(lost_ids(run.d, final, acked))
    if not client.landings:
        row.problems.append(f"no connection through the router landed: {client.errors[:2]}")
    moved = final is not None and final != roles["primary"]
    if expect.failover:
        ack = writer.first_ack(first_fault, exclude=roles["primary"])
        row.rto = round(ack.at - first_fault, 3) if ack is not None else None
    # the agent rows' measures (printed under the table only where they mean something)
    if expect.fenced_first or "isolate_primary" in scenario.faults:
        row.fenced = _fenced(sampler, roles["primary"], first_fault)
        writable_until = _last_writable(sampler, roles["primary"], first_fault, row.fenced)
        row.writable_until = writable_until
        if writable_until is not None:
            row.notes.append(
                f"first primary last seen writable {writable_until:.2f} s after the fault"
            )
    row.injected_at = [round(t - first_fault, 3) for t, _, _, _ in run.injected]
    if pinned is not None:
        after = sum(1 for a in pinned_acks if a.at > first_fault)
        # sent once the first fault was in place (its injector returned): a write sent
        # while the DROP rules were still going in, one port after another, may rightly
        # get a replica's acknowledgement (counted from the injector's start, the 60 s
        # strict row found one such write in 1 of 3 runs)
        cut = run.injected[0][1] if run.injected else first_fault
        sent_after = sum(1 for a in pinned_acks if a.sent is not None and a.sent > cut)
        row.notes.append(
            f"the primary side's client: {len(pinned_acks)} writes acknowledged "
            f"({after} after the first fault, {sent_after} sent once it was in), "
            f"{len(pinned.refused)} refused by read_only, {len(pinned.ambiguous)} without "
            f"an answer"
        )
        bound = expect.acks_after_fault
        if bound is not None and sent_after > bound:
            row.problems.append(
                f"the primary side's client: {sent_after} writes sent once the first fault "
                f"was in were acknowledged (at most {bound})"
            )
    if expect.after_last is not None or scenario.agents:
        row.after_last = _after_last(run, writer.snapshot() + pinned_acks)
    if expect.max_write_pause is not None:
        pause, since, until = writer.longest_gap(first_fault, t0 + scenario.observe)
        row.notes.append(
            f"longest time without an acknowledged write from the first fault to the heal: "
            f"{pause:.2f} s (from {since - first_fault:.2f} s to {until - first_fault:.2f} s)"
        )
        if pause > expect.max_write_pause:
            row.problems.append(
                f"no write acknowledged for {pause:.2f} s during the fault, "
                f"bound {expect.max_write_pause:g} s"
            )
    if promotions:
        took = promotions[0]["at"]
        acks = writer.snapshot() + client.acks + pinned_acks
        late = [a for a in acks if a.node == roles["primary"] and a.at > took]
        if len(late) > expect.old_primary_acks:
            problems_late = f"{len(late)} writes acknowledged by {roles['primary']} after the"
            row.problems.append(f"{problems_late} failover (at most {expect.old_primary_acks})")
    problems = row.problems
    if moved != expect.failover:
        problems.append(f"failover expected: {expect.failover}; ACTIVE now {final}")
    if expect.to is not None and final != _resolve(run, expect.to, roles):
        problems.append(f"ACTIVE is {final}, expected {expect.to}")
    if not expect.failovers_needed <= row.failovers <= expect.failovers_allowed:
        problems.append(
            f"{row.failovers} failovers recorded; expected "
            f"{expect.failovers_needed} to {expect.failovers_allowed}"
        )
    if expect.rto is not None and (row.rto is None or row.rto > expect.rto):
        problems.append(f"RTO {row.rto} s, bound {expect.rto:g} s")
    if row.lost is None or row.lost > expect.lost:
        problems.append(f"{row.lost} acknowledged writes lost (at most {expect.lost})")
    if row.max_writable > expect.max_writable:
        worst = sampler.worst()
        problems.append(
            f"{row.max_writable} nodes writable at once ({worst.writable if worst else ''})"
        )
    for ref, text in expect.message.items():
        node = _resolve(run, ref, roles)
        if text not in states[node]["message"]:
            problems.append(f"{node}'s message lacks {text!r}: {states[node]['message']!r}")
    for ref, text in expect.failed_because.items():
        node = _resolve(run, ref, roles)
        if states[node]["state"].startswith("FAILED") and text not in states[node]["message"]:
            problems.append(f"{node} is {states[node]['state']} without {text!r}")
    # the fence happened between the last answer read_only = 0 and the first = 1 (the
    # sampler's 50 ms apart): only an answer 0 after the new primary's first acknowledged
    # write proves it late, and one 1 before it proves it in time
    if expect.fenced_first and (
        row.fenced is None
        or row.rto is None
        or (row.writable_until is not None and row.writable_until > row.rto)
    ):
        problems.append(
            f"{roles['primary']} last seen writable {row.writable_until} s and read-only "
            f"{row.fenced} s after the fault, the new primary's first acknowledged write "
            f"after {row.rto} s: the fence must come first"
        )
    if expect.after_last is not None and (
        row.after_last is None or row.after_last > expect.after_last
    ):
        problems.append(
            f"writes acknowledged again {row.after_last} s after the last fault, "
            f"bound {expect.after_last:g} s"
        )
    if expect.clean_log:
        problems.extend(f"mpp logged: {line}" for line in run.daemon.problems(5))
    if final is not None:
        problems.extend(_final_topology(run.d, final, states, row))


_STATE_KINDS = ("state", "operator", "switchover")


def _fenced(sampler: ReadOnlySampler, node: str, since: float) -> float | None:
    """Seconds from `since` to the sampler's first answer read_only = 1 from `node` (dated
    by when that answer came, not by the round's start)."""
    for r in sampler.snapshot(since):
        if r.read_only.get(node) == 1:
            return round(r.answered.get(node, r.ended) - since, 3)
    return None


def _last_writable(
    sampler: ReadOnlySampler, node: str, since: float, until: float | None
) -> float | None:
    """Seconds from `since` to the sampler's last answer read_only = 0 from `node` before
    its first answer 1 (`until`, from `since`; None: the whole record)."""
    last = None
    for r in sampler.snapshot(since):
        at = r.answered.get(node, r.ended) - since
        if until is not None and at >= until:
            break
        if r.read_only.get(node) == 0:
            last = round(at, 3)
    return last


def _after_last(run: Run, acks: list[Any]) -> float | None:
    """Seconds from the last fault's start to the first write acknowledged after its
    injector returned (a kill returns once the process is gone)."""
    if not run.injected:
        return None
    started, returned, _, _ = run.injected[-1]
    ack = next((a for a in sorted(acks, key=lambda a: a.at) if a.at > returned), None)
    return round(ack.at - started, 3) if ack is not None else None


def _history(config: Path, since: float) -> list[dict[str, Any]]:
    done = mpp_cli(config, "history", "--json", "--limit", "1000")
    if done.returncode != 0:
        raise RuntimeError(f"mpp history failed: {done.stderr.strip()[-300:]}")
    return [e for e in json.loads(done.stdout) if e["at"] >= since]


def _final_topology(d: Path, final: str, states: dict[str, dict[str, Any]], row: Row) -> list[str]:
    """The servers' end state, given a few seconds: the pool settled with it healthy, and a
    replica's IO thread may reconnect meanwhile (the sandbox's slave_net_timeout is 1 s,
    which a loaded host can outlast); what still holds after that is a problem, and a
    passing dip is a note of the row, never silent."""
    problems = _topology(d, final, states)
    deadline = time.monotonic() + _TOPOLOGY_GRACE
    while problems and time.monotonic() < deadline:
        time.sleep(0.25)
        now_problems = _topology(d, final, states)
        if not now_problems:
            row.notes.append(f"at the end, healthy again within {_TOPOLOGY_GRACE:g} s: {problems}")
        problems = now_problems
    return problems


_TOPOLOGY_GRACE = 5.0


def _topology(d: Path, final: str, states: dict[str, dict[str, Any]]) -> list[str]:
    """One writable primary (the ACTIVE node), and every STANDBY a read-only replica of it
    with both threads running and no error."""
    problems: list[str] = []
    final_port = {n.name: n.port for n in sandbox.status(d)}[final]
    for name, state in states.items():
        conn = sandbox.admin_connect(d, name)
        with contextlib.closing(conn), conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SELECT @@read_only AS ro")
            ro = int((cur.fetchone() or {"ro": -1})["ro"])
            cur.execute("SHOW SLAVE STATUS")
            rep = cur.fetchone()
        if name == final:
            if ro != 0 or rep is not None:
                problems.append(f"final primary {final}: read_only={ro}, replicating={bool(rep)}")
            continue
        if state["state"] != "STANDBY":
            continue
        healthy = (
            rep is not None
            and int(rep["Master_Port"]) == final_port
            and rep["Slave_IO_Running"] == "Yes"
            and rep["Slave_SQL_Running"] == "Yes"
            and not rep["Last_IO_Errno"]
            and not rep["Last_SQL_Errno"]
        )
        if ro != 1 or not healthy:
            seen = (
                "not replicating"
                if rep is None
                else (
                    f"source port {rep['Master_Port']} (want {final_port}), "
                    f"IO {rep['Slave_IO_Running']} error {rep['Last_IO_Errno']} "
                    f"{str(rep['Last_IO_Error'])[:200]!r}, SQL {rep['Slave_SQL_Running']} "
                    f"error {rep['Last_SQL_Errno']} {str(rep['Last_SQL_Error'])[:200]!r}, "
                    f"gtid_io_pos {rep.get('Gtid_IO_Pos')}"
                )
            )
            problems.append(
                f"STANDBY {name} is not a read-only healthy replica of {final}: "
                f"read_only={ro}, {seen}"
            )
    return problems


def table(rows: list[Row]) -> str:
    """The matrix as a person reads it: one row per scenario."""
    head = (
        "scenario",
        "result",
        "RTO",
        "lost",
        "max writable",
        "misrouted",
        "failovers",
        "seconds",
    )
    lines = [head]
    for r in rows:
        lines.append(
            (
                r.name,
                "pass" if r.passed else "FAIL",
                "-" if r.rto is None else f"{r.rto:.2f} s",
                "?" if r.lost is None else str(r.lost),
                "?" if r.max_writable is None else str(r.max_writable),
                "?" if r.misrouted is None else str(r.misrouted),
                str(r.failovers),
                f"{r.seconds:g}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    for r in rows:
        if r.gap:
            out.append(f"{r.name}: known gap: {r.gap}")
        out.append(f"{r.name}: mpp recorded: {r.recorded or 'nothing'}")
        if r.fenced is not None:
            out.append(f"{r.name}: first primary read-only {r.fenced:.2f} s after the fault")
        if r.after_last is not None:
            out.append(f"{r.name}: writes acknowledged {r.after_last:.2f} s after the last fault")
        out.extend(f"{r.name}: {note}" for note in r.notes)
        out.extend(f"{r.name}: PROBLEM {p}" for p in r.problems)
    return "\n".join(out)
