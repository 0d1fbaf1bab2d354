"""The REST API in-process: documents, checks, auth paths, history, health, metrics, fuzzing."""

from __future__ import annotations

import asyncio
import atexit
import logging
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from mpp.config import Config, ConfigError
from mpp.logic.failover import decide
from mpp.model import NodeState, PoolState, State
from mpp.publish.api import create_app
from mpp.publish.api.checks import FastChecks
from mpp.publish.api.security import load_token
from mpp.publish.hub import Hub
from mpp.publish.metrics import Metrics
from mpp.publish.roles import Role, check_node
from mpp.publish.view import document
from mpp.run.transact import command_in_own_store, transact
from mpp.store import SqliteStore
from tests import builders
from tests.builders import config_doc, observe, pool

TOKEN = "s3cret-token-" + "x" * 20

HEALTHY = PoolState(
    "main",
    (
        NodeState("db1", State.ACTIVE, lag=0, reachable=True, latency_ms=0.5),
        NodeState("db2", State.STANDBY, lag=0, reachable=True, latency_ms=0.7),
        NodeState("db3", State.STANDBY, lag=25, reachable=True, latency_ms=0.6),
    ),
    cycle=7,
    updated_at=1_800_000_000.0,
)


def make_config(tmp_path: Path, token: bool = True, **api: Any) -> Config:
    # never bound here: the app is called in-process (test_dashboard.py gives a real port)
    section: dict[str, Any] = {"listen": "127.0.0.1:1", **api}
    if token:
        (tmp_path / "token").write_text(TOKEN + "\n")
        (tmp_path / "token").chmod(0o600)
        section["token_file"] = "token"
    doc = config_doc(
        pool(),
        pool("other", node=[{"name": "x1", "address": "127.0.0.1:9", "type": "primary"}]),
        mpp={"state": "sqlite://state.db", "interval": "10ms", "connect_timeout": "10ms"},
        api=section,
    )
    return builders.config(doc, tmp_path / "mpp.toml")


class Api:
    """A synchronous client for the ASGI app, with its Hub, metrics and a seeded store."""

    def __init__(self, tmp_path: Path, token: bool = True, **api: Any) -> None:
        self.config = make_config(tmp_path, token, **api)
        store = SqliteStore(self.config.state_path)
        store.save(HEALTHY, (), None)
        store.close()
        self.hub = Hub(self.config, {"main": HEALTHY})
        self.metrics = Metrics(self.config, self.hub.states)
        self.hub.listeners.append(self.metrics.listener)
        commands = partial(command_in_own_store, self.config)
        self.app = create_app(self.config, self.hub, self.metrics, commands)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://mpp") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(go())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, token: str | None = TOKEN, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.request("POST", url, headers=headers, **kwargs)


@pytest.fixture
def api(tmp_path: Path) -> Api:
    return Api(tmp_path)


# -- reads ----------------------------------------------------------------------------------


def test_documents_are_the_status_json(api: Api) -> None:
    r = api.get("/v1/pools")
    assert r.status_code == 200
    assert r.json() == document(api.config, api.hub.states)
    assert api.get("/v1/pools/main").json() == r.json()["pools"][0]
    node = api.get("/v1/pools/main/nodes/db2").json()
    assert node == r.json()["pools"][0]["nodes"][1]
    assert node["state"] == "STANDBY" and node["lag"] == 0
    assert api.get("/v1/pools/other").json()["status"] == "UNKNOWN"


def test_unknown_pool_or_node_is_a_404_naming_it(api: Api) -> None:
    r = api.get("/v1/pools/nosuch")
    assert r.status_code == 404
    assert r.json() == {"error": "no pool named 'nosuch' (pools: main, other)"}
    r = api.get("/v1/pools/main/nodes/db9")
    assert r.status_code == 404 and "no node named 'db9'" in r.json()["error"]
    assert api.get("/v1/check/main/db9/rw").status_code == 404
    assert api.get("/v1/check/nosuch/rw").json()["error"].startswith("no pool named 'nosuch'")
    assert api.get("/v1/history?pool=nosuch").status_code == 404
    assert api.get("/v1/history?node=db9").status_code == 404
    assert api.get("/v2/anything").json() == {"error": "Not Found"}


