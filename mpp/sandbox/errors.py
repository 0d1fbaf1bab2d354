"""The one exception of the sandbox, in a room of its own so that every other room can raise
it without importing the rest."""

from __future__ import annotations


class SandboxError(Exception):
    """Raised with a message meant for a human at a terminal: what failed and what to do."""
