"""Every configuration error names the file, the key and the fix; never a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mpp.config import ConfigError, load, parse_duration
from tests.builders import config_doc, config_text, pool
from tests.daemons import mpp_command

GOOD = config_text(
    config_doc(
        pool(
            count=2,
            ports=[33061, 33062],
            fail_point=4,
            max_lag="10s",
            user="mpp",
            password_env="MPP_TEST_PASSWORD",
        ),
        mpp={"state": "sqlite://state/mpp.db", "interval": "500ms", "connect_timeout": "1s"},
    )
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mpp.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message, "the message names the file"
    return message


def test_good_config_loads_with_defaults_and_relative_state(tmp_path: Path) -> None:
    config = load(write(tmp_path, GOOD))
    assert config.mpp.interval == 0.5
    assert config.state_path == tmp_path.resolve() / "state" / "mpp.db"
    pool = config.get_pool("main")
    assert pool.logic == "failover" and pool.topology == "master-master"
    assert pool.hostile_takeover is False
    assert [n.name for n in pool.spec().nodes] == ["db1", "db2"]
    assert config.find_node("127.0.0.1:33062")[1].name == "db2"


def test_etcd_store_url(tmp_path: Path) -> None:
    text = GOOD.replace('"sqlite://state/mpp.db"', '"etcd://10.0.0.1:2379,etcd-b:2379/site"')
    config = load(write(tmp_path, text))
    assert config.etcd_location is not None
    assert config.etcd_location.endpoints == ("http://10.0.0.1:2379", "http://etcd-b:2379")
    assert config.etcd_location.prefix == "/site"
    assert config.state_location == "etcd://10.0.0.1:2379,etcd-b:2379/site"
    bare = load(write(tmp_path, GOOD.replace('"sqlite://state/mpp.db"', '"etcd://e:2379"')))
    assert bare.etcd_location is not None and bare.etcd_location.prefix == "/mpp"
    assert load(write(tmp_path, GOOD)).etcd_location is None


ETCD = GOOD.replace('"sqlite://state/mpp.db"', '"etcd://127.0.0.1:2379"')


@pytest.mark.parametrize(
    ("section", "key", "says"),
    [
        ('user = "mpp"', "etcd.password_file", "needs exactly one of password_env"),
        ('password_env = "X"', "etcd.user", "a password is set but no user"),
        ('cert_file = "c.pem"', "etcd.cert_file", "set both cert_file and key_file"),
        ('tls = false\nca_file = "ca.pem"', "etcd.tls", "tls = false with ca_file"),
        ('timeout = "0s"', "etcd.timeout", "greater than 0"),
        ('secret = "x"', "etcd.secret", "unknown key"),
    ],
)
def test_etcd_section_errors_name_the_key(
    tmp_path: Path, section: str, key: str, says: str
) -> None:
    message = error_of(tmp_path, ETCD + f"\n[etcd]\n{section}\n")
    line = next(line for line in message.splitlines() if key in line)
    assert says in line, message


def test_etcd_section_needs_an_etcd_store_and_reads_its_password(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD + '\n[etcd]\nuser = "mpp"\npassword_env = "P"\n')
    assert "[etcd] is set but [mpp] state is not an etcd store" in message
    config = load(write(tmp_path, ETCD + '\n[etcd]\nuser = "mpp"\npassword_file = "pw"\n'))
    with pytest.raises(ConfigError, match=r"\[etcd\] key password_file: cannot read"):
        config.etcd_password()
    (tmp_path / "pw").write_text("s3cret\n")
    secret = config.etcd_password()
    assert secret is not None and secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)
    location = config.etcd_location
    assert location is not None and location.endpoints == ("http://127.0.0.1:2379",)


def test_absolute_state_path(tmp_path: Path) -> None:
    text = GOOD.replace('"sqlite://state/mpp.db"', f'"sqlite://{tmp_path}/abs.db"')
    assert load(write(tmp_path, text)).state_path == tmp_path / "abs.db"


@pytest.mark.parametrize(
    ("old", "new", "key", "says"),
    [
        ('interval = "500ms"', 'interval = "soon"', "mpp.interval", "not a duration"),
        ('interval = "500ms"', 'interval = "0s"', "mpp.interval", "greater than 0"),
        ('state = "sqlite://state/mpp.db"', 'state = "redis://x"', "mpp.state", "sqlite://"),
        ('state = "sqlite://state/mpp.db"', 'state = "etcd://h1"', "mpp.state", "etcd://HOST:PORT"),
        (
            'interval = "500ms"',
            'interval = "5s"\nleader_ttl = "6s"',
            "mpp.leader_ttl",
            "shorter than two poll intervals (10s)",
        ),
        ('interval = "500ms"', 'leader_ttl = "1s"', "mpp.leader_ttl", "greater than or equal to 2"),
        (
            'interval = "500ms"',
            'interval = "500ms"\nsource_address = "mpp-host"',
            "mpp.source_address",
            "not an IP address",
        ),
        ("fail_point = 4", "fail_point = 0", "pool[0] (main).fail_point", "greater than or equal"),
        ("fail_point = 4", "fail_pont = 4", "pool[0] (main).fail_pont", "unknown key"),
        ('user = "mpp"', 'user = "mpp"\nlogic = "magic"', "pool[0] (main).logic", "'failover'"),
        (
            'user = "mpp"',
            'user = "mpp"\ntopology = "star"',
            "pool[0] (main).topology",
            "'master-master' or 'primary-replica'",
        ),
        ('address = "127.0.0.1:33062"', 'address = "db2"', "node[1] (db2).address", "HOST:PORT"),
        ('type = "secondary"', 'type = "backup"', "node[1] (db2).type", "'primary' or 'secondary'"),
        ('max_lag = "10s"', "max_lag = true", "pool[0] (main).max_lag", "duration"),
    ],
)
def test_field_errors_name_the_key(tmp_path: Path, old: str, new: str, key: str, says: str) -> None:
    assert old in GOOD
    message = error_of(tmp_path, GOOD.replace(old, new))
    line = next(line for line in message.splitlines() if key in line)
    assert says in line, message


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ('name = "db2"', 'name = "db1"', "node names must be unique; repeated: db1"),
        ('address = "127.0.0.1:33062"', 'address = "127.0.0.1:33061"', "addresses must be unique"),
        (
            'type = "secondary"',
            'type = "primary"',
            'exactly one node with type = "primary"; found 2',
        ),
        ('password_env = "MPP_TEST_PASSWORD"', "", "set exactly one of password_env"),
        (
            'password_env = "MPP_TEST_PASSWORD"',
            'password_env = "X"\npassword_file = "y"',
            "set exactly one of password_env",
        ),
    ],
)
def test_pool_level_errors(tmp_path: Path, old: str, new: str, says: str) -> None:
    message = error_of(tmp_path, GOOD.replace(old, new))
    assert "pool[0] (main)" in message and says in message, message


def test_two_pools_with_one_name(tmp_path: Path) -> None:
    pool = GOOD[GOOD.index("[[pool]]") :]
    message = error_of(tmp_path, GOOD + pool)
    assert "pool names must be unique; repeated: main" in message


def test_missing_required_keys(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[mpp]\ninterval = "1s"\n')
    assert "pool: required key is missing" in message
    message = error_of(tmp_path, '[[pool]]\nname = "x"\npassword_env = "P"\n')
    assert "pool[0] (x).node: required key is missing" in message


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file; pass --config"):
        load(tmp_path / "nope.toml")
    assert "not valid TOML" in error_of(tmp_path, "[[pool]\nname=")


def test_password_sources_are_checked_when_used(tmp_path: Path) -> None:
    config = load(write(tmp_path, GOOD))
    pool = config.get_pool("main")
    os.environ.pop("MPP_TEST_PASSWORD", None)
    with pytest.raises(ConfigError, match="MPP_TEST_PASSWORD is not set"):
        config.password(pool)
    os.environ["MPP_TEST_PASSWORD"] = "s3cret"
    try:
        secret = config.password(pool)
        assert secret.get_secret_value() == "s3cret"
        assert "s3cret" not in repr(secret) and "s3cret" not in str(secret)
    finally:
        del os.environ["MPP_TEST_PASSWORD"]
    text = GOOD.replace('password_env = "MPP_TEST_PASSWORD"', 'password_file = "pw.txt"')
    config = load(write(tmp_path, text))
    with pytest.raises(ConfigError, match=r"password_file: cannot read .*pw\.txt"):
        config.password(config.get_pool("main"))
    (tmp_path / "pw.txt").write_text("from-file\n")
    assert config.password(config.get_pool("main")).get_secret_value() == "from-file"


def test_durations() -> None:
    assert parse_duration("250ms") == 0.25
    assert parse_duration("2s") == 2.0
    assert parse_duration("1m") == 60.0
    assert parse_duration(3) == 3.0
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("2 fortnights")


def test_cli_prints_the_error_not_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("fail_point = 4", "fail_point = -1"))
    out = subprocess.run(
        mpp_command(path, "status"),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "fail_point" in out.stderr and str(path) in out.stderr.replace("\n", "")


SECOND_POOL = "\n" + config_text(
    {
        "pool": [
            pool(
                "other",
                node=[{"name": "db9", "address": "127.0.0.1:33069", "type": "primary"}],
                password_env="MPP_TEST_PASSWORD",
            )
        ]
    }
)


def test_router_defaults_to_the_only_pool_and_its_switchover_timeout(tmp_path: Path) -> None:
    text = GOOD.replace('max_lag = "10s"', 'max_lag = "10s"\nswitchover_timeout = "25s"')
    config = load(write(tmp_path, text + '\n[router]\nrw = "127.0.0.1:6446"\n'))
    assert config.router is not None
    assert (config.router.pool, config.router.switchover_wait) == ("main", 25.0)
    assert (config.router.rw, config.router.ro) == ("127.0.0.1:6446", None)
    assert config.router.max_connections == 1000 and config.router.connect_timeout == 1.0
    text = GOOD + '\n[router]\nro = "127.0.0.1:6447"\nswitchover_wait = "3s"\n'
    config = load(write(tmp_path, text))
    assert config.router is not None and config.router.switchover_wait == 3.0
    assert load(write(tmp_path, GOOD)).router is None


def test_router_errors_name_the_key(tmp_path: Path) -> None:
    several = GOOD + SECOND_POOL + '\n[router]\nrw = "127.0.0.1:6446"\n'
    message = error_of(tmp_path, several)
    assert "router.pool: required with several pools (main, other)" in message
    config = load(write(tmp_path, several + 'pool = "other"\n'))
    assert config.router is not None and config.router.pool == "other"
    message = error_of(tmp_path, GOOD + '\n[router]\nrw = "127.0.0.1:6446"\npool = "nope"\n')
    assert "router.pool: no pool named 'nope' (pools: main)" in message
    assert "set rw and/or ro" in error_of(tmp_path, GOOD + "\n[router]\nmax_connections = 5\n")
    message = error_of(tmp_path, GOOD + '\n[router]\nrw = "6446"\n')
    assert "router.rw: '6446' is not HOST:PORT" in message
    message = error_of(tmp_path, GOOD + '\n[router]\nrw = "h:1"\nro = "h:1"\n')
    assert "rw and ro must be different addresses" in message
    message = error_of(tmp_path, GOOD + '\n[router]\nrw = "h:1"\nmax_connections = 0\n')
    assert "router.max_connections" in message
    message = error_of(tmp_path, GOOD + '\n[router]\nrw = "h:1"\nswitchover_wait = "soon"\n')
    assert "router.switchover_wait: 'soon' is not a duration" in message
    message = error_of(tmp_path, GOOD + '\n[router]\nrw = "h:1"\nconnect_timout = "1s"\n')
    assert "router.connect_timout: unknown key" in message


def test_source_address_reaches_every_session_mpp_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probes and the executor share open_connection's Target: both bind to it."""
    from mpp.probe.connection import pool_targets

    text = GOOD.replace('interval = "500ms"', 'interval = "500ms"\nsource_address = "127.0.0.5"')
    config = load(write(tmp_path, text))
    assert config.mpp.source_address == "127.0.0.5"
    monkeypatch.setenv("MPP_TEST_PASSWORD", "pw")
    targets = pool_targets(config, config.pool[0])
    assert {t.source_address for t in targets.values()} == {"127.0.0.5"}


def test_replication_address_is_what_replicas_are_pointed_at_and_report(tmp_path: Path) -> None:
    """mpp reaches db2 at `address`, its replicas at `replication_address`: CHANGE MASTER
    must name the second, and a replica reporting it must map back to db2 (else every
    replica of db2 would look like it replicates from a stranger)."""
    text = GOOD.replace(
        'address = "127.0.0.1:33062"',
        'address = "127.0.0.1:33062"\nreplication_address = "10.1.0.2:3306"',
    )
    pool = load(write(tmp_path, text)).get_pool("main")
    db2 = pool.node[1]
    assert (db2.source, db2.source_host_port) == ("10.1.0.2:3306", ("10.1.0.2", 3306))
    assert pool.node[0].source == pool.node[0].address  # none set: the same address
    spec = pool.spec()
    assert spec.name_at("10.1.0.2:3306") == "db2"
    assert spec.name_at("127.0.0.1:33061") == "db1"
    message = error_of(tmp_path, text.replace('"10.1.0.2:3306"', '"10.1.0.2"'))
    assert "replication_address" in message and "is not HOST:PORT" in message
    message = error_of(tmp_path, text.replace('"10.1.0.2:3306"', '"127.0.0.1:33061"'))
    assert "must be unique" in message
