"""Reading a file: TOML in, a validated Config or one ConfigError naming file and key out."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from mpp.config.schema import Config
from mpp.config.values import DEFAULT_CONFIG, ConfigError


def default_path() -> Path:
    return Path(os.environ.get("MPP_CONFIG", DEFAULT_CONFIG))


def load(path: Path | None = None) -> Config:
    """Read and validate a config file; every failure is a ConfigError naming file and key."""
    path = path or default_path()
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file; pass --config FILE, set MPP_CONFIG, or run "
            "`mpp sandbox up` to write one"
        ) from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return parse(raw, path)


def parse(raw: dict[str, Any], path: Path) -> Config:
    try:
        return Config.model_validate({**raw, "path": path.resolve()})
    except ValidationError as err:
        raise ConfigError(_explain(err, raw, path)) from None


def _explain(err: ValidationError, raw: dict[str, Any], path: Path) -> str:
    lines = [f"{path}: invalid configuration"]
    for problem in err.errors():
        key = _key_path(problem["loc"], raw)
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key (misspelt?); see docs/configuration.md for the keys"
        elif problem["type"] == "missing":
            message = "required key is missing"
        elif problem["type"] == "literal_error":
            message = f"got {problem['input']!r}; " + message.replace("Input should be", "allowed:")
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def _key_path(loc: tuple[int | str, ...], raw: Any) -> str:
    """('pool', 0, 'node', 1, 'address') -> 'pool[0] (main).node[1] (db2).address'."""
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                label += f" ({node['name']})"
            parts[-1] += label
        else:
            parts.append(item)
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"
