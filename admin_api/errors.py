"""One error shape for every failure: ``{"error": {"code", "message", "details"}}``.

The middlewares here give each request an id (echoed in ``X-Request-Id``), count it for /metrics,
and turn every exception into that JSON shape with the right status. An unreachable database is
a 503 with ``Retry-After`` (logged once per outage, by ``admin_api.outage``); other unexpected
exceptions are logged with the request id and answered with a generic 500: no traceback ever
leaves the process.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from admin_api.context import API_CONTEXT
from channels.composition import (
    CompositionError,
    IdempotencyConflictError,
    RecipientsNotVisibleError,
)
from persistence.availability import database_unavailable
from persistence.common_queries import (
    ConflictError,
    ForbiddenFieldError,
    InvalidFieldError,
    NotFoundError,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)
_REQUEST_ID_SHAPE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    414: "uri_too_long",
    431: "headers_too_large",
    503: "unavailable",
}


class ApiError(Exception):
    """An expected failure with its HTTP status, a stable code and a sentence for people."""

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, *, headers: Any = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def invalid(field: str, message: str) -> ApiError:
    return ApiError(
        422, "validation_error", message, [{"loc": field.split("."), "message": message}]
    )


def database_unavailable_error(cause: str, retry_after: int) -> ApiError:
    """503: the database is unreachable, which is not the caller's fault; try again later."""
    return ApiError(
        503,
        "database_unavailable",
        f"the database is unreachable ({cause}); try again in {retry_after} s",
        {"retry_after": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(error: ApiError, request_id: str | None = None) -> web.Response:
    response = web.json_response(
        error_body(error.code, error.message, error.details),
        status=error.status,
        headers=error.headers,
    )
    if request_id:
        response.headers["X-Request-Id"] = request_id
    return response


def validation_details(exc: ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    details = []
    for item in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = [prefix, *item["loc"]] if prefix else list(item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        details.append({"loc": loc, "message": message, "type": item["type"]})
    return details


def from_validation(exc: ValidationError, prefix: str) -> ApiError:
    details = validation_details(exc, prefix)
    first = details[0] if details else {"loc": [prefix], "message": "invalid"}
    where = ".".join(str(part) for part in first["loc"])
    return ApiError(422, "validation_error", f"{where}: {first['message']}", details)


def _translate(exc: Exception) -> ApiError | None:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RecipientsNotVisibleError):
        return ApiError(403, "recipients_not_visible", exc.message, exc.details)
    if isinstance(exc, CompositionError):
        loc = exc.field.replace("[", ".").replace("]", "").split(".")
        details = [{"loc": ["body", *loc], "message": exc.message, "details": exc.details}]
        return ApiError(422, "validation_error", f"{exc.field}: {exc.message}", details)
    if isinstance(exc, IdempotencyConflictError):
        return ApiError(409, "idempotency_conflict", str(exc))
    if isinstance(exc, NotFoundError):
        return not_found(str(exc))
    if isinstance(exc, ForbiddenFieldError):
        return ApiError(
            403,
            "forbidden",
            f"{exc.field}: {exc.message}",
            [{"loc": ["body", exc.field.split(" ", 1)[0]], "message": exc.message}],
        )
    if isinstance(exc, InvalidFieldError):
        return invalid(f"body.{exc.field}", f"{exc.field}: {exc.message}")
    if isinstance(exc, ConflictError):
        return ApiError(409, "conflict", str(exc), exc.details)
    if isinstance(exc, web.HTTPException) and exc.status >= 400:
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason
        if exc.status == 413:
            message = "the request body is larger than the server accepts"
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return ApiError(exc.status, code, message, headers=headers or None)
    return None


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    presented = request.headers.get("X-Request-Id", "")
    request_id = presented if _REQUEST_ID_SHAPE.match(presented) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    response = await handler(request)
    response.headers["X-Request-Id"] = request_id
    return response


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts every answer by route template (never the raw path) and status."""
    response = await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    metrics = request.app[API_CONTEXT].metrics
    metrics.http_request(route, response.status)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except Exception as exc:  # every failure becomes the JSON error shape
        request_id = request.get(REQUEST_ID)
        translated = _translate(exc)
        if translated is None and (cause := database_unavailable(exc)) is not None:
            retry_after = request.app[API_CONTEXT].database_retry_after_seconds
            translated = database_unavailable_error(cause, retry_after)
        if translated is None:
            log.exception(
                "unexpected error on %s %s (request id %s)",
                request.method,
                request.path,
                request_id,
            )
            translated = ApiError(
                500,
                "internal_error",
                f"something went wrong on our side; quote request id {request_id}",
            )
        return error_response(translated, request_id)
    if isinstance(response, web.HTTPException) and response.status >= 400:
        translated = _translate(response)
        assert translated is not None
        return error_response(translated, request.get(REQUEST_ID))
    return response
