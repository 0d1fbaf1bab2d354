"""API fuzzing where it matters most: nothing changes without the token, and no error
answer hands the caller's input back.

An app with a token configured and a store holding a state and a history; every
state-changing operation of its own OpenAPI document is called without the token (none,
a wrong one, another scheme) with schemathesis' generated requests and with requests that
would succeed with the token. After each, the store's bytes, its contents and the Hub's
states must be what they were, and the answer a 4xx. The same requests with the token do
change the state: the comparison is one that can fail.
"""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_api import TOKEN, Api

NO_TOKEN: list[dict[str, str]] = [
    {},
    {"Authorization": f"Bearer {TOKEN}-wrong"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
    {"Authorization": "Bearer "},
]


def snapshot(api: Api) -> tuple[dict[str, bytes], list[str], Any]:
    """The store as bytes (every state.db* file), as rows (so a write that the WAL holds
    counts too), and the Hub's in-memory states that every check answers from."""
    db = api.config.state_path
    files = {p.name: p.read_bytes() for p in sorted(db.parent.glob(db.name + "*"))}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = list(conn.iterdump())
    finally:
        conn.close()
    return files, rows, dict(api.hub.states)


def settled(api: Api) -> tuple[dict[str, bytes], list[str], Any]:
    """A snapshot once reading no longer changes the files (the first reader after a write
    may fold the WAL into the database)."""
    before = snapshot(api)
    while (now := snapshot(api)) != before:
        before = now
    return now


def with_history(tmp_path: Path) -> Api:
    """The seeded app, plus two operator commands so that the history is not empty."""
    api = Api(tmp_path)
    assert api.post("/v1/pools/main/nodes/db3/fail").status_code == 200
    assert api.post("/v1/pools/main/nodes/db3/recover").status_code == 200
    assert len(api.get("/v1/history").json()) >= 2
    return api


# schemathesis parametrizes at collection time, so the app exists by then
FUZZ_DIR = Path(tempfile.mkdtemp(prefix="mpp-api-fuzz-"))
atexit.register(shutil.rmtree, FUZZ_DIR, ignore_errors=True)
FUZZ = with_history(FUZZ_DIR)
BASELINE = settled(FUZZ)
MUTATIONS = schemathesis.openapi.from_asgi("/openapi.json", FUZZ.app).include(method="POST")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@MUTATIONS.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_state_change_without_the_token(case: Any) -> None:
    for headers in NO_TOKEN:
        response = case.call(headers=headers)
        # 401/403 on every documented POST; 405 when schemathesis tries another method
        assert 400 <= response.status_code < 500, (headers, response.status_code)
        if case.method == "POST":
            assert response.status_code in (401, 403), (headers, response.text)
        assert TOKEN not in response.text
    assert settled(FUZZ) == BASELINE, f"{case.method} {case.formatted_path} changed the store"


def operations(api: Api) -> list[str]:
    """Every state-changing operation the OpenAPI document lists."""
    paths = api.get("/openapi.json").json()["paths"]
    found = [p for p, ops in paths.items() if set(ops) - {"get", "head", "options"}]
    assert len(found) >= 7, found  # recover, activate, fail, maintenance, switchover, ...
    return found


def filled(path: str, node: str) -> str:
    return path.replace("{pool}", "main").replace("{node}", node)


BODIES = [None, {}, {"force": True}, {"to": "db2"}, {"to": "db2", "force": True}]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    which=st.integers(0, 100),
    node=st.sampled_from(["db1", "db2", "db3"]),
    body=st.sampled_from(BODIES),
    headers=st.sampled_from(NO_TOKEN),
)
def test_valid_commands_without_the_token_change_nothing(
    which: int, node: str, body: Any, headers: dict[str, str]
) -> None:
    """Requests a token would make succeed; without it, not one byte moves."""
    paths = operations(FUZZ)
    path = filled(paths[which % len(paths)], node)
    r = FUZZ.request("POST", path, headers=headers, json=body)
    assert r.status_code in (401, 403), (path, body, r.status_code, r.text)
    assert r.json()["error"] in (
        "missing Authorization: Bearer <token>",
        "wrong token",
    ), r.text
    assert settled(FUZZ) == BASELINE, f"POST {path} without the token changed the store"


def test_with_the_token_the_same_requests_do_change_the_store(tmp_path: Path) -> None:
    api = with_history(tmp_path)
    before = settled(api)
    r = api.post("/v1/pools/main/nodes/db1/fail")
    assert r.status_code == 200, r.text
    after = settled(api)
    assert after[0] != before[0] and after[1] != before[1] and after[2] != before[2]


def test_invalid_json_is_400_and_without_the_token_401(tmp_path: Path) -> None:
    api = Api(tmp_path)
    json = {"content-type": "application/json"}
    auth = {**json, "Authorization": f"Bearer {TOKEN}"}
    for content in (b"{not json", b"\xff\xfe", b'{"force": tru'):
        r = api.request("POST", "/v1/pools/main/nodes/db1/fail", headers=json, content=content)
        assert r.status_code == 401, r.text
        r = api.request("POST", "/v1/pools/main/nodes/db1/fail", headers=auth, content=content)
        assert r.status_code == 400, r.text
        assert r.json()["error"] in (
            "the body is not valid JSON",
            "There was an error parsing the body",
        )


# -- what a 4xx answer may say ------------------------------------------------------------

MARK = "Echo-Marker-7f3a"
marked = st.text(st.characters(codec="utf-8"), max_size=12).map(lambda s: MARK + s)


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    value=marked,
    where=st.sampled_from(
        [
            ("GET", "/v1/check/main/db3/ro", "max_lag"),
            ("GET", "/v1/check/main/ro", "max_lag"),
            ("GET", "/v1/history", "limit"),
            ("POST", "/v1/pools/main/switchover", "timeout"),
            ("POST", "/v1/pools/main/nodes/db1/fail", "force"),
            ("POST", "/v1/pools/main/takeover", "force"),
            ("POST", "/v1/pools/main/nodes/db2/maintenance", "for"),
            ("POST", "/v1/pools/main/nodes/db2/maintenance", "on"),
            ("POST", "/v1/pools/main/switchover", "unknown_key"),
        ]
    ),
    token=st.booleans(),
)
def test_error_answers_do_not_echo_the_input(
    value: str, where: tuple[str, str, str], token: bool
) -> None:
    """A value sent by mistake may be a secret (a password pasted into max_lag): a 4xx
    names where the problem is, never what was sent. (A 404 names the unknown pool or node,
    as documented: names, not values, and never reached without the token.)"""
    method, path, key = where
    headers = {"Authorization": f"Bearer {TOKEN}"} if token else {}
    if method == "GET":
        r = FUZZ.request("GET", path, params={key: value}, headers=headers)
    else:
        body: dict[str, Any] = {key: value}
        if path.endswith("/takeover"):
            body["to"] = "db2"
        if path.endswith("/maintenance") and key == "for":
            body["on"] = True
        r = FUZZ.request("POST", path, json=body, headers=headers)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert MARK not in r.text and MARK not in str(r.headers), r.text
    assert settled(FUZZ) == BASELINE