def test_checks_answer_up_or_down_in_plain_text(api: Api) -> None:
    r = api.get("/v1/check/main/db1/rw")
    assert (r.status_code, r.text) == (200, "UP db1 is ACTIVE\n")
    assert r.headers["content-type"].startswith("text/plain")
    r = api.get("/v1/check/main/db2/rw")
    assert (r.status_code, r.text) == (503, "DOWN db2 is STANDBY; ACTIVE: db1\n")
    assert api.get("/v1/check/main/db3/ro").status_code == 503
    assert api.get("/v1/check/main/db3/ro?max_lag=30s").status_code == 200
    assert api.get("/v1/check/main/db3/ro", params={"max_lag": "500ms"}).status_code == 503
    assert api.get("/v1/check/main/rw").text == "UP pool main: ACTIVE db1\n"
    assert api.get("/v1/check/other/rw").text.startswith("DOWN no state yet")


def test_the_fast_path_and_the_routes_give_the_same_answers(api: Api) -> None:
    fast = FastChecks(api.app, {"main": frozenset({"db1", "db2", "db3"})}, lambda *a: (0, ""))
    # what the fast path leaves to the validated routes
    for path, query in [
        ("/v1/check/main/db1/rx", b""),
        ("/v1/check/main/db9/rw", b""),
        ("/v1/check/nosuch/rw", b""),
        ("/v1/check/main/db1/ro", b"max_lag=soon"),
        ("/v1/check/main/db1/ro", b"max_lag=1s&max_lag=2s"),
        ("/v1/check/main/db1/ro/extra", b""),
        ("/v1/pools", b""),
    ]:
        assert fast._answer(path, query) is None, (path, query)
    for node in ("db1", "db2", "db3"):
        for role in Role:
            for lag in (None, "1s", "30s"):
                params = {"max_lag": lag} if lag else {}
                r = api.get(f"/v1/check/main/{node}/{role.value}", params=params)
                up, reason = check_node(
                    api.config.pool[0].spec(), HEALTHY, node, role, float(lag[:-1]) if lag else None
                )
                assert r.text == f"{'UP' if up else 'DOWN'} {reason}\n"
                assert r.status_code == (200 if up else 503)


def test_bad_parameters_are_422_with_a_message(api: Api) -> None:
    r = api.get("/v1/check/main/db1/admin")
    assert r.status_code == 422
    assert r.json()["error"] == "invalid request: path.role: Input should be 'rw', 'ro' or 'ok'"
    r = api.get("/v1/check/main/db1/ro?max_lag=soon")
    assert r.status_code == 422
    assert "query.max_lag: not a duration" in r.json()["error"] and "soon" not in r.text
    for query in ("limit=0", "limit=100001", "limit=many"):
        r = api.get(f"/v1/history?{query}")
        assert r.status_code == 422 and r.json()["error"].startswith("invalid request: query.limit")


# -- mutations and auth -----------------------------------------------------------------------


def test_mutations_need_the_token(api: Api) -> None:
    r = api.post("/v1/pools/main/nodes/db1/fail", token=None)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json() == {"error": "missing Authorization: Bearer <token>"}
    r = api.post("/v1/pools/main/nodes/db1/fail", token="wrong")
    assert (r.status_code, r.json()) == (403, {"error": "wrong token"})
    r = api.request("POST", "/v1/pools/main/nodes/db1/fail", headers={"Authorization": TOKEN})
    assert r.status_code == 401, "a token without the Bearer scheme is no token"
    # auth comes before anything else is revealed
    assert api.post("/v1/pools/nosuch/nodes/db1/fail", token="wrong").status_code == 403
    assert api.get("/v1/check/main/db1/rw").status_code == 200, "nothing changed"


def test_without_token_file_mutations_are_disabled(tmp_path: Path) -> None:
    api = Api(tmp_path, token=False)
    r = api.post("/v1/pools/main/nodes/db1/recover")
    assert (r.status_code, r.json()) == (401, {"error": "mutations disabled: set [api] token_file"})


