"""Choosing a logic by name: the one registry.

Built-in logics are listed here; third-party ones register through the Python entry-point
group `mpp.logic` (an object implementing mpp.logic.interface.Logic), so a pool's
`logic = "NAME"` needs no edit anywhere else in mpp. The configuration asks `names()` to
validate the key and says which names exist.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import cast

from mpp.logic.interface import Logic

ENTRY_POINT_GROUP = "mpp.logic"
_BUILTIN = {"failover": "mpp.logic.failover:LOGIC", "cluster": "mpp.logic.cluster:LOGIC"}
_REGISTERED: dict[str, Logic] = {}  # added at run time by an embedding program (or a test)


def _load(target: str) -> Logic:
    module, _, attr = target.partition(":")
    return cast(Logic, getattr(importlib.import_module(module), attr))


@cache
def _plugins() -> dict[str, str]:
    return {
        ep.name: ep.value
        for ep in entry_points(group=ENTRY_POINT_GROUP)
        if ep.name not in _BUILTIN  # a plug-in cannot replace a built-in logic
    }


def names() -> tuple[str, ...]:
    return (*_BUILTIN, *sorted({*_plugins(), *_REGISTERED}))


def register(logic: Logic) -> None:
    """Add a logic in this process (what an entry point does for an installed package)."""
    if logic.name in _BUILTIN:
        raise ValueError(f"{logic.name!r} is a built-in logic")
    _REGISTERED[logic.name] = logic


def get(name: str) -> Logic:
    """The logic registered as `name`; KeyError names the known ones."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    return _loaded(name)


@cache
def _loaded(name: str) -> Logic:
    target = _BUILTIN.get(name) or _plugins().get(name)
    if target is None:
        raise KeyError(f"no logic named {name!r} (known: {', '.join(names())})")
    return _load(target)
