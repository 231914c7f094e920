"""Shared HTTP helpers of the Skebby simulator: Skebby-style errors, parameters, dates, pages."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from aiohttp import web

API_PREFIX = "/API/v1.0/REST/"
_PHONE_RE = re.compile(r"^(?:\+|00)?([1-9]\d{6,14})$")
_HISTORY_FORMATS = ("%Y%m%d%H%M%S", "%Y%m%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


# --------------------------------------------------------------------------- helpers


def error_response(status: int, detail: str) -> web.HTTPException:
    """A Skebby-like error: HTTP status plus a JSON body naming the problem."""
    body = json.dumps({"result": "ERROR", "error": detail})
    cls: type[web.HTTPException] = {
        400: web.HTTPBadRequest,
        401: web.HTTPUnauthorized,
        404: web.HTTPNotFound,
    }.get(status, web.HTTPBadRequest)
    return cls(text=body, content_type="application/json")


def bad_request(detail: str) -> NoReturn:
    raise error_response(400, detail)


def not_found(detail: str) -> NoReturn:
    raise error_response(404, detail)


async def read_json(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json(loads=json.loads)
    except (ValueError, UnicodeDecodeError):
        bad_request("the body is not valid JSON")
    if not isinstance(data, dict):
        bad_request("the body must be a JSON object")
    return data


def parse_bool(value: object, default: bool, name: str) -> bool:
    """Skebby booleans arrive as JSON booleans or as the strings "true"/"false"."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    bad_request(f"{name} must be true or false")


def parse_int(value: object, default: int, name: str, minimum: int = 0) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(str(value))
    except ValueError:
        bad_request(f"{name} must be an integer")
    if number < minimum:
        bad_request(f"{name} must be at least {minimum}")
    return number


def normalize_phone(number: object) -> str | None:
    """E.164 with a leading '+', or None when the number is not a valid international number."""
    if not isinstance(number, str):
        return None
    match = _PHONE_RE.match(number.strip().replace(" ", ""))
    return f"+{match.group(1)}" if match else None


def parse_history_date(value: str | None, name: str, default: datetime | None) -> datetime:
    if not value or value == "now":
        if default is None:
            bad_request(f"{name} is required")
        return default
    for fmt in _HISTORY_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    bad_request(f"{name} has an invalid date format, use yyyyMMddHHmmss")


def fmt_compact(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S")


def page(request: web.Request, items: Sequence[Any]) -> tuple[list[Any], int, int]:
    number = parse_int(request.query.get("pageNumber"), 1, "pageNumber", 1)
    size = parse_int(request.query.get("pageSize"), 10, "pageSize", 1)
    start = (number - 1) * size
    return list(items[start : start + size]), number, size


def ok_json(payload: object, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status)


class SkebbyClock:
    """The simulator's notion of now (an injectable ``time.time``-style clock), in UTC."""

    clock: Callable[[], float]

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=UTC)