def test_an_unreadable_or_empty_token_file_stops_the_start(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    (tmp_path / "token").write_text("  \n")
    with pytest.raises(ConfigError, match=r"\[api\] token_file: .* is empty"):
        create_app(config, Hub(config))
    (tmp_path / "token").unlink()
    with pytest.raises(ConfigError, match=r"\[api\] token_file: cannot read"):
        create_app(config, Hub(config))


def test_fail_hands_over_and_the_checks_follow_at_once(api: Api) -> None:
    r = api.post("/v1/pools/main/nodes/db1/fail")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [n["state"] for n in body["pool"]["nodes"]] == ["FAILED_ONLINE", "ACTIVE", "STANDBY"]
    assert {(e["node"], e["old"], e["new"]) for e in body["events"]} >= {
        ("db1", "ACTIVE", "FAILED_ONLINE"),
        ("db2", "STANDBY", "ACTIVE"),
    }
    assert api.get("/v1/check/main/db2/rw").status_code == 200
    assert api.get("/v1/check/main/db1/rw").status_code == 503
    history = api.get("/v1/history", params={"pool": "main", "node": "db2"}).json()
    assert history[-1]["new"] == "ACTIVE" and history[-1]["reason"].startswith("FAILOVER")
    assert len(api.get("/v1/history?limit=1").json()) == 1
    # refused commands are 409 with the logic's message
    r = api.post("/v1/pools/main/nodes/db3/recover")
    assert r.status_code == 409
    assert r.json() == {
        "error": "db3 is STANDBY, not FAILED_ONLINE/FAILED_OFFLINE: nothing to recover"
    }
    r = api.post("/v1/pools/main/nodes/db1/recover")
    assert r.status_code == 200 and r.json()["events"][0]["new"] == "UNKNOWN"
    r = api.post("/v1/pools/main/nodes/db3/activate")
    assert r.status_code == 200 and api.get("/v1/check/main/db3/rw").status_code == 200


def test_fail_body(api: Api) -> None:
    r = api.post("/v1/pools/main/nodes/db1/fail", json={"force": "maybe"})
    assert r.status_code == 422 and "body.force" in r.json()["error"]
    assert api.post("/v1/pools/main/nodes/db1/fail", json={"forse": True}).status_code == 422
    assert api.post("/v1/pools/main/nodes/db9/fail", json={"force": True}).status_code == 404
    assert api.post("/v1/pools/main/nodes/db3/fail", json={"force": True}).status_code == 200


def test_closed_reads_need_the_token_too(tmp_path: Path) -> None:
    api = Api(tmp_path, open_reads=False)
    for url in ("/v1/pools", "/v1/check/main/db1/rw", "/v1/check/main/rw", "/metrics"):
        assert api.get(url).status_code == 401, url
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert api.get(url, headers=auth).status_code == 200, url
        assert api.get(url, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert api.get("/v1/health").status_code == 503, "health stays open (no cycle yet)"


def test_the_token_is_never_logged_or_echoed(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses = [
        api.post("/v1/pools/main/nodes/db1/fail", token=TOKEN + "-wrong"),
        api.post("/v1/pools/main/nodes/db1/fail", token=TOKEN[:-1]),
        api.post("/v1/pools/main/nodes/nosuch/fail"),
        api.post("/v1/pools/main/nodes/db3/recover"),
        api.post("/v1/pools/main/nodes/db1/fail", json={"force": TOKEN}),
        api.post("/v1/pools/main/nodes/db1/fail"),
    ]
    assert [r.status_code for r in responses] == [403, 403, 404, 409, 422, 200]
    assert any("api: fail main/db1" in r.getMessage() for r in caplog.records)
    for text in [caplog.text, *(r.text + str(r.headers) for r in responses)]:
        assert TOKEN not in text and TOKEN[:-1] not in text
    assert TOKEN not in repr(load_token(api.config)) + str(load_token(api.config))


def test_health(tmp_path: Path) -> None:
    api = Api(tmp_path)
    r = api.get("/v1/health")
    assert r.status_code == 503 and r.json()["pools"]["main"] == {
        "cycle": None,
        "seconds_since_cycle": None,
    }
    api.hub.publish(HEALTHY, ())
    api.hub.publish(PoolState("other", (NodeState("x1", State.ACTIVE),), cycle=1), ())
    r = api.get("/v1/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    time.sleep(1.2)  # stale after 3 intervals + timeouts + 1s (10ms settings here)
    assert api.get("/v1/health").json()["status"] == "stale"


# -- metrics -----------------------------------------------------------------------------------


def _value(text: str, series: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


NAMES = [
    "mpp_build_info",
    "mpp_node_state",
    "mpp_node_status_level",
    "mpp_node_req",
    "mpp_node_probe_latency_seconds",
    "mpp_node_replication_lag_seconds",
    "mpp_pool_has_active",
    "mpp_failovers_total",
    "mpp_events_total",
    "mpp_last_failover_duration_seconds",
    "mpp_poll_cycle_seconds",
]


def test_metrics_names_and_values_follow_a_failover(api: Api) -> None:
    r = api.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    for name in NAMES:
        assert f"# TYPE {name} " in r.text, name
    db1 = 'mpp_node_state{node="db1",pool="main",state="ACTIVE"}'
    assert _value(r.text, db1) == 1.0
    assert _value(r.text, 'mpp_node_probe_latency_seconds{node="db2",pool="main"}') == 0.0007
    assert _value(r.text, 'mpp_node_replication_lag_seconds{node="db3",pool="main"}') == 25
    assert _value(r.text, 'mpp_failovers_total{pool="main"}') == 0

    # a failover the daemon decides: db1 climbs the ladder, then db2 takes over
    spec = api.config.pool[0].spec()
    store = SqliteStore(api.config.state_path)
    for t in range(101, 105):
        obs = observe(spec, {"db1": "offline"}, t)
        decision = transact(store, spec, partial(decide, spec, observations=obs, now=float(t)))
        api.hub.publish(decision.state, decision.events)
    store.close()
    api.metrics.cycle_finished("main", 0.012)
    text = api.get("/metrics").text
    assert _value(text, db1) == 0.0
    assert _value(text, 'mpp_node_state{node="db2",pool="main",state="ACTIVE"}') == 1.0
    assert _value(text, 'mpp_node_state{node="db1",pool="main",state="FAILED_OFFLINE"}') == 1
    assert _value(text, 'mpp_node_status_level{node="db1",pool="main"}') == 4
    assert _value(text, 'mpp_failovers_total{pool="main"}') == 1
    # from db1's first bad poll (t=101) to the cycle that handed over (t=104)
    assert _value(text, 'mpp_last_failover_duration_seconds{pool="main"}') == 3.0
    assert _value(text, 'mpp_poll_cycle_seconds{pool="main"}') == 0.012
    assert _value(text, 'mpp_node_probe_latency_seconds{node="db1",pool="main"}') is None
    assert _value(text, 'mpp_events_total{kind="state",pool="main"}') == 2

    # an operator's failover through the API counts too, without a detection time
    api.post("/v1/pools/main/nodes/db2/fail")
    text = api.get("/metrics").text
    assert _value(text, 'mpp_failovers_total{pool="main"}') == 2
    assert _value(text, 'mpp_last_failover_duration_seconds{pool="main"}') == 3.0
    api.metrics.failover_finished("main", 1.5)
    assert (
        _value(api.get("/metrics").text, 'mpp_last_failover_duration_seconds{pool="main"}') == 1.5
    )


# -- fuzzing -----------------------------------------------------------------------------------


@schemathesis.check
def no_server_error_but_a_documented_down(ctx: Any, response: Any, case: Any) -> None:
    """5xx only where documented: a check's DOWN (503 'DOWN ...') and a stale /v1/health."""
    if response.status_code < 500:
        return
    path = case.operation.path
    down = response.status_code == 503 and (
        (path.startswith("/v1/check/") and response.text.startswith("DOWN "))
        or path == "/v1/health"
    )
    assert down, f"{response.status_code} from {case.method} {case.formatted_path}: {response.text}"


# schemathesis parametrizes at collection time, so the app (and its store) exist by then
FUZZ_DIR = Path(tempfile.mkdtemp(prefix="mpp-fuzz-"))
atexit.register(shutil.rmtree, FUZZ_DIR, ignore_errors=True)
FUZZ = Api(FUZZ_DIR)
# the live stream never ends by design (integration/test_dashboard.py covers it for real)
schema = schemathesis.openapi.from_asgi("/openapi.json", FUZZ.app).exclude(path="/v1/stream")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_fuzz_the_openapi_document(case: Any) -> None:
    from schemathesis.checks import not_a_server_error

    for headers in ({"Authorization": f"Bearer {TOKEN}"}, {}):
        case.call_and_validate(
            headers=headers,
            excluded_checks=[not_a_server_error],
            additional_checks=[no_server_error_but_a_documented_down],
        )


def test_cycle_seconds_are_read_at_scrape_time(tmp_path: Path) -> None:
    config = make_config(tmp_path, token=False)
    seconds = {"main": 0.0}
    metrics = Metrics(config, {"main": HEALTHY}, cycle_seconds=lambda: seconds)
    assert _value(metrics.render().decode(), 'mpp_poll_cycle_seconds{pool="main"}') is None
    seconds["main"] = 0.034
    assert _value(metrics.render().decode(), 'mpp_poll_cycle_seconds{pool="main"}') == 0.034
