"""A fault scenario as data: what to break, when, and what mpp must make of it.

Scenarios live in a TOML file (tests/faults/scenarios.toml), one `[[scenario]]` table each,
so that adding one is an entry there plus, at most, one injector (as orchestrator keeps its
system tests as data). The runner (mpp.faults.runner) reads them through `load`, which
refuses an unknown key, fault or node reference with the scenario's name in the message.

```toml
[[scenario]]
name = "kill-9-primary"
what = "kill -9 the primary under write load"
pool = { failover_block = "0s" }          # pool keys for mpp (TOML values)
observe = 8.0                              # seconds of fault before the heals run
steps = [
  { at = 1.0, fault = "kill", node = "primary" },          # healed at the end
  { at = 1.0, fault = "hang", node = "replica", heal_after = 2.0, repeat = 3, every = 4.0 },
]
[scenario.expect]
failover = true                            # the ACTIVE node changes
to = "replica"                             # the new one is a replica of the start
rto = 3.0                                  # first acknowledged write on it, from the first fault
max_failovers = 1
lost = 0                                   # acknowledged writes missing on the final primary
max_writable = 1                           # nodes with read_only = 0 at one instant
states = { replica = "FAILED_ONLINE" }     # end states (a node reference -> its state)
```
Scenario keys beyond the example: `store = "etcd3"` puts mpp's store on a real 3-member
etcd cluster (the `kill_etcd` fault), `proxied = true` sends mpp's sessions through a TCP
proxy per node (the `latency` fault), `mpp = {...}` sets [mpp] keys.

Agents (mpp.faults.agents): `agents = true` runs `mpp agent` beside every node (watch mode
on the sandbox's mariadbd, its restart through the sandbox's start), with `agent = {...}`:
`retry_limit`, `retry_interval`, `stop_timeout` for [mysqld], `fence_ttl` for the lease,
`fence = false` to write no fence keys at all (an agent that does not know them yet).
`slave_net_timeout = 60` sets the servers' own (the sandbox runs with 1 s) before mpp
starts: what a hung primary looks like to replicas in production.
`client_source = "127.0.0.6"` adds the primary side's application: a client writing to the
first primary from that address (mpp.faults.partition), its acknowledged writes judged as
the writer's; the `isolate_primary` fault cuts that side off (the primary's agent binds the
same address). Expectations for them: `fenced_first` (the first primary read-only, seen
by the sampler, before the new primary's first acknowledged write) and `after_last` (a
bound on the first acknowledged write after the last fault, from that fault) and
`acks_after_fault` (a bound on that client's writes sent after the first fault and
acknowledged: with the replicas cut off, each one would be a commit no replica has). Any
row may
bound `max_write_pause`: the longest time without an acknowledged write from the first
fault until the heals (a pool that must keep serving through its fault).

Node references: `primary` (ACTIVE when the scenario starts), `replica` and `replica2`
(the others, in order), `active` (ACTIVE when the step runs), `standby` (the first healthy
STANDBY other than `primary` when the step runs: the judge counts on the first primary
having lost its role), or a node's name.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLES = ("primary", "replica", "replica2", "active", "standby")


class ScenarioError(Exception):
    """A scenario file that cannot be run as written; the message says where."""


@dataclass(frozen=True)
class Step:
    at: float  # seconds after the workload started
    fault: str  # an injector's name (mpp.faults.runner.INJECTORS)
    node: str = "primary"  # a node reference (see the module text)
    heal_after: float | None = None  # heal this fault so long after it; None: at the end
    repeat: int = 1  # inject it this many times...
    every: float = 0.0  # ...this many seconds apart
    # "failover": `at` counts from the moment mpp records the failover (its decision is
    # committed, its actions are running): how to kill mpp in the middle of one
    on: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # the injector's keyword options

    def times(self) -> list[float]:
        return [self.at + i * self.every for i in range(self.repeat)]


@dataclass(frozen=True)
class Expect:
    failover: bool
    to: str | None = None  # a node reference the new ACTIVE must be; None: any other node
    rto: float | None = None  # bound on the first acknowledged write on the new primary
    max_failovers: int | None = None  # None: 1 when failover, else 0
    min_failovers: int | None = None  # None: 1 when failover, else 0
    lost: int = 0
    max_writable: int = 1
    # node reference -> its end state, or the end states it may have
    states: dict[str, str | list[str]] = field(default_factory=dict)
    message: dict[str, str] = field(default_factory=dict)  # node reference -> text in it
    # node reference -> the text its message must hold if it ends FAILED_* (e.g. a
    # returning old primary is rejoined, or quarantined only for errant transactions)
    failed_because: dict[str, str] = field(default_factory=dict)
    # acknowledged writes the first primary may give after the failover: what matters to
    # a client even where a node was briefly writable (see Scenario.gap)
    old_primary_acks: int = 0
    # checked at the end of the observation, before the heals: states, message texts, and
    # nodes whose ro check (`mpp check NODE --role ro`) must say DOWN
    during_states: dict[str, str] = field(default_factory=dict)
    during_message: dict[str, str] = field(default_factory=dict)
    ro_down: list[str] = field(default_factory=list)
    rw_down: list[str] = field(default_factory=list)  # `mpp check NODE --role rw` says DOWN
    # mpp's log holds no ERROR, CRITICAL, traceback or failed action (a fault that must
    # have no effect: not even a lost cycle)
    clean_log: bool = False
    # the first primary turned read-only (the sampler's first read_only = 1 after the first
    # fault) before any other node acknowledged a write: the fence came before the promotion
    fenced_first: bool = False
    # bound on the first acknowledged write after the last fault's injector returned,
    # counted from that fault: the pool writable again, wherever (restarted or promoted)
    after_last: float | None = None
    # bound on the longest time without an acknowledged write, from the first fault until
    # the heals: the pool kept serving through the fault (e.g. the store's quorum lost)
    max_write_pause: float | None = None
    # bound on the primary side's client writes (client_source) sent after the first fault
    # and acknowledged: with the replicas cut off, an acknowledged one was committed with
    # no replica's acknowledgement (semi-sync turned asynchronous)
    acks_after_fault: int | None = None

    @property
    def failovers_needed(self) -> int:
        if self.min_failovers is not None:
            return self.min_failovers
        return 1 if self.failover else 0

    @property
    def failovers_allowed(self) -> int:
        if self.max_failovers is not None:
            return self.max_failovers
        return 1 if self.failover else 0


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    steps: tuple[Step, ...]
    expect: Expect
    observe: float = 8.0  # seconds from the workload's start until the heals
    settle: float = 30.0  # after healing: how long the pool may take to converge
    pool: dict[str, Any] = field(default_factory=dict)
    mpp: dict[str, Any] = field(default_factory=dict)  # [mpp] keys (e.g. source_address)
    interval: str = "1s"
    gap: str = ""  # a known shortfall of mpp this scenario measures (printed in the table)
    # the writer's pace in writes a second; 0: as fast as it can (a replica applying
    # serially never catches up with that, which a lag scenario must allow)
    write_rate: float = 0.0
    # mpp's store: "" the sandbox's SQLite file; "etcd3" a real 3-member etcd cluster
    store: str = ""
    # mpp reaches every node through a userspace TCP proxy (mpp.faults.proxy; the latency
    # fault slows it) while replicas, the writer and the sampler connect directly
    proxied: bool = False
    # an `mpp agent` per node (mpp.faults.agents), with these keys (see the module text)
    agents: bool = False
    agent: dict[str, Any] = field(default_factory=dict)
    # the primary side's address: a client writes to the first primary from it
    client_source: str = ""
    # the instance watches an internal checkpoint (a gateway listener the harness runs):
    # the `cut_checkpoints` fault cuts it off from it
    checkpoints: bool = False
    # the servers' slave_net_timeout, set on every node before mpp starts (0: the
    # sandbox's 1 s); 60 is MariaDB's and MySQL's default, what production runs with
    slave_net_timeout: int = 0
    # one mpp instance per site on the etcd store, node i in site i (db1 in the first):
    # the first site's instance leads at the start and comes from client_source (its
    # probes and its store connections), so a partition of the primary's side takes it
    # along; the matrix reads mpp through the second site's instance
    sites: tuple[str, ...] = ()

    @property
    def faults(self) -> set[str]:
        return {s.fault for s in self.steps}


_STEP_KEYS = {"at", "fault", "node", "heal_after", "repeat", "every", "options", "on"}
_EXPECT_KEYS = {"failover", "to", "rto", "max_failovers", "lost", "max_writable", "states"}
_EXPECT_KEYS |= {"min_failovers", "failed_because"}
_EXPECT_KEYS |= {"message", "old_primary_acks", "during_states", "during_message", "ro_down"}
_EXPECT_KEYS |= {"clean_log", "fenced_first", "after_last", "max_write_pause", "rw_down"}
_EXPECT_KEYS |= {"acks_after_fault"}
_SCENARIO_KEYS = {"name", "what", "steps", "expect", "observe", "settle", "pool", "interval"}
_SCENARIO_KEYS |= {"gap", "mpp", "write_rate", "store", "proxied"}
_SCENARIO_KEYS |= {"agents", "agent", "client_source", "checkpoints", "slave_net_timeout"}
_SCENARIO_KEYS |= {"sites"}
AGENT_KEYS = {"retry_limit", "retry_interval", "stop_timeout", "fence_ttl", "fence"}
STORES = ("", "etcd3")


def load(path: Path, faults: set[str], nodes: set[str] | None = None) -> list[Scenario]:
    """Every scenario of the file, checked against the known faults (and node names)."""
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ScenarioError(f"{path}: {err}") from None
    out = [_scenario(path, raw, faults, nodes) for raw in doc.get("scenario", [])]
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{path}: scenario names must be unique: {names}")
    return out


def _scenario(
    path: Path, raw: dict[str, Any], faults: set[str], nodes: set[str] | None
) -> Scenario:
    name = str(raw.get("name", "?"))
    where = f"{path}: scenario {name!r}"
    _only(where, raw, _SCENARIO_KEYS)
    expect = raw.get("expect")
    if not isinstance(expect, dict) or "failover" not in expect:
        raise ScenarioError(f"{where}: needs [scenario.expect] with failover = true|false")
    _only(f"{where} expect", expect, _EXPECT_KEYS)
    steps = []
    for i, step in enumerate(raw.get("steps", [])):
        _only(f"{where} steps[{i}]", step, _STEP_KEYS)
        if step.get("fault") not in faults:
            known = ", ".join(sorted(faults))
            raise ScenarioError(f"{where} steps[{i}]: fault {step.get('fault')!r}; known: {known}")
        if step.get("on", "") not in ("", "failover"):
            raise ScenarioError(f'{where} steps[{i}]: on = {step["on"]!r}; allowed: "failover"')
        steps.append(Step(**step))
    if raw.get("store", "") not in STORES:
        raise ScenarioError(f"{where}: store = {raw['store']!r}; allowed: {STORES}")
    if raw.get("store") and any(s.on for s in steps):
        # the runner times those steps from the SQLite history file, which etcd replaces
        raise ScenarioError(f'{where}: on = "failover" steps need the SQLite store')
    _only(f"{where} agent", raw.get("agent", {}), AGENT_KEYS)
    if raw.get("agent") and not raw.get("agents"):
        raise ScenarioError(f"{where}: agent = {{...}} needs agents = true")
    source = str(raw.get("client_source", ""))
    if source and not (source.startswith("127.") and source != "127.0.0.1"):
        raise ScenarioError(
            f"{where}: client_source = {source!r}; use a loopback address other than "
            '127.0.0.1 (which the other side uses), e.g. "127.0.0.6"'
        )
    sites = raw.get("sites", [])
    if sites and (
        not isinstance(sites, list)
        or len(sites) != 3
        or len(set(map(str, sites))) != 3
        or raw.get("store") != "etcd3"
        or not source
    ):
        raise ScenarioError(
            f"{where}: sites = {sites!r}; give three distinct site names (one per node and "
            'instance), with store = "etcd3" and client_source (the first site\'s address)'
        )
    if "acks_after_fault" in expect and not source:
        raise ScenarioError(f"{where}: expect acks_after_fault needs client_source (its client)")
    refs = [s.node for s in steps] + list(expect.get("ro_down", []))
    refs += list(expect.get("rw_down", []))
    for key in ("states", "message", "during_states", "during_message", "failed_because"):
        refs += list(expect.get(key, {}))
    refs += [expect["to"]] if expect.get("to") else []
    for ref in refs:
        if ref not in ROLES and (nodes is None or ref not in nodes):
            raise ScenarioError(f"{where}: node {ref!r} is neither a role {ROLES} nor a node")
    return Scenario(
        name=name,
        what=str(raw.get("what", "")),
        steps=tuple(steps),
        expect=Expect(**expect),
        observe=float(raw.get("observe", 8.0)),
        settle=float(raw.get("settle", 30.0)),
        pool=dict(raw.get("pool", {})),
        mpp=dict(raw.get("mpp", {})),
        interval=str(raw.get("interval", "1s")),
        gap=str(raw.get("gap", "")),
        write_rate=float(raw.get("write_rate", 0.0)),
        store=str(raw.get("store", "")),
        proxied=bool(raw.get("proxied", False)),
        agents=bool(raw.get("agents", False)),
        agent=dict(raw.get("agent", {})),
        client_source=source,
        checkpoints=bool(raw.get("checkpoints", False)),
        slave_net_timeout=int(raw.get("slave_net_timeout", 0)),
        sites=tuple(str(x) for x in sites),
    )


def _only(where: str, raw: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(raw) - allowed)
    if extra:
        raise ScenarioError(f"{where}: unknown key(s) {extra}; allowed: {sorted(allowed)}")
