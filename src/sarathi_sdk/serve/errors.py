"""OpenAI-style error bodies, and the HTTP status of every error a request can meet.

Every error leaves the server as `{"error": {"message", "type", "param", "code"}}`, the shape the
`openai` client parses: request validation (pydantic, malformed JSON), the SDK's own errors, unknown
routes. Error bodies are ASCII JSON, so echoing bad input (a lone surrogate, say) cannot fail.

Imports fastapi/starlette and the public `sarathi_sdk` errors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from ..errors import (
    EngineDeadError,
    EngineOverloadedError,
    EngineStateError,
    InvalidRequestError,
    RequestError,
    SarathiError,
)

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=Exception)

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"
RETRY_AFTER_SECONDS = "1"


class APIError(Exception):
    """An error to send as it is: status, message, and the request field it is about."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or (INVALID_REQUEST if status < 500 else SERVER_ERROR)
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> Response:
        return error_response(self.status, self.body(), self.headers)


def error_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body).encode(), status_code=status, headers=headers,
                    media_type="application/json")


def from_sdk_error(exc: SarathiError, param: str | None = None) -> APIError:
    """The HTTP face of an SDK error: bad input 400, overload and a dead or closed engine 503 (retry
    elsewhere or later), a request that failed while running 500."""
    message = str(exc)
    if isinstance(exc, InvalidRequestError):
        return APIError(400, message, param=param)
    if isinstance(exc, EngineOverloadedError):
        return APIError(503, message, code="engine_overloaded", headers={"Retry-After": RETRY_AFTER_SECONDS})
    if isinstance(exc, EngineDeadError):
        return APIError(503, message, code="engine_dead")
    if isinstance(exc, EngineStateError):
        return APIError(503, message, code="engine_not_running")
    if isinstance(exc, RequestError):
        return APIError(500, message, code="request_failed")
    return APIError(500, message)


def from_validation_errors(errors: Iterable[dict[str, Any]], field_names: frozenset[str]) -> APIError:
    """A 400 naming the first invalid field. `field_names` are the request models' own fields: a
    location element that is not one of them (a union member's tag such as "list[int]") ends the path."""
    error = next(iter(errors), None)
    if error is None:
        return APIError(400, "invalid request")
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return APIError(400, f"the request body is not valid JSON: {reason}".rstrip(": "))
    loc = list(error.get("loc", ()))
    if loc[:1] == ["body"]:
        loc = loc[1:]
    kind = error.get("type")
    if kind == "extra_forbidden":
        extra = ".".join(map(str, loc))
        return APIError(400, f"{extra} is not supported by this server", param=extra)
    path: list[str] = []
    for part in loc:
        if isinstance(part, int):
            path.append(str(part))
        elif part in field_names:
            path.append(part)
        else:
            break
    param = ".".join(path) or None
    if kind == "missing":
        message = f"{param} is required" if param else "the request body is required"
    else:
        reason = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        message = f"{param}: {reason}" if param else f"the request body: {reason}"
    return APIError(400, message, param=param)


def install(app: FastAPI, field_names: frozenset[str]) -> None:
    """Route every error through the OpenAI error body."""

    async def api_error(request: Request, exc: APIError) -> Response:
        return exc.response()

    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return from_validation_errors(exc.errors(), field_names).response()

    async def http_error(request: Request, exc: HTTPException) -> Response:
        code = "not_found" if exc.status_code == 404 else None
        return APIError(exc.status_code, str(exc.detail), code=code, headers=dict(exc.headers or {})).response()

    async def sdk_error(request: Request, exc: SarathiError) -> Response:
        return from_sdk_error(exc).response()

    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error serving %s", request.url.path)
        return APIError(500, "internal server error").response()

    _add_handler(app, APIError, api_error)
    _add_handler(app, RequestValidationError, validation_error)
    _add_handler(app, HTTPException, http_error)
    _add_handler(app, SarathiError, sdk_error)
    app.add_exception_handler(Exception, unexpected)


def _add_handler(app: FastAPI, kind: type[E], handle: Callable[[Request, E], Awaitable[Response]]) -> None:
    """Register `handle` for `kind`. Starlette types every handler as taking any Exception, though it
    calls each only with exceptions of the class it was registered for (or a subclass)."""

    async def handler(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, kind):
            raise exc
        return await handle(request, exc)

    app.add_exception_handler(kind, handler)
