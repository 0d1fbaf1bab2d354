"""Who may call what: the bearer token of `[api] token_file`, and which routes need it.

Mutations always need the token; reads need it only when `[api] open_reads = false`. The
token is kept as a SecretStr and compared in constant time, and is never written to a log,
a response or an exception.
"""

import hmac
import logging
import stat
from dataclasses import dataclass
from re import Pattern
from typing import Annotated

from fastapi import Depends, HTTPException, params
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

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


def token_refusal(token: SecretStr | None, given: bytes | None) -> tuple[int, str] | None:
    """(status, detail) when `given` (the bearer credentials, None when absent) does not
    carry the token; None when it does. 401 without a token (or without a token_file:
    nothing could match), 403 for a wrong one; compare_digest so the answer's timing does
    not tell how much of a guess was right. The routes, TokenFirst and the connection
    layer (mpp.publish.api.bounded, which refuses a body before reading it) all ask here."""
    if token is None:
        return 401, "mutations disabled: set [api] token_file"
    if given is None:
        return 401, "missing Authorization: Bearer <token>"
    if not hmac.compare_digest(given, token.get_secret_value().encode()):
        return 403, "wrong token"
    return None


def bearer_credentials(authorization: bytes | None) -> bytes | None:
    """The credentials of an `Authorization: Bearer X` header value, as HTTPBearer reads it."""
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not credentials.strip():
        return None
    return credentials.strip()


def refusal(token: SecretStr | None, given: str | None) -> HTTPException | None:
    """token_refusal as the HTTPException a route raises; `given`: the bearer credentials."""
    verdict = token_refusal(
        token, None if given is None else given.encode("utf-8", "surrogateescape")
    )
    if verdict is None:
        return None
    status, detail = verdict
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status, detail, headers=headers)


def require_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)], ctx: Ctx
) -> None:
    error = refusal(ctx.token, None if credentials is None else credentials.credentials)
    if error is not None:
        raise error


class TokenFirst:
    """ASGI middleware: an operator command (a POST to one of `paths`) without the right
    token is refused before its body is read or parsed. FastAPI parses a JSON body before
    it runs the route's dependencies, so without this an unauthenticated caller got 400 or
    422 answers about a body it had no right to send. Everything else passes untouched (an
    undeclared method still gets its 405), and the routes keep require_token: this is the
    first check, not the only one."""

    def __init__(self, app: ASGIApp, token: SecretStr | None, paths: list[Pattern[str]]) -> None:
        self.app = app
        self.token = token
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and any(p.match(scope["path"]) for p in self.paths)
        ):
            error = refusal(self.token, _bearer(scope))
            if error is not None:
                response = JSONResponse({"error": error.detail}, error.status_code, error.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _bearer(scope: Scope) -> str | None:
    """The credentials of `Authorization: Bearer <credentials>`, as HTTPBearer reads them."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"authorization":
            found = bearer_credentials(value)
            return None if found is None else found.decode("latin-1")
    return None


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
