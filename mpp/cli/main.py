"""The `mpp` click group: the options every command shares, and the list of commands.

Commands live one module per group (status, running, nodes, requests, checks, sandbox,
agent) so
that each file is about one kind of work; this one only ties them to the group.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import ClassVar

import click

from mpp import __version__
from mpp.cli.checks import check, nagios
from mpp.cli.common import Ctx
from mpp.cli.nodes import activate, fail_node, maintenance, recover
from mpp.cli.requests import acknowledge, switchover, takeover
from mpp.cli.sandbox import sandbox
from mpp.cli.status import history, is_active, status


class _Group(click.Group):
    """The daemon's commands are imported only when one of them is asked for: they bring
    FastAPI, uvicorn and the node agent, about 0.3 s of imports that `mpp status` and the
    checks (called by scripts and load balancers, often) would otherwise pay each time."""

    lazy: ClassVar[dict[str, str]] = {
        "run": "mpp.cli.running:run",
        "poll": "mpp.cli.running:poll",
        "agent": "mpp.cli.agent:agent",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, attr = self.lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
):
    main.add_command(_command)
