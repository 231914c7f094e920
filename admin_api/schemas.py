"""Types every request and response schema shares: safe strings, ids, UTC times, pages, errors.

Limits here mirror the database columns, so a value the API accepts is one both SQLite and
PostgreSQL store (no NUL characters, ids within the column's integer range, bounded lengths).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.config import JsonDict

NO_NUL = r"^[^\x00]*$"
MAX_ID = 2_147_483_647  # 32-bit integer columns (recipients, typologies, users)
MAX_BIG_ID = 9_223_372_036_854_775_807  # 64-bit columns (messages, deliveries)
MAX_CHAT_ID = 2**53
FIRST_YEAR, LAST_YEAR = 1970, 8999  # as written in the value, whatever its UTC offset


def _integral(value: Any) -> Any:
    """JSON has one number type: ``3.0`` is the integer 3, as JSON Schema says (``"3"`` is not)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _query_digits(value: Any) -> Any:
    """A query string is text: an integer there is written in ASCII digits (``5``, or ``5.0``,
    which JSON Schema also calls an integer), with nothing around them."""
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            raise ValueError("must be a whole number written in digits")
        return int(value.partition(".")[0])
    return value


def _query_bool(value: Any) -> Any:
    if isinstance(value, str):
        spelled = value.lower()
        if spelled in ("true", "1"):
            return True
        if spelled in ("false", "0"):
            return False
        raise ValueError("must be true or false (or 1 or 0)")
    return value


_DIGITS = re.compile(r"-?[0-9]{1,20}(\.0+)?")

# Where a schema names a recipient kind, the document writes the registered kinds instead of
# this marker (admin_api.openapi): a deployment may register its own.
RECIPIENT_KIND_MARKER: JsonDict = {"x-recipient-kind": True}
# Where a schema holds free-form JSON (``extra``), the document refers to its JsonObject schema,
# which is recursive (pydantic cannot write that itself).
JSON_OBJECT_MARKER: JsonDict = {"x-json-object": True}
MAX_JSON_NUMBER = 2**63 - 1
ChannelName = Literal["telegram", "email", "sms", "storage"]
Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_integral)]
BigId = Annotated[int, Field(ge=1, le=MAX_BIG_ID), BeforeValidator(_integral)]
ChatId = Annotated[int, Field(ge=-MAX_CHAT_ID, le=MAX_CHAT_ID), BeforeValidator(_integral)]
QueryId = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_query_digits)]
QueryInt = Annotated[int, BeforeValidator(_query_digits)]
QueryBool = Annotated[
    bool,
    BeforeValidator(_query_bool),
    WithJsonSchema({"type": "boolean", "description": "true or false (1 or 0 also work)"}),
]


Name = Annotated[str, Field(min_length=1, max_length=255, pattern=NO_NUL)]
Short = Annotated[str, Field(max_length=32, pattern=NO_NUL)]
EmailText = Annotated[str, Field(max_length=254, pattern=NO_NUL)]
Subject = Annotated[str, Field(max_length=1000, pattern=NO_NUL)]
LongText = Annotated[str, Field(max_length=100_000, pattern=NO_NUL)]
HtmlText = Annotated[str, Field(max_length=200_000, pattern=NO_NUL)]
Note = Annotated[str, Field(max_length=10_000, pattern=NO_NUL)]
Search = Annotated[str, Field(min_length=1, max_length=255, pattern=NO_NUL)]


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# The supported years as the document states them (JSON Schema has no range for dates).
YEARS_PATTERN = "^(19[7-9][0-9]|[2-8][0-9]{3})-"


def _checked_text(value: Any, shape: re.Pattern[str], example: str) -> str:
    """The text of a date or date-time in the shape the document gives, in the supported years."""
    if not isinstance(value, str) or not shape.fullmatch(value):
        raise ValueError(f"must be {example}")
    if not FIRST_YEAR <= int(value[:4]) <= LAST_YEAR:
        raise ValueError(f"the year must be between {FIRST_YEAR} and {LAST_YEAR}")
    return value


def _date_time(value: Any) -> datetime:
    """An RFC 3339 date-time with its UTC offset (``2024-05-01T09:30:00Z``), as UTC."""
    value = _checked_text(
        value, _RFC3339, "an RFC 3339 date-time with an offset, e.g. 2024-05-01T09:30:00Z"
    )
    try:
        parsed = datetime.fromisoformat(value.upper())  # digits past microseconds are dropped
    except ValueError:
        raise ValueError("is not a real date and time") from None
    return parsed.astimezone(UTC)


def iso_day(value: Any) -> date:
    value = _checked_text(value, _ISO_DATE, "an ISO 8601 date, e.g. 2024-05-01")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a real date") from None


UtcDateTime = Annotated[
    datetime,
    BeforeValidator(_date_time),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": YEARS_PATTERN}),
]
Day = Annotated[
    date,
    BeforeValidator(iso_day),
    WithJsonSchema({"type": "string", "format": "date", "pattern": YEARS_PATTERN}),
]

_MAX_JSON_DEPTH = 12


def _clean_json(value: Any, depth: int = 0) -> Any:
    """Values both JSON columns store: no NUL characters, finite numbers, bounded depth."""
    if depth > _MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {_MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("strings must not contain NUL characters")
    elif isinstance(value, float):
        if not math.isfinite(value) or abs(value) > MAX_JSON_NUMBER:
            raise ValueError(f"numbers must be finite and within ±{MAX_JSON_NUMBER}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _clean_json(key, depth + 1)
            _clean_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _clean_json(item, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_JSON_NUMBER:
        raise ValueError(f"numbers must be within ±{MAX_JSON_NUMBER}")
    return value


JsonObject = Annotated[
    dict[str, Any], AfterValidator(_clean_json), WithJsonSchema(JSON_OBJECT_MARKER)
]
_NO_NUL_TEXT: JsonDict = {"type": "string", "pattern": NO_NUL}
# What the markers above stand for in the document.
JSON_VALUE_SCHEMAS: dict[str, JsonDict] = {
    "JsonObject": {
        "type": "object",
        "description": f"Free-form JSON, nested at most {_MAX_JSON_DEPTH} levels.",
        "propertyNames": _NO_NUL_TEXT,
        "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
    },
    "JsonValue": {
        "anyOf": [
            _NO_NUL_TEXT,
            {"type": "number", "minimum": -MAX_JSON_NUMBER, "maximum": MAX_JSON_NUMBER},
            {"type": "boolean"},
            {"type": "null"},
            {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
            {"$ref": "#/components/schemas/JsonObject"},
        ]
    },
}


class Body(BaseModel):
    """A JSON request body, strict: unknown fields are refused and nothing is coerced (``0`` is
    not ``false``, ``"5"`` is not ``5``), so what passes is what the document says."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """Query parameters: unknown ones are refused; values are text, parsed as documented."""

    model_config = ConfigDict(extra="forbid", strict=True)


def omitted(**kwargs: Any) -> Any:
    """A PATCH field that may be left out but is never ``null`` (its type says what it takes)."""
    return Field(None, json_schema_extra=_no_default, **kwargs)


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class PageQuery(Query):
    limit: QueryInt = Field(50, ge=1, le=500, description="Items per page (at most 500).")
    offset: QueryInt = Field(0, ge=0, le=MAX_ID, description="Items to skip.")


class PageMeta(BaseModel):
    limit: int
    offset: int
    next_offset: int | None = Field(description="The offset of the next page; null on the last.")


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    error: ErrorDetail


class Deleted(BaseModel):
    deleted: Literal[True] = True
