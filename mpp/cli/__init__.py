"""The operator's door: one click group (main), one module per group of commands."""

from mpp.cli.main import main

__all__ = ["main"]
