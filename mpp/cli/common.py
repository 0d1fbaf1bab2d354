"""What every `mpp` command module shares: the context, the consoles, error handling."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.text import Text

from mpp.config import Config, ConfigError, default_path, load
from mpp.model import CommandRefused
from mpp.store import Store, StoreError, open_store

# Piped output (cron mail, scripts, logs) gets wide lines instead of a wrapped 80 columns.
# No markup and no highlighting, ever: what the CLI prints quotes untrusted text (server
# error messages quoting row values, node names, config values), and rich would interpret
# "[/x]" in it as markup and die with MarkupError. Styles come from Text objects only.
console = Console(width=None if sys.stdout.isatty() else 240, markup=False, highlight=False)
err_console = Console(
    stderr=True, width=None if sys.stderr.isatty() else 240, markup=False, highlight=False
)


def styled(prefix: str, message: str, style: str = "bold red") -> Text:
    """`prefix` in `style`, then `message` as it is (never markup)."""
    return Text.assemble((prefix, style), " ", message)


def fail(message: str, code: int = 1, prefix: str = "mpp:") -> NoReturn:
    """One red line on stderr, then the exit code scripts test: no traceback to read (not
    wrapped either: soft_wrap keeps a long message on one line)."""
    err_console.print(styled(prefix, message), soft_wrap=True)
    sys.exit(code)


@contextmanager
def errors() -> Iterator[None]:
    """Known failures become one readable line and an exit code, never a traceback."""
    try:
        yield
    except ConfigError as err:
        fail(str(err), 2)
    except (StoreError, CommandRefused) as err:
        fail(str(err), 1)


class Ctx:
    """The group's --config, loaded on first use: `mpp sandbox` and `--help` need no
    config file, and a broken one is reported inside the command's `errors()`."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load(self.config_path or default_path())
        return self._config

    def store(self) -> Store:
        return open_store(self.config)


pass_ctx = click.make_pass_decorator(Ctx)
