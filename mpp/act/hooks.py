"""Operator hooks: shell commands run around topology changes, each under a timeout.

A pre_* hook runs before the change is committed and can veto it (exit code != 0 with
abort_on_failure); post_* and on_state_change run afterwards in the background and never
hold up the poll loop. Hooks get facts in MPP_* environment variables, never secrets.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading

log = logging.getLogger("mpp.hooks")


def run_hook(name: str, command: str, env: dict[str, str], timeout: float) -> tuple[bool, str]:
    """Run one hook and wait; (succeeded, what happened) for the history."""
    full_env = {**os.environ, **env, "MPP_HOOK": name}
    try:
        done = subprocess.run(
            command,
            shell=True,
            env=full_env,
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
