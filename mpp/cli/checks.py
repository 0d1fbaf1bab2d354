"""`mpp check` (keepalived MISC_CHECK, scripts) and `mpp nagios` (monitoring plugins).

Both answer from mpp's own state, never from MySQL: `check` asks the running daemon's API
(its in-memory Hub, the same answer HAProxy gets) and falls back to the store when the API
is not configured or not answering; `nagios` reads the store like `mpp status`.
Registered on the main group in mpp.cli.
"""

from __future__ import annotations

import http.client
import sys
import time
import urllib.parse
from typing import Any, NoReturn, Protocol

import click

from mpp.config import Config, ConfigError, parse_duration
from mpp.publish.nagios import UNKNOWN, Limits, evaluate
from mpp.publish.roles import Role, check_node
from mpp.publish.view import pool_document
from mpp.store import Store, StoreError

API_TIMEOUT = 1.0


class _Ctx(Protocol):
    @property
    def config(self) -> Config: ...

    def store(self) -> Store: ...


def stale_after(config: Config) -> float:
    """How old a stored state may be before we say mpp is not polling."""
    return max(30.0, 10 * config.mpp.interval)


def _exit(line: str, code: int, err: bool = False) -> NoReturn:
    click.echo(line, err=err)
    sys.exit(code)


def _via_api(config: Config, pool: str, node: str, role: Role, max_lag: str | None) -> str | None:
    """The daemon's answer ('UP ...'/'DOWN ...'), or None when it cannot be asked."""
    if config.api is None:
        return None
    host, _, port = config.api.listen.rpartition(":")
    host = host.strip("[]")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    path = f"/v1/check/{urllib.parse.quote(pool)}/{urllib.parse.quote(node)}/{role.value}"
    if max_lag:
        path += "?" + urllib.parse.urlencode({"max_lag": max_lag})
    headers = {}
    if not config.api.open_reads:
        from mpp.publish.api.security import load_token  # only then: it imports the web stack

        try:
            token = load_token(config)
        except ConfigError:
            token = None
        if token is not None:
            headers["Authorization"] = f"Bearer {token.get_secret_value()}"
    conn = http.client.HTTPConnection(host, int(port), timeout=API_TIMEOUT)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if response.status in (200, 503) and body.startswith(("UP", "DOWN")):
        return body
    return None


def _via_store(config: Config, c: _Ctx, pool: str, node: str, role: Role, lag: float | None) -> str:
    pool_config = config.get_pool(pool)
    store = c.store()
    try:
        snapshot = store.load(pool)
        # this instance's last checkpoint verdict (mpp.run.reach): cut off, no writes
        mine = store.reach().get(config.mpp.name) if config.checkpoint else None
    finally:
        store.close()
    state = snapshot.state if snapshot else None
    barred = ""
    if mine is not None and mine.reach.cut_off:
        barred = f"cut off ({mine.reach.cut.value}): {mine.reach.reason}"
    up, reason = check_node(pool_config.spec(), state, node, role, lag, barred)
    if state is not None and state.updated_at is not None:
        age = time.time() - state.updated_at
        if age > stale_after(config):
            reason += f" (state is {age:.0f}s old: is `mpp run` running?)"
    return f"{'UP' if up else 'DOWN'} {reason}"


@click.command()
@click.argument("node")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    default=Role.RW.value,
    show_default=True,
    help="rw: the ACTIVE node; ro: a STANDBY fit for reads (else the ACTIVE); ok: healthy.",
)
@click.option("--max-lag", default=None, help='Lag limit for ro instead of the pool\'s ("5s").')
@click.option(
    "--source",
    type=click.Choice(["auto", "api", "store"]),
    default="auto",
    show_default=True,
    help="auto: the daemon's API when [api] is set and answering, else the store.",
)
@click.pass_obj
def check(c: _Ctx, node: str, role: str, max_lag: str | None, source: str) -> None:
    """Print UP or DOWN with the reason; exit 0 if UP, 1 if DOWN (keepalived MISC_CHECK)."""
    try:
        config = c.config
        pool, n = config.find_node(node)
        lag = parse_duration(max_lag) if max_lag is not None else None
    except ConfigError as err:
        _exit(f"mpp: {err}", 2, err=True)
    except ValueError as err:
        _exit(f"mpp: --max-lag: {err}", 2, err=True)
    answer = None
    if source != "store":
        answer = _via_api(config, pool.name, n.name, Role(role), max_lag)
        if answer is None and source == "api":
            _exit("DOWN mpp API not answering", 1)
    if answer is None:
        try:
            answer = _via_store(config, c, pool.name, n.name, Role(role), lag)
        except (StoreError, ConfigError) as err:
            _exit(f"DOWN cannot read mpp state: {err}", 1)
    _exit(answer, 0 if answer.startswith("UP") else 1)


@click.command()
@click.argument("pool", required=False)
@click.pass_obj
def nagios(c: _Ctx, pool: str | None) -> None:
    """Nagios/monitoring-plugins check: one line with perfdata; exit 0/1/2/3."""
    try:
        config = c.config
        chosen = [config.get_pool(pool)] if pool else list(config.pool)
        store = c.store()
        try:
            docs: list[dict[str, Any]] = []
            for p in chosen:
                snapshot = store.load(p.name)
                docs.append(pool_document(p, snapshot.state if snapshot else None))
        finally:
            store.close()
    except (ConfigError, StoreError) as err:
        _exit(f"MPP UNKNOWN - {str(err).splitlines()[0]}", UNKNOWN)
    limits = {p.name: Limits(p.fail_point, p.max_lag) for p in chosen}
    code, line = evaluate(docs, time.time(), stale_after(config), limits)
    _exit(line, code)
