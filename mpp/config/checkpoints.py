"""`[[checkpoint]]`: MPP's checkpoints, the addresses an instance probes to know where it
stands (mpp.model.reach says what the kinds mean, mpp.logic.reach what a cut is)."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from mpp.config.values import Duration, Printable, _key_error, _Strict, host_port
from mpp.model import CheckpointKind, CheckpointSpec

_URL_TEXT = re.compile(r"[\x21-\x7e]+", re.ASCII)  # printable, no spaces (shown in status)
MAX_TIMEOUT = 30.0


def _target(value: str) -> str:
    """tcp:HOST:PORT, mysql:HOST:PORT or an http(s) URL with a host."""
    scheme, sep, rest = value.partition(":")
    if sep and scheme in ("tcp", "mysql"):
        if host_port(rest, 1) is not None:
            return value
        raise ValueError(
            f"{value!r}: after {scheme}: write HOST:PORT with a port from 1 to 65535, "
            f'e.g. "{scheme}:10.0.0.1:{3306 if scheme == "mysql" else 22}"'
        )
    if scheme in ("http", "https") and _URL_TEXT.fullmatch(value):
        parts = urlsplit(value)
        if parts.hostname and not parts.username and not parts.password:
            try:
                parts.port  # noqa: B018 - raises on a bad port
            except ValueError:
                pass
            else:
                return value
        if parts.username or parts.password:
            raise ValueError(  # the value itself is not repeated: it holds a secret
                "no user or password in a checkpoint URL (it is shown in "
                "`mpp status`); point at an address that answers without them"
            )
    raise ValueError(
        f"{value!r} is not a checkpoint target; use "
        '"tcp:HOST:PORT", "mysql:HOST:PORT" or "http(s)://HOST[:PORT]/PATH"'
    )


class CheckpointConfig(_Strict):
    """One checkpoint: probed every interval by the instance whose config lists it."""

    name: Printable = Field(min_length=1, max_length=64)
    kind: Literal["internal", "edge", "external"]
    target: Annotated[str, AfterValidator(_target)]
    # the probe's whole deadline (connect, greeting or HTTP answer); a checkpoint probe
    # must be cheap, so it is short by default and bounded
    timeout: Annotated[Duration, Field(gt=0, le=MAX_TIMEOUT)] = 1.0
    # consecutive failed probes before it counts as failed: a lost packet costs no lease
    fail_after: Annotated[int, Field(ge=1, le=100)] = 2

    @model_validator(mode="after")
    def _name_is_plain(self) -> CheckpointConfig:
        if any(c.isspace() for c in self.name):
            raise _key_error("name", f'{self.name!r}: no spaces, e.g. name = "gateway"')
        return self

    def spec(self) -> CheckpointSpec:
        return CheckpointSpec(
            self.name, CheckpointKind(self.kind), self.target, self.timeout, self.fail_after
        )
