"""Value types every section shares (durations, listen addresses) and the error type."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

DEFAULT_CONFIG = "mpp.toml"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# a year: every timer mpp has is far shorter, and a bound keeps huge values (1e300, inf)
# from reaching asyncio's sleeps and MariaDB's millisecond variables as overflows
MAX_DURATION = 365 * 24 * 3600.0
_HOSTNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}", re.ASCII)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)


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
    if math.isnan(seconds):
        raise ValueError('nan is not a duration; write it like "500ms", "2s", "1m" or "1h"')
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION:
        raise ValueError("longer than a year; durations are at most 365 days")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def host_port(value: str, lowest_port: int) -> tuple[str, int] | None:
    """HOST:PORT with HOST a host name, an IPv4 address or a bracketed IPv6 address, and
    PORT ASCII digits (str.isdigit also takes "\u0663"); None when it is not. The host
    ends up in log lines, the status table and the dashboard, so nothing else is let in."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or len(port) > 5:
        return None
    if not lowest_port <= int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1])), int(port)
        except ValueError:
            return None
    return (host, int(port)) if _HOSTNAME.fullmatch(host) else None


def _listen(value: str) -> str:
    if host_port(value, 0) is None:
        raise ValueError(
            f'{value!r} is not HOST:PORT to listen on, e.g. "127.0.0.1:8080" or "[::1]:8080"'
        )
    return value


Listen = Annotated[str, BeforeValidator(lambda v: _listen(str(v)))]


def _env_name(value: str) -> str:
    """os.environ.get raises on "=" or NUL: a bad name fails here, not at the first poll."""
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not an environment variable's name, e.g. MPP_PASSWORD")
    return value


def _file_name(value: str) -> str:
    """open() raises ValueError (not OSError) on NUL: a bad name fails here, not when read."""
    if not value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{value!r} is not a file name (empty, or control characters)")
    return value


def _printable(value: str) -> str:
    """Names mpp writes into log lines, SQL account names and mail headers: a line break
    there would forge a log line or a header."""
    if not value.isprintable():
        raise ValueError(f"{value!r} holds a line break or control character")
    return value


_EMAIL = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+", re.ASCII)


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError(f'{value!r} is not a mail address, e.g. "dba@example.com"')
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]
Printable = Annotated[str, AfterValidator(_printable)]


def _address(value: str) -> str:
    if host_port(value, 1) is None:
        raise ValueError(f'{value!r} is not HOST:PORT, e.g. "127.0.0.1:3306" or "[::1]:3306"')
    return value


# a server's HOST:PORT (pools' nodes, the agent's own server): checked by host_port
Address = Annotated[str, AfterValidator(_address)]


def split_address(address: str) -> tuple[str, int]:
    """A checked Address as (host without IPv6 brackets, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


Email = Annotated[str, AfterValidator(_email)]
FileName = Annotated[str, AfterValidator(_file_name)]


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
