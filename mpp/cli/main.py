"""The `mpp` click group: the options every command shares, and the list of commands.

Commands live one module per group (status, running, nodes, requests, checks, sandbox,
agent) so
that each file is about one kind of work; this one only ties them to the group.
"""

from __future__ import annotations

from pathlib import Path

import click

from mpp import __version__
from mpp.cli.agent import agent
from mpp.cli.checks import check, nagios
from mpp.cli.common import Ctx
from mpp.cli.nodes import activate, fail_node, maintenance, recover
from mpp.cli.requests import acknowledge, switchover, takeover
from mpp.cli.running import poll, run
from mpp.cli.sandbox import sandbox
from mpp.cli.status import history, is_active, status


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Config file (default ./mpp.toml or $MPP_CONFIG).",
)
@click.version_option(__version__, prog_name="mpp")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """mpp: keeps pools of MySQL/MariaDB servers available."""
    ctx.obj = Ctx(config_path)


for _command in (
    status,
    poll,
    run,
    recover,
    activate,
    fail_node,
    maintenance,
    is_active,
    history,
    sandbox,
    check,
    nagios,
    switchover,
    takeover,
    acknowledge,
    agent,
):
    main.add_command(_command)
