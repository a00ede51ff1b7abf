"""Every error the server sends has one shape: ``{"error": {"code": "...", "message": "..."}}``.

``ApiError`` is raised by our own code; ``install_error_handlers`` maps threadline's errors,
FastAPI's validation errors and Starlette's HTTP errors to that shape with the right status,
so no input produces a 500 with an HTML or framework-specific body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from threadline import _json as fast_json
from threadline.errors import (
    InvalidArgumentError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    StoreError,
)
from threadline.store._redact import redact

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
STORE_RETRY_AFTER_SECONDS = 5

_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ALREADY_EXISTS",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL_ERROR",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    """An error answered as ``status`` with the JSON error shape (and optional headers)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or code_for(status)
        self.message = message
        self.headers = headers or {}


def code_for(status: int) -> str:
    return _CODES.get(status, "INVALID_ARGUMENT" if status < 500 else "INTERNAL_ERROR")


class ApiJSONResponse(JSONResponse):
    """JSON that always renders: non-finite floats become strings, lone surrogates escaped."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError:  # NaN or Infinity somewhere in stored span data
            text = json.dumps(
                fast_json.finite_strings(content), ensure_ascii=False, separators=(",", ":")
            )
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: \u-escape everything instead
            return json.dumps(json.loads(text), ensure_ascii=True).encode("ascii")


class SpanDataJSONResponse(ApiJSONResponse):
    """Trace and span data read from the store, rendered by orjson when it is installed.

    The store returns non-finite floats as strings already, so orjson's NaN-as-null never
    applies; whatever orjson refuses (a lone surrogate …) takes the standard path. With
    ``plain``, ``content`` may splice stored JSON text verbatim (``orjson.Fragment``, which
    only orjson writes): the standard path then renders ``plain()``, the same data as
    plain values.
    """

    def __init__(self, content: Any, *, plain: Callable[[], Any] | None = None) -> None:
        self._plain = plain  # before the base class renders
        super().__init__(content)

    def render(self, content: Any) -> bytes:
        fast = fast_json.dumps_bytes(content)
        if fast is not None:
            return fast
        return super().render(content if self._plain is None else self._plain())


def error_response(
    status: int, message: str, *, code: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    """The JSON error shape as a response."""
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    body = {"error": {"code": code or code_for(status), "message": message}}
    return ApiJSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map every kind of failure to the error shape and status."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(InvalidArgumentError, _status(400))
    app.add_exception_handler(ResourceNotFoundError, _status(404))
    app.add_exception_handler(ResourceAlreadyExistsError, _status(409))
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(Exception, _unexpected)


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, code=exc.code, headers=exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, (RequestValidationError, ValidationError))
    return error_response(400, validation_message(exc.errors()))


def validation_message(errors: Any) -> str:
    """One line per problem (at most five): where it is and what is wrong."""
    lines = []
    for error in list(errors)[:5]:
        location = [str(part) for part in error.get("loc", ())]
        context = error.get("ctx") or {}
        if error.get("type") == "json_invalid":
            at = f" at character {location[-1]}" if len(location) > 1 else ""
            lines.append(f"The body is malformed JSON{at}: {context.get('error', 'invalid')}")
            continue
        where = ".".join(part for part in location if part != "body")
        lines.append(f"{where or 'request body'}: {error.get('msg', 'invalid value')}")
    return "; ".join(lines) or "The request is invalid."


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail, default=str)
    if exc.status_code == 404 and message == "Not Found":
        message = "No such endpoint. The API is under /api/v1/ (see /openapi.json)."
    elif exc.status_code == 400 and message == "There was an error parsing the body":
        message = "The request body is not valid JSON (malformed, not UTF-8, or nested too deeply)."
    return error_response(exc.status_code, message, headers=dict(exc.headers or {}))


def _status(status: int) -> Any:
    async def handler(_request: Request, exc: Exception) -> Response:
        return error_response(status, str(exc))

    return handler


async def _store_error(_request: Request, exc: Exception) -> Response:
    """503 with ``Retry-After`` when the store may answer later (unreachable, locked,
    restarting); 500 without it when the same request would fail again however long a
    client waits (the database cannot run the statement), so no client retries forever.
    Values the store refused are an ``InvalidArgumentError`` from the store (400), never
    here. Either way the message is redacted: no store URL or password reaches a client or
    the log.
    """
    message = redact(str(exc))
    if _refused_statement(exc):
        logger.error("Store error (not retryable): %s", message)
        return error_response(500, message)
    logger.warning("Store error: %s", message)
    return error_response(503, message, headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS)})


def _refused_statement(exc: BaseException) -> bool:
    """Whether the driver refused the statement or its values (an error of SQL class 22, 23
    or 42, or a Python int too large for the database), as opposed to being unavailable."""
    cause = exc.__cause__
    refusals = (sa_exc.DataError, sa_exc.IntegrityError, sa_exc.ProgrammingError, OverflowError)
    return isinstance(cause, refusals)


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.error("Unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"Internal error ({type(exc).__name__}); see the server log.")
