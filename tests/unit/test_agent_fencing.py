"""The agent's self-fencing rule (mpp.agent.fencing) as invariants, what it reads back from
the pool's state (mpp.agent.renewal), its peers' reachability on real sockets, and the
config keys that come with the store."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mpp.agent
from mpp.agent.fencing import fence_reason, majority
from mpp.agent.peers import count_reachable, reachable
from mpp.agent.renewal import Lease, Renewer, Seen, process_of, seen_in, significant
from mpp.config import ConfigError
from mpp.config.agent import load_agent
from mpp.model import AgentReport, NodeState, PoolState, Process
from mpp.store import SqliteStore, StoreError, open_store

inputs = st.fixed_dictionaries(
    {
        "writable": st.sampled_from([True, False, None]),
        "maintenance": st.booleans(),
        "asked": st.sampled_from(["", "mpp asked: db1 is in pool main's fencing list"]),
        "lease_age": st.floats(min_value=0.0, max_value=1000.0),
        "fence_ttl": st.floats(min_value=0.5, max_value=600.0),
        "pool_size": st.integers(min_value=1, max_value=9),
        "reachable": st.one_of(st.none(), st.integers(min_value=1, max_value=9)),
    }
)


@given(inputs)
def test_never_in_maintenance_and_never_a_server_that_is_not_writable(kw: dict[str, Any]) -> None:
    if kw["maintenance"] or kw["writable"] is not True:
        assert fence_reason(**kw) == ""


@given(inputs)
def test_without_mpp_asking_only_an_expired_lease_and_a_minority_fence(kw: dict[str, Any]) -> None:
    kw["asked"] = ""
    kw["reachable"] = None if kw["reachable"] is None else min(kw["reachable"], kw["pool_size"])
    why = fence_reason(**kw)
    if why:
        assert kw["lease_age"] > kw["fence_ttl"]
        assert kw["reachable"] is not None and kw["reachable"] < majority(kw["pool_size"])
        assert "fence lease not renewed" in why
    elif kw["writable"] is True and not kw["maintenance"]:
        minority = kw["reachable"] is not None and kw["reachable"] < majority(kw["pool_size"])
        assert not (kw["lease_age"] > kw["fence_ttl"] and minority)  # fences when it must


@given(inputs)
def test_mpp_asking_fences_a_writable_server_outside_maintenance_at_once(
    kw: dict[str, Any],
) -> None:
    kw.update(asked="mpp asked: x", writable=True, maintenance=False)
    assert fence_reason(**kw) == "mpp asked: x"


@given(st.integers(min_value=1, max_value=99))
def test_a_majority_is_more_than_half(n: int) -> None:
    assert majority(n) > n / 2 >= majority(n) - 1


def test_a_lone_node_reaches_its_own_majority() -> None:
    # no peers configured: the pool is this node, which always reaches itself
    assert count_reachable([], 0.1) == 1
    why = fence_reason(
        writable=True,
        maintenance=False,
        asked="",
        lease_age=99,
        fence_ttl=6,
        reachable=1,
        pool_size=1,
    )
    assert why == ""


def test_peers_in_reach_are_those_that_accept_a_connect() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    alive = f"127.0.0.1:{listener.getsockname()[1]}"
    closed = socket.create_server(("127.0.0.1", 0))
    dead = f"127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # refused from now on
    try:
        assert reachable(alive, 0.5) and not reachable(dead, 0.5)
        assert reachable(alive, 0.5, source="127.0.0.1")
        started = time.monotonic()
        assert count_reachable([alive, dead, dead], 0.5) == 2
        assert time.monotonic() - started < 1.0  # at once, not one after the other
    finally:
        listener.close()


def _state(**node: object) -> PoolState:
    return PoolState("main", (NodeState("db1", **node), NodeState("db2")))  # type: ignore[arg-type]


def test_what_the_agent_reads_back_from_the_pool_state() -> None:
    now = 1000.0
    assert seen_in(None, "db1", now) == Seen()
    assert seen_in(_state(), "db1", now) == Seen()
    held = seen_in(_state(maintenance_since=900.0, maintenance_until=1100.0), "db1", now)
    assert held.in_maintenance(now) and held.in_maintenance(1099.0)
    assert not held.in_maintenance(1100.0)  # its end holds even without a new read
    assert seen_in(_state(maintenance_since=900.0), "db1", now).in_maintenance(1e12)
    over = seen_in(_state(maintenance_since=900.0, maintenance_until=950.0), "db1", now)
    assert over == Seen() and not over.in_maintenance(now)
    asked = seen_in(PoolState("main", (NodeState("db1"),), fencing=("db1",)), "db1", now)
    assert asked.asked.startswith("mpp asked: db1") and not asked.in_maintenance(now)
    assert seen_in(PoolState("main", (NodeState("db2"),), fencing=("db2",)), "db1", now) == Seen()


def test_process_states_from_what_the_supervisor_knows() -> None:
    assert process_of(True, False, False, False) is Process.RUNNING
    assert process_of(False, False, False, False) is Process.RESTARTING
    assert process_of(False, True, False, True) is Process.GAVE_UP
    assert process_of(False, False, True, False) is Process.STOPPED  # maintenance holds it
    assert process_of(False, False, False, True) is Process.STOPPED


def _report(seq: int, **kw: object) -> AgentReport:
    fields: dict[str, object] = {"process": Process.RUNNING, **kw}
    return AgentReport("db1", "main", seq, 6.0, **fields)  # type: ignore[arg-type]


def test_only_news_is_sent_before_the_renewal_is_due() -> None:
    assert significant(_report(1, ping_ms=1.0)) == significant(_report(2, ping_ms=9.0))
    assert significant(_report(1)) != significant(_report(1, fenced="x"))
    assert significant(_report(1)) != significant(_report(1, process=Process.GAVE_UP))


class _Broken(SqliteStore):
    def put_report(self, report: AgentReport) -> None:
        raise StoreError("disk full")


def test_a_failed_put_renews_nothing_and_a_good_one_renews_from_its_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lease = Lease(now=0.0)
    stop = threading.Event()
    bad = Renewer(_Broken(tmp_path / "s.db"), "main", "db1", 6.0, _report, lease, stop)
    for _ in range(3):
        bad.put(_report(bad.seq + 1))
    assert lease.renewals == 0 and lease.age(100.0) == 100.0
    assert caplog.text.count("disk full") == 1  # once per error, not per renewal
    good_store = SqliteStore(tmp_path / "s.db")
    good = Renewer(good_store, "main", "db1", 6.0, _report, lease, stop)
    before = time.monotonic()
    seq = good.seq + 1
    started = good.put(_report(seq))
    assert lease.renewals == 1 and before <= started <= time.monotonic()
    assert good_store.reports("main")["db1"].seq == seq
    good.seq = 0
    good.start_seq_after()  # a restarted agent continues above what the store holds
    assert good.seq == seq


def _write(tmp_path: Path, extra: str, probe: bool = True) -> Path:
    path = tmp_path / "agent.toml"
    section = '[probe]\npassword_file = "pw"\n' if probe else ""
    path.write_text(f'node = "db1"\n{extra}[mysqld]\ncommand = ["x"]\n{section}')
    return path


@pytest.mark.parametrize(
    ("extra", "probe", "says"),
    [
        ('store = "mysql://x"\n', True, "store: "),
        ('store = "sqlite://s.db"\n', False, "store: set, but [probe] is not"),
        ('store = "sqlite://s.db"\nfence_ttl = "0s"\n', True, "fence_ttl"),
        ('store = "sqlite://s.db"\npeers = ["nohost"]\n', True, "peers"),
        ('store = "sqlite://s.db"\nsource_address = "here"\n', True, "source_address"),
        (
            'store = "sqlite://s.db"\n[etcd]\nuser = "u"\npassword_env = "X"\n',
            True,
            "etcd: set, but store",
        ),
    ],
)
def test_bad_store_keys_are_one_line_naming_the_key(
    tmp_path: Path, extra: str, probe: bool, says: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_agent(_write(tmp_path, extra, probe))
    text = str(err.value)
    assert "\n" not in text and says in text and str(tmp_path) in text, text


def test_store_keys_and_their_defaults(tmp_path: Path) -> None:
    cfg = load_agent(_write(tmp_path, ""))
    assert cfg.store is None and cfg.fence_ttl == 6.0 and cfg.peers == ()
    assert cfg.source_address is None
    cfg = load_agent(
        _write(
            tmp_path,
            'store = "sqlite://s.db"\nfence_ttl = "3s"\npeers = ["10.0.0.2:3306", "db3:3306"]\n'
            'source_address = "127.0.0.5"\n',
        )
    )
    assert cfg.fence_ttl == 3.0 and cfg.peers == ("10.0.0.2:3306", "db3:3306")
    assert cfg.state_path == tmp_path.resolve() / "s.db" and cfg.etcd_location is None
    store = open_store(cfg)  # the same opening code as mpp run's
    try:
        assert isinstance(store, SqliteStore)
    finally:
        store.close()
    etcd = load_agent(
        _write(
            tmp_path,
            'store = "etcd://10.0.0.1:2379,10.0.0.2:2379/x"\n'
            '[etcd]\nuser = "agent"\npassword_env = "MPP_TEST_NO_SUCH_VAR"\nca_file = "ca.pem"\n',
        )
    )
    where = etcd.etcd_location
    assert where is not None and where.prefix == "/x"
    assert where.endpoints == ("https://10.0.0.1:2379", "https://10.0.0.2:2379")
    with pytest.raises(ConfigError, match=r"etcd\.password_env: environment variable"):
        etcd.etcd_password()


def test_the_agents_etcd_connections_come_from_its_source_address(tmp_path: Path) -> None:
    """`source_address` binds the store's connections too (a fault test partitions the
    agent from etcd by it): a listener standing in for etcd sees where they come from."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    path = _write(tmp_path, f'store = "etcd://127.0.0.1:{listener.getsockname()[1]}"\n')
    cfg = load_agent(path)
    store = open_store(cfg, "127.0.0.5")
    peers: list[str] = []

    def accept() -> None:
        conn, (host, _) = listener.accept()
        peers.append(host)
        conn.close()  # no answer: the put fails

    t = threading.Thread(target=accept)
    t.start()
    try:
        with pytest.raises(StoreError):
            store.put_report(_report(1))
    finally:
        t.join(5)
        store.close()
        listener.close()
    assert peers == ["127.0.0.5"]


