"""Operator hooks: shell commands run around topology changes, each under a timeout.

A pre_* hook runs before the change is committed and can veto it (exit code != 0 with
abort_on_failure); post_* and on_state_change run afterwards in the background and never
hold up the poll loop. Hooks get facts in MPP_* environment variables, never secrets:
their environment is built from nothing, not inherited, because mpp's own holds the
passwords its pools name with password_env / repl_password_env (and whatever else the
service manager exported), and a hook's output ends up in mpp's log.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading

log = logging.getLogger("mpp.hooks")

# what a shell command needs to find programs, files and the operator's locale and zone
PASSED = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ"})


def hook_environment(name: str, facts: dict[str, str]) -> dict[str, str]:
    """PATH, HOME, LANG, LC_*, TZ from mpp's environment, then the documented MPP_* facts."""
    kept = {k: v for k, v in os.environ.items() if k in PASSED or k.startswith("LC_")}
    kept.setdefault("PATH", os.defpath)
    return {**kept, **facts, "MPP_HOOK": name}


def run_hook(name: str, command: str, env: dict[str, str], timeout: float) -> tuple[bool, str]:
    """Run one hook and wait; (succeeded, what happened) for the history."""
    try:
        done = subprocess.run(
            command,
            shell=True,
            env=hook_environment(name, env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        log.warning("hook %s timed out after %gs", name, timeout)
        return False, f"hook {name} timed out after {timeout:g}s"
    tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]
    ok = done.returncode == 0
    log.info("hook %s exited %d %s", name, done.returncode, tail[0])
    return ok, f"hook {name} exited {done.returncode}" + (f": {tail[0]}" if tail[0] else "")


def run_hook_later(name: str, command: str, env: dict[str, str], timeout: float) -> None:
    """Fire and forget (post_* and on_state_change): the loop never waits for these."""
    threading.Thread(
        target=run_hook, args=(name, command, env, timeout), daemon=True, name=f"hook-{name}"
    ).start()
