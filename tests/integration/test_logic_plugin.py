"""A third-party logic, installed with pip from contrib/logic-example and found through the
`mpp.logic` entry-point group, chosen by a pool (`logic = "pinned"`) over a real sandbox."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.daemons import mpp_command

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "contrib" / "logic-example"


def installed(target: Path) -> dict[str, str]:
    """pip installs the example (offline: no build isolation, no dependencies) into a
    directory of its own; the environment that puts it on the path. Built from a copy, so
    that setuptools' build/ and egg-info never land in the checkout."""
    source = target.parent / "logic-example"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--no-build-isolation", "--target", str(target), str(source),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    assert list(target.glob("mpp_logic_example-*.dist-info/entry_points.txt"))
    path = os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH", "")]))
    return {**os.environ, "PYTHONPATH": path}


def mpp(cluster: Cluster, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mpp_command(cluster.config_path, *args), capture_output=True, text=True, env=env,
        timeout=60,
    )  # fmt: skip


def states(cluster: Cluster, env: dict[str, str]) -> dict[str, str]:
    done = mpp(cluster, env, "status", "--json")
    assert done.returncode == 0, done.stderr
    (pool,) = json.loads(done.stdout)["pools"]
    return {n["name"]: n["state"] for n in pool["nodes"]}


def test_the_example_plugin_is_loaded_through_its_entry_point_and_decides_a_pool(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = make_cluster(topology="primary-replica", pool={"logic": "pinned"})
    bare = mpp(cluster, dict(os.environ), "poll")
    assert bare.returncode == 2  # not installed: a config error naming the known logics
    assert "no logic named 'pinned'" in bare.stderr and "'cluster'" in bare.stderr
    assert "Traceback" not in bare.stderr

    env = installed(tmp_path / "site")
    done = mpp(cluster, env, "poll")
    assert done.returncode == 0, done.stderr
    assert states(cluster, env) == {"db1": "ACTIVE", "db2": "STANDBY", "db3": "STANDBY"}

    cluster.kill("db1")
    assert mpp(cluster, env, "poll").returncode == 0
    # the plug-in's own rule: nothing is promoted in the primary's place
    assert states(cluster, env) == {"db1": "FAILED_OFFLINE", "db2": "STANDBY", "db3": "STANDBY"}
    refused = mpp(cluster, env, "switchover", "main")
    assert refused.returncode != 0
    assert "pinned logic" in refused.stderr + refused.stdout
