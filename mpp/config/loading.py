"""Reading a file: TOML in, a validated Config or one ConfigError naming file and key out.

The error is one line: `mpp` prints it on stderr and log collectors keep it whole. Anything
quoted from the file (a key, a node's name, a rejected value) is shown as repr when it is
not plain, so a newline or a terminal escape in the file cannot split or forge that line.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from mpp.config.schema import Config
from mpp.config.values import DEFAULT_CONFIG, ConfigError

_PLAIN = re.compile(r"[A-Za-z0-9_.-]+", re.ASCII)
_SHOWN = 80  # characters of a rejected value quoted in a message


def default_path() -> Path:
    return Path(os.environ.get("MPP_CONFIG", DEFAULT_CONFIG))


def load(path: Path | None = None) -> Config:
    """Read and validate a config file; every failure is a ConfigError naming file and key."""
    path = path or default_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file; pass --config FILE, set MPP_CONFIG, or run "
            "`mpp sandbox up` to write one"
        ) from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError(
            f"{path}: not UTF-8 (byte 0x{data[err.start]:02x} on line {line}); TOML files are UTF-8"
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(_one_line(f"{path}: not valid TOML: {err}")) from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise ConfigError(
            f"{path}: not valid TOML for mpp: arrays or inline tables nested too deeply"
        ) from None
    return parse(raw, path)


def parse(raw: dict[str, Any], path: Path) -> Config:
    if "path" in raw:  # Config.path is where the file was read from, not a key of it
        raise ConfigError(f"{path}: path: {_UNKNOWN}")
    try:
        return Config.model_validate({**raw, "path": path.resolve()})
    except ValidationError as err:
        raise ConfigError(_explain(err, raw, path)) from None
    except RecursionError:  # a value nested hundreds deep, given to parse() directly
        raise ConfigError(f"{path}: a value is nested too deeply") from None


_UNKNOWN = "unknown key (misspelt?); see docs/configuration.md for the keys"


def _explain(err: ValidationError, raw: dict[str, Any], path: Path) -> str:
    """`FILE: KEY: what is wrong and allowed`, the problems after the first joined by '; '."""
    problems = []
    for problem in err.errors():
        key = _key_path(problem["loc"], raw)
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = _UNKNOWN
        elif problem["type"] == "missing":
            message = "required key is missing"
        elif problem["type"] == "literal_error":
            message = f"got {_shown(problem['input'])}; " + message.replace(
                "Input should be", "allowed:"
            )
        problems.append(f"{key}: {message}")
    return _one_line(f"{path}: " + "; ".join(problems))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _one_line(text: str) -> str:
    """The last guard: any line break or control character left becomes its escape."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _label(name: str) -> str:
    return name if _PLAIN.fullmatch(name) else _shown(name)


def _key_path(loc: tuple[int | str, ...], raw: Any) -> str:
    """('pool', 0, 'node', 1, 'address') -> 'pool[0] (main).node[1] (db2).address'."""
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                label += f" ({_label(node['name'])})"
            if parts:
                parts[-1] += label
            else:
                parts.append(label)
        else:
            parts.append(_label(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"
