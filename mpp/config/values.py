"""Value types every section shares (durations, listen addresses) and the error type."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

DEFAULT_CONFIG = "mpp.toml"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class ConfigError(Exception):
    """A configuration problem, worded for the operator who has to fix the file."""


def parse_duration(value: Any) -> float:
    """'500ms', '2s', '1m', '1h' or a plain number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError('expected a duration such as "500ms", "2s" or "1m"')
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(
                f'{value!r} is not a duration; write it like "500ms", "2s", "1m" or "1h"'
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f'{value!r} is not HOST:PORT to listen on, e.g. "127.0.0.1:8080"')
    return value


Listen = Annotated[str, BeforeValidator(lambda v: _listen(str(v)))]


def _key_error(key: str, message: str) -> ValidationError:
    """An error on a nested key from a validator of an enclosing model: pydantic prefixes
    the location, so the operator reads `router.pool: ...` rather than `router: ...`."""
    return ValidationError.from_exception_data(
        "RouterSection",
        [
            InitErrorDetails(
                type=PydanticCustomError("value_error", "{message}", {"message": message}),
                loc=(key,),
                input=None,
            )
        ],
    )
