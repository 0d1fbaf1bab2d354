"""HEAD works on every GET route (issue 15, item 10): a load balancer or uptime probe that
checks with HEAD sees what GET says, status and headers, without a body. Every GET path of
the OpenAPI document is tried, so a route added later is covered too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_api import Api

PARAMS = {"{pool}": "main", "{node}": "db1", "{role}": "rw"}


def _get_paths(api: Api) -> list[str]:
    paths = api.get("/openapi.json").json()["paths"]
    out = []
    for path, ops in paths.items():
        if "get" in ops:
            for key, value in PARAMS.items():
                path = path.replace(key, value)
            out.append(path)
    return out


@pytest.mark.parametrize("token", [True, False])
def test_head_answers_as_get_does_without_a_body(tmp_path: Path, token: bool) -> None:
    api = Api(tmp_path, token=token)
    paths = _get_paths(api)
    assert "/v1/check/main/db1/rw" in paths and "/v1/stream" in paths
    for path in paths:
        head = api.request("HEAD", path)
        assert head.status_code != 405, path
        assert head.content == b"", path
        if path == "/v1/stream":  # never ends as a GET; HEAD gets its headers only
            assert head.status_code == 200
            assert head.headers["content-type"].startswith("text/event-stream")
            continue
        get = api.get(path)
        assert head.status_code == get.status_code, path
        assert head.headers.get("content-type") == get.headers.get("content-type"), path


def test_head_on_a_check_gives_the_checks_status(tmp_path: Path) -> None:
    api = Api(tmp_path)
    assert api.request("HEAD", "/v1/check/main/db1/rw").status_code == 200
    assert api.request("HEAD", "/v1/check/main/db2/rw").status_code == 503
    assert api.request("HEAD", "/v1/check/main/nope/rw").status_code == 404
