"""The strict semi-sync and heartbeat keys: what they become in the spec, and their errors
(naming the file, the key and the fix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpp.config import load
from tests.unit.test_config import GOOD, error_of, write

PRIMARY_REPLICA = GOOD.replace(
    'user = "mpp"', 'user = "mpp"\ntopology = "primary-replica"'
).replace(
    'password_env = "MPP_TEST_PASSWORD"',
    'password_env = "MPP_TEST_PASSWORD"\nrepl_password_env = "MPP_TEST_PASSWORD"',
)


def with_keys(text: str) -> str:
    return PRIMARY_REPLICA.replace('user = "mpp"', f'user = "mpp"\n{text}')


@pytest.mark.parametrize(
    ("keys", "semi", "strict", "fallback", "heartbeat"),
    [
        ("", False, False, None, 0.0),
        ("semi_sync = true", True, False, None, 0.0),
        ('semi_sync = "strict"', True, True, None, 0.0),
        ('semi_sync = "strict"\nsemi_sync_fallback = "never"', True, True, None, 0.0),
        ('semi_sync = "strict"\nsemi_sync_fallback = "2s"', True, True, 2.0, 0.0),
        ('heartbeat = "500ms"', False, False, None, 0.5),
    ],
)
def test_keys_in_the_spec(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    keys: str,
    semi: bool,
    strict: bool,
    fallback: float | None,
    heartbeat: float,
) -> None:
    monkeypatch.setenv("MPP_TEST_PASSWORD", "x")
    policy = load(write(tmp_path, with_keys(keys))).get_pool("main").spec().replication
    assert (policy.semi_sync, policy.semi_sync_strict) == (semi, strict)
    assert policy.semi_sync_fallback == fallback
    assert policy.heartbeat == heartbeat


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ('semi_sync = "always"', "semi_sync"),
        ('semi_sync = true\nsemi_sync_fallback = "2s"', 'set semi_sync = "strict"'),
        ('semi_sync = "strict"\nsemi_sync_fallback = "soon"', '"never"'),
        ('heartbeat = "10ms"', 'heartbeat is at least "100ms"'),
        ('heartbeat = "1h1s"', "heartbeat"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, keys: str, says: str) -> None:
    message = error_of(tmp_path, with_keys(keys))
    assert "pool[0] (main)" in message and says in message, message


def test_heartbeat_needs_primary_replica(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace('user = "mpp"', 'user = "mpp"\nheartbeat = "1s"'))
    assert 'heartbeat needs topology = "primary-replica"' in message, message
