"""A hook's environment: the documented facts and a few basics, never mpp's secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpp.act.hooks import PASSED, run_hook


def test_a_hook_sees_the_facts_and_the_basics_but_no_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPP_PASSWORD", "S3cr3t-mon-hook")
    monkeypatch.setenv("MPP_REPL_PASSWORD", "S3cr3t-repl-hook")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "S3cr3t-aws-hook")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("LC_TIME", "C")
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("HOME", str(tmp_path))
    out = tmp_path / "env"
    ok, detail = run_hook("post_failover", f"env > {out}; echo done", {"MPP_POOL": "main"}, 5)
    assert ok and detail == "hook post_failover exited 0: done"
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert "S3cr3t" not in out.read_text()
    assert env["MPP_POOL"] == "main" and env["MPP_HOOK"] == "post_failover"
    assert env["LANG"] == "C.UTF-8" and env["LC_TIME"] == "C" and env["TZ"] == "UTC"
    assert env["PATH"] and env["HOME"]
    # the shell adds PWD, SHLVL and _ itself; all else is a fact or a basic
    extra = set(env) - {"PWD", "SHLVL", "_", "OLDPWD", "MPP_POOL", "MPP_HOOK"}
    assert all(k in PASSED or k.startswith("LC_") for k in extra), extra
