"""Switchover, takeover and acknowledge through the REST API (in-process; no server needed:
the API only records the request, the daemon carries it out — tested in
test_topology_integration.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpp.store import SqliteStore
from tests.unit.test_api import TOKEN, Api

TOPOLOGY_KEYS = {"topology": "primary-replica", "repl_password_env": "UNUSED"}


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Api:
    import tests.unit.test_api as base

    original = base.make_config

    def primary_replica(tmp: Path, token: bool = True, **section: object):  # type: ignore[no-untyped-def]
        config = original(tmp, token, **section)
        pools = [p.model_copy(update=TOPOLOGY_KEYS) if p.name == "main" else p for p in config.pool]
        return config.model_copy(update={"pool": pools})

    monkeypatch.setattr(base, "make_config", primary_replica)
    return Api(tmp_path)


def test_switchover_is_recorded_for_the_daemon(api: Api) -> None:
    r = api.post("/v1/pools/main/switchover", json={"to": "db2", "timeout": "3s"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["request"]["kind"] == "switchover" and body["request"]["to"] == "db2"
    store = SqliteStore(api.config.state_path)
    try:
        snap = store.load("main")
        assert snap is not None and snap.state.request is not None
        assert snap.state.request.timeout == 3.0
    finally:
        store.close()
    again = api.post("/v1/pools/main/switchover", json={})
    assert again.status_code == 409 and "already has a switchover" in again.json()["error"]


def test_takeover_and_acknowledge(api: Api) -> None:
    r = api.post("/v1/pools/main/takeover", json={"to": "db3", "force": True})
    assert r.status_code == 202 and r.json()["request"] == {
        "id": r.json()["request"]["id"],
        "kind": "takeover",
        "to": "db3",
    }
    assert api.post("/v1/pools/main/acknowledge").status_code == 200


def test_topology_commands_need_the_token_and_valid_input(api: Api) -> None:
    assert api.post("/v1/pools/main/switchover", token=None).status_code == 401
    assert api.post("/v1/pools/main/switchover", token="wrong").status_code == 403
    assert api.post("/v1/pools/main/takeover", json={}).status_code == 422
    r = api.post("/v1/pools/main/switchover", json={"timeout": "soon"})
    assert r.status_code == 422 and "not a duration" in r.json()["error"]
    r = api.post("/v1/pools/main/takeover", json={"to": "db9"})
    assert r.status_code == 404 and "db9" in r.json()["error"]
    r = api.post("/v1/pools/other/switchover", json={})
    assert r.status_code == 409 and "primary-replica" in r.json()["error"]
    assert TOKEN not in r.text
