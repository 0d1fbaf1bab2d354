"""Every error the API answers is `{"error": "<one line>"}` (validation errors add a
`detail` list): one shape for HTTP errors and invalid requests, so a script handles both
the same way and a human reads the line."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)


async def invalid(request: Request, exc: RequestValidationError) -> Response:
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return JSONResponse({"error": "the body is not valid JSON"}, 400)  # as documented
    problems = [
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {_message(e)}" for e in exc.errors()
    ]
    return JSONResponse(
        {"error": "invalid request: " + "; ".join(problems), "detail": _plain(exc.errors())},
        422,
    )


def install(app: FastAPI) -> None:
    """On the whole app, not a router: a 404 for an unknown path must have the shape too."""
    app.exception_handler(StarletteHTTPException)(http_error)
    app.exception_handler(RequestValidationError)(invalid)


def _message(error: Any) -> str:
    if error.get("type") == "string_pattern_mismatch" and error.get("loc", ())[-1:] == ("max_lag",):
        # without the value: what a caller sends by mistake may be a secret
        return 'not a duration; write it like "5s" or "500ms"'
    return str(error.get("msg", "invalid"))


def _plain(errors: Any) -> Any:
    """Validation details as JSON (pydantic may put exception objects in `ctx`), without
    the rejected input: it is the caller's own data, and may be a secret sent by mistake."""
    errors = [{k: v for k, v in e.items() if k != "input"} for e in errors]
    return jsonable_encoder(
        errors, custom_encoder={Exception: str, bytes: lambda b: b.decode("utf-8", "replace")}
    )
