"""`mpp sandbox ...`: local MariaDB nodes for the demo and the tests (see mpp.sandbox)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.table import Table

from mpp import sandbox as sb
from mpp.cli.common import console, fail

_dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("sandbox"),
    show_default=True,
    help="Where the sandbox lives (datadirs, logs, mpp.toml).",
)


@contextmanager
def _errors() -> Iterator[None]:
    """Sandbox failures are one readable line, never a traceback."""
    try:
        yield
    except sb.SandboxError as err:
        fail(str(err), 1, "mpp sandbox:")


@click.group()
def sandbox() -> None:
    """Local MariaDB nodes on 127.0.0.1 for the demo and the tests."""


@sandbox.command()
@_dir_option
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 9))
@click.option("--base-port", default=33061, show_default=True, type=click.IntRange(1024, 65000))
@click.option(
    "--topology",
    type=click.Choice(["master-master", "primary-replica"]),
    default="master-master",
    show_default=True,
)
@click.option(
    "--api",
    metavar="HOST:PORT",
    help="Also write an [api] section (REST API, checks, dashboard) into a new DIR/mpp.toml.",
)
def up(directory: Path, nodes: int, base_port: int, topology: sb.Topology, api: str | None) -> None:
    """Start (or resume) the sandbox and write DIR/mpp.toml for it. Idempotent."""
    with _errors():
        started = sb.up(directory, nodes, base_port, topology, progress=console.print, api=api)
    _table(started)
    console.print(f"config: {directory / 'mpp.toml'}  (mpp --config {directory / 'mpp.toml'} run)")


@sandbox.command()
@_dir_option
def down(directory: Path) -> None:
    """Stop the sandbox's mariadbd processes (only those it started); data stays."""
    with _errors():
        stopped = sb.down(directory)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@sandbox.command(name="status")
@_dir_option
@click.option("--json", "as_json", is_flag=True)
def status_cmd(directory: Path, as_json: bool) -> None:
    """Show the sandbox's nodes and whether each runs."""
    with _errors():
        found = sb.status(directory)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {"name": n.name, "port": n.port, "pid": n.pid, "running": n.running}
                    for n in found
                ],
                indent=2,
            )
        )
        return
    _table(found)


_SIGNALS = {
    "KILL": signal.SIGKILL,
    "TERM": signal.SIGTERM,
    "STOP": signal.SIGSTOP,
    "CONT": signal.SIGCONT,
}


@sandbox.command()
@_dir_option
@click.argument("node")
@click.option(
    "--signal", "sig", type=click.Choice(sorted(_SIGNALS)), default="KILL", show_default=True
)
def kill(directory: Path, node: str, sig: str) -> None:
    """Send a signal to one node's mariadbd (fault injection for demos)."""
    with _errors():
        sb.stop_node(directory, node, _SIGNALS[sig])
    console.print(f"{node}: sent SIG{sig}")


@sandbox.command()
@_dir_option
@click.argument("node")
def start(directory: Path, node: str) -> None:
    """Start one stopped node again with its data and replication settings."""
    with _errors():
        n = sb.start_node(directory, node)
    console.print(f"{n.name}: running on 127.0.0.1:{n.port} (pid {n.pid})")


def _table(found: list[sb.SandboxNode]) -> None:
    t = Table(box=None, header_style="bold")
    for col in ("Node", "Address", "PID", "Running", "Datadir"):
        t.add_column(col)
    for n in found:
        t.add_row(
            n.name,
            f"127.0.0.1:{n.port}",
            str(n.pid or "-"),
            "yes" if n.running else "no",
            str(n.datadir),
        )
    console.print(t)


@sandbox.command()
@_dir_option
@click.confirmation_option(prompt="Stop the sandbox and delete its directory?")
def destroy(directory: Path) -> None:
    """Stop the sandbox and delete its directory (datadirs, logs, mpp.toml)."""
    with _errors():
        stopped = sb.destroy(directory)
    console.print(f"stopped: {', '.join(stopped) or 'nothing'}; removed {directory}")
