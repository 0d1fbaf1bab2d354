"""The API's maintenance command, and what its documents and metrics tell of maintenance and
of the node agents (in-process app, real SQLite store)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from mpp.model import AgentReport, Process, WriteProbe
from mpp.publish.metrics import Metrics
from mpp.store import SqliteStore
from tests.unit.test_api import HEALTHY, TOKEN, Api
from tests.unit.test_api_fuzz import settled

URL = "/v1/pools/main/nodes/db2/maintenance"
SECRET = "hunter2-Echo-Marker"


@pytest.fixture
def api(tmp_path: Path) -> Api:
    return Api(tmp_path)


def _report(node: str = "db1", **fields: object) -> AgentReport:
    base: dict[str, object] = {
        "node": node,
        "pool": "main",
        "seq": 9,
        "fence_ttl": 6.0,
        "process": Process.RESTARTING,
        "restarts_used": 1,
        "retry_limit": 2,
        "last_exit": "killed by signal 9",
        "write": WriteProbe.STALLED,
        "stalled_for": 12.0,
        "sent_at": time.time() - 0.5,
    }
    base.update(fields)
    return AgentReport(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"on": "maybe"}, "body.on"),
        ({}, "body.on"),
        ({"on": True, "for": SECRET}, "body.for: not a positive duration"),
        ({"on": True, "for": "0s"}, "body.for: not a positive duration"),
        ({"on": True, "for": "400d"}, "body.for: not a positive duration"),
        ({"on": False, "for": "1h"}, 'body.for: only with "on": true'),
        ({"on": True, "until": "1h"}, "body.until"),
        ({"on": True, "for": 7200}, "body.for"),
    ],
)
def test_bad_bodies_are_422_without_echo_and_change_nothing(
    api: Api, body: dict[str, object], says: str
) -> None:
    before = settled(api)
    r = api.post(URL, json=body)
    assert r.status_code == 422, r.text
    assert says in r.json()["error"], r.text
    assert SECRET not in r.text
    assert settled(api) == before


def test_auth_and_names_come_first(api: Api) -> None:
    before = settled(api)
    assert api.post(URL, token=None, json={"on": True}).status_code == 401
    assert api.post(URL, token="wrong", json={"on": True}).status_code == 403
    r = api.post("/v1/pools/main/nodes/db9/maintenance", json={"on": True})
    assert r.status_code == 404 and "no node named 'db9'" in r.json()["error"]
    assert api.post("/v1/pools/nope/nodes/db2/maintenance", json={"on": True}).status_code == 404
    r = api.request(
        "POST",
        URL,
        headers={"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
        content=b'{"on": tru',
    )
    assert r.status_code == 400
    assert settled(api) == before


def test_openapi_lists_the_maintenance_command_and_the_agents_read(api: Api) -> None:
    doc = api.get("/openapi.json").json()
    paths = doc["paths"]
    post = paths["/v1/pools/{pool}/nodes/{node}/maintenance"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    schema = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert set(schema["properties"]) == {"on", "for"} and schema["required"] == ["on"]
    assert {"200", "401", "403", "404", "409", "422"} <= set(post["responses"])
    assert "get" in paths["/v1/pools/{pool}/agents"]
    node = doc["components"]["schemas"]["NodeDoc"]["properties"]
    assert {"maintenance", "agent", "agent_report"} <= set(node)


def test_on_for_2h_then_off_round_trip(api: Api) -> None:
    began = time.time()
    r = api.post(URL, json={"on": True, "for": "2h"})
    assert r.status_code == 200, r.text
    window = r.json()["pool"]["nodes"][1]["maintenance"]
    assert window is not None and window["until"] is not None
    store = SqliteStore(api.config.state_path)
    try:
        snap = store.load("main")
    finally:
        store.close()
    assert snap is not None
    node = snap.state.node("db2")
    assert node.maintenance_since is not None and node.maintenance_since >= began - 1
    assert node.maintenance_until is not None
    assert abs(node.maintenance_until - node.maintenance_since - 7200) < 1
    assert api.get("/v1/pools/main/nodes/db2").json()["maintenance"] == window
    assert 'mpp_node_maintenance{node="db2",pool="main"} 1.0' in api.get("/metrics").text

    r = api.post(URL, json={"on": False})
    assert r.status_code == 200, r.text
    assert r.json()["pool"]["nodes"][1]["maintenance"] is None
    assert api.get("/v1/pools/main/nodes/db2").json()["maintenance"] is None
    assert 'mpp_node_maintenance{node="db2",pool="main"} 0.0' in api.get("/metrics").text


def test_documents_show_maintenance_and_the_agent(api: Api) -> None:
    now = time.time()
    db2 = replace(HEALTHY.nodes[1], maintenance_since=now - 10, maintenance_until=now + 3600)
    db3 = replace(HEALTHY.nodes[2], maintenance_since=now - 10, agent="write probe failing")
    db1 = replace(HEALTHY.nodes[0], agent="mysqld killed by signal 9, restart 1/2")
    api.hub.publish(replace(HEALTHY, nodes=(db1, db2, db3)), ())
    nodes = api.get("/v1/pools/main").json()["nodes"]
    assert nodes[0]["maintenance"] is None
    assert nodes[1]["maintenance"]["until"] is not None
    assert nodes[2]["maintenance"]["until"] is None and nodes[2]["agent"] == "write probe failing"
    assert nodes[0]["agent"] == "mysqld killed by signal 9, restart 1/2"
    assert all(n["agent_report"] is None for n in nodes), "the daemon has read no report yet"

    api.hub.set_reports("main", {"db1": _report()})
    node = api.get("/v1/pools/main/nodes/db1").json()
    report = node["agent_report"]
    assert report["process"] == "restarting" and report["write"] == "stalled"
    assert (report["restarts_used"], report["retry_limit"]) == (1, 2)
    assert report["summary"] == "mysqld killed by signal 9, restart 1/2; write probe stalled 12 s"
    assert 0.4 <= report["age_by_agent_clock"] < 30
    again = api.get("/v1/pools").json()["pools"][0]["nodes"][0]["agent_report"]
    assert again["age_by_agent_clock"] >= report.pop("age_by_agent_clock"), "it grows"
    assert {k: v for k, v in again.items() if k != "age_by_agent_clock"} == report


def test_the_agents_route_reads_the_store(api: Api) -> None:
    assert api.get("/v1/pools/main/agents").json() == {"db1": None, "db2": None, "db3": None}
    store = SqliteStore(api.config.state_path)
    try:
        store.put_report(_report("db3", process=Process.RUNNING, fenced="lost the majority"))
    finally:
        store.close()
    body = api.get("/v1/pools/main/agents").json()
    assert body["db1"] is None and body["db3"]["fenced"] == "lost the majority"
    assert body["db3"]["seq"] == 9 and body["db3"]["process"] == "running"
    assert api.get("/v1/pools/nope/agents").status_code == 404


def test_closed_reads_close_the_agents_route(tmp_path: Path) -> None:
    api = Api(tmp_path, open_reads=False)
    assert api.get("/v1/pools/main/agents").status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert api.get("/v1/pools/main/agents", headers=auth).status_code == 200


def test_metrics_maintenance_and_report_age(api: Api) -> None:
    now = time.time()
    metrics = Metrics(api.config, api.hub.states, reports=api.hub.reports)
    api.hub.listeners.append(metrics.listener)
    db2 = replace(HEALTHY.nodes[1], maintenance_since=now, maintenance_until=None)
    api.hub.publish(HEALTHY.with_node(db2), ())
    text = metrics.render().decode()
    assert 'mpp_node_maintenance{node="db2",pool="main"} 1.0' in text
    assert 'mpp_node_maintenance{node="db1",pool="main"} 0.0' in text
    assert "mpp_agent_report_age_seconds{" not in text, "no report, no series"
    api.hub.set_reports("main", {"db1": _report(sent_at=now - 3.0)})
    line = next(
        x for x in metrics.render().decode().splitlines() if x.startswith("mpp_agent_report_age")
    )
    assert line.startswith('mpp_agent_report_age_seconds{node="db1",pool="main"} ')
    assert 3.0 <= float(line.split()[-1]) < 30
    expired = replace(db2, maintenance_since=now - 20, maintenance_until=now - 10)
    api.hub.publish(HEALTHY.with_node(expired), ())
    assert 'mpp_node_maintenance{node="db2",pool="main"} 0.0' in metrics.render().decode()