def test_no_agent_code_can_turn_writes_on() -> None:
    """The agent only ever fences: no module of it names the flavor's unfence SQL or sets
    read_only off (a regression here would let an isolated node take writes again)."""
    forbidden = re.compile(r"unfence|read_only\s*=\s*(OFF|0|FALSE)\b", re.IGNORECASE)
    root = Path(mpp.agent.__file__).parent
    found = {
        f"{p.name}:{n}": line
        for p in sorted(root.glob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if forbidden.search(line) and not line.lstrip().startswith("#")
    }
    assert found == {}, found


def test_rule_5_kills_a_silent_server_only_when_a_fence_is_due() -> None:
    from mpp.agent.fencing import kill_reason

    due = dict(maintenance=False, lease_age=1.0, fence_ttl=6.0, reachable=None, pool_size=3)
    asked = "mpp asked: db1"
    assert kill_reason(silent_for=2.5, hung_after=2.0, asked=asked, **due).startswith(  # type: ignore[arg-type]
        "mysqld did not answer its agent for 2.5 s"
    )
    assert kill_reason(silent_for=1.0, hung_after=2.0, asked=asked, **due) == ""  # type: ignore[arg-type]
    assert kill_reason(silent_for=None, hung_after=2.0, asked=asked, **due) == ""  # type: ignore[arg-type]
    assert kill_reason(silent_for=9.0, hung_after=2.0, asked="", **due) == ""  # type: ignore[arg-type]
    cut_off = {**due, "lease_age": 7.0, "reachable": 1}
    assert kill_reason(silent_for=9.0, hung_after=2.0, asked="", **cut_off) != ""  # type: ignore[arg-type]
    in_reach = {**cut_off, "reachable": 2}
    assert kill_reason(silent_for=9.0, hung_after=2.0, asked="", **in_reach) == ""  # type: ignore[arg-type]
    held = {**due, "maintenance": True}
    assert kill_reason(silent_for=9.0, hung_after=2.0, asked=asked, **held) == ""  # type: ignore[arg-type]
