"""Who may call what: the bearer token of `[api] token_file`, and which routes need it.

Mutations always need the token; reads need it only when `[api] open_reads = false`. The
token is kept as a SecretStr and compared in constant time, and is never written to a log,
a response or an exception.
"""

import hmac
import logging
import stat
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from mpp.config import Config, ConfigError
from mpp.publish.api.context import Ctx
from mpp.publish.api.documents import AUTH, Responses

log = logging.getLogger("mpp.api")

bearer = HTTPBearer(auto_error=False, description="the token in [api] token_file")


def load_token(config: Config) -> SecretStr | None:
    """The mutations' bearer token, or None when `[api] token_file` is not set."""
    if config.api is None or config.api.token_file is None:
        return None
    path = config.resolve(config.api.token_file)
    try:
        text = path.read_text().strip()
        mode = path.stat().st_mode
    except OSError as err:
        raise ConfigError(
            f"{config.path}: [api] token_file: cannot read {path} ({err.strerror}); create it "
            "with a long random token, e.g. `openssl rand -hex 32 > FILE; chmod 600 FILE`"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{config.path}: [api] token_file: {path} is not UTF-8; a token is ASCII, e.g. "
            "`openssl rand -hex 32`"
        ) from None
    if not text:
        raise ConfigError(f"{config.path}: [api] token_file: {path} is empty; put a token in it")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("[api] token_file %s is readable by others; chmod 600 it", path)
    return SecretStr(text)


def open_reads(config: Config) -> bool:
    """Reads are open unless the config says otherwise: load balancers poll without a token."""
    return config.api.open_reads if config.api is not None else True


def require_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)], ctx: Ctx
) -> None:
    """401 without a token (or without a token_file: nothing could match), 403 for a wrong
    one; compare_digest so the answer's timing does not tell how much of a guess was right."""
    if ctx.token is None:
        raise HTTPException(
            401,
            "mutations disabled: set [api] token_file",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if credentials is None:
        raise HTTPException(
            401, "missing Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"}
        )
    given = credentials.credentials.encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given, ctx.token.get_secret_value().encode()):
        raise HTTPException(403, "wrong token")


TOKEN = Depends(require_token)


@dataclass(frozen=True)
class ReadGuard:
    """What a read route adds when reads are closed: the token dependency, and the 401/403
    it may then answer (so the OpenAPI description lists them only when they can happen)."""

    dependencies: list[params.Depends]
    errors: Responses

    @classmethod
    def of(cls, open_reads: bool) -> "ReadGuard":
        return cls([], {}) if open_reads else cls([TOKEN], AUTH)
