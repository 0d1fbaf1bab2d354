"""The node agent's restart rules (mpp.agent.restarts) as invariants over any sequence of
deaths, and its config's one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpp.agent.mysqld import describe_exit
from mpp.agent.restarts import Ledger, on_death
from mpp.config import ConfigError
from mpp.config.agent import load_agent

gaps = st.lists(st.floats(min_value=0.0, max_value=400.0), min_size=1, max_size=30)


def _replay(deaths: list[float], limit: int, interval: float) -> list[tuple[float, bool]]:
    ledger, out = Ledger(), []
    for at in deaths:
        verdict = on_death(ledger, at, limit, interval)
        ledger = verdict.ledger
        out.append((at, verdict.restart))
    return out


def _times(gap_list: list[float]) -> list[float]:
    t, out = 0.0, []
    for g in gap_list:
        t += g
        out.append(t)
    return out


@given(gaps, st.integers(min_value=0, max_value=5), st.floats(min_value=1.0, max_value=600.0))
def test_never_more_than_limit_restarts_within_an_interval(
    gap_list: list[float], limit: int, interval: float
) -> None:
    done = [at for at, restarted in _replay(_times(gap_list), limit, interval) if restarted]
    for at in done:  # "within the last interval": less than `interval` ago, as the rules say
        assert len([t for t in done if 0 <= at - t < interval]) <= limit


@given(gaps, st.integers(min_value=0, max_value=5), st.floats(min_value=1.0, max_value=600.0))
def test_giving_up_is_final(gap_list: list[float], limit: int, interval: float) -> None:
    outcomes = [restarted for _, restarted in _replay(_times(gap_list), limit, interval)]
    if False in outcomes:
        assert not any(outcomes[outcomes.index(False) :])


@given(gaps, st.integers(min_value=1, max_value=5), st.floats(min_value=1.0, max_value=600.0))
def test_deaths_further_apart_than_the_interval_are_always_restarted(
    gap_list: list[float], limit: int, interval: float
) -> None:
    spaced = _times([g + interval + 0.01 for g in gap_list])  # strictly further (float sums)
    assert all(restarted for _, restarted in _replay(spaced, limit, interval))


def test_the_third_death_within_five_minutes_is_left_for_the_operator() -> None:
    assert _replay([0.0, 10.0, 20.0], 2, 300.0) == [(0.0, True), (10.0, True), (20.0, False)]
    verdict = on_death(Ledger((0.0, 10.0)), 20.0, 2, 300.0)
    assert "restarts exhausted: 2 of 2 within 300 s" in verdict.why
    assert on_death(Ledger(gave_up=True), 9999.0, 2, 300.0).restart is False
    assert on_death(Ledger(), 0.0, 0, 300.0).restart is False  # limit 0: report only


def test_exits_are_described_by_signal_or_status() -> None:
    assert describe_exit(-9) == "killed by signal 9 (SIGKILL)"
    assert describe_exit(1) == "exited with status 1"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('node = "db1"\n[mysqld]\n', "set either command"),
        ('node = "db1"\n[mysqld]\ncommand = ["x"]\npid_file = "p"\nstart = ["y"]\n', "set either"),
        ('node = "db1"\n[mysqld]\npid_file = "p"\n', "pid_file needs start"),
        ('node = "db1"\n[mysqld]\ncommand = ["x"]\nstart = ["y"]\n', "start is for pid_file"),
        ('node = "db 1"\n[mysqld]\ncommand = ["x"]\n', "node:"),
        ('node = "db1"\n[mysqld]\ncommand = ["x"]\nretry_limit = -1\n', "mysqld.retry_limit"),
        ('node = "db1"\n[mysqld]\ncommand = ["x"]\nretry_interval = "soon"\n', "retry_interval"),
        ('node = "db1"\nbogus = 1\n[mysqld]\ncommand = ["x"]\n', "bogus: unknown key"),
    ],
)
def test_a_bad_agent_config_is_one_line_naming_file_and_key(
    tmp_path: Path, body: str, says: str
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_agent(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and "\n" not in text and says in text, text


def test_a_good_agent_config_resolves_its_paths(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        'node = "db1"\nreport_file = "agent.json"\n'
        '[mysqld]\npid_file = "/run/mysqld.pid"\nstart = ["systemctl", "start", "mariadb"]\n'
    )
    cfg = load_agent(path)
    assert cfg.mysqld.retry_limit == 2 and cfg.mysqld.retry_interval == 300.0
    assert cfg.resolve("agent.json") == tmp_path.resolve() / "agent.json"


@pytest.mark.parametrize(
    ("probe", "says"),
    [
        ("", "set exactly one of password_env"),
        ('password_env = "X"\npassword_file = "f"\n', "set exactly one of password_env"),
        ('password_file = "f"\naddress = "nohost"\n', "probe.address"),
        ('password_file = "f"\nschema_name = "a;b"\n', "probe.schema_name"),
        ('password_file = "f"\nwrite_timeout = "0s"\n', "probe.write_timeout"),
    ],
)
def test_a_bad_probe_section_is_one_line(tmp_path: Path, probe: str, says: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(f'node = "db1"\n[mysqld]\ncommand = ["x"]\n[probe]\n{probe}')
    with pytest.raises(ConfigError) as err:
        load_agent(path)
    assert "\n" not in str(err.value) and says in str(err.value), str(err.value)


def test_the_probe_password_is_read_with_a_named_error(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('node = "db1"\n[mysqld]\ncommand = ["x"]\n[probe]\npassword_file = "pw"\n')
    cfg = load_agent(path)
    with pytest.raises(ConfigError, match=r"probe\.password_file: cannot read"):
        cfg.password()
    (tmp_path / "pw").write_text("€-secret\n", encoding="utf-8")
    assert cfg.password().get_secret_value() == "€-secret"
