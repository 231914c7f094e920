"""Types every request and response schema shares: safe strings, ids, UTC times, pages, errors.

Limits here mirror the database columns, so a value the API accepts is one both SQLite and
PostgreSQL store (no NUL characters, ids within the column's integer range, bounded lengths).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

NO_NUL = r"^[^\x00]*$"
MAX_ID = 2_147_483_647  # 32-bit integer columns (recipients, typologies, users)
MAX_BIG_ID = 9_223_372_036_854_775_807  # 64-bit columns (messages, deliveries)
MAX_CHAT_ID = 2**53

ChannelName = Literal["telegram", "email", "sms", "storage"]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
BigId = Annotated[int, Field(ge=1, le=MAX_BIG_ID)]


Name = Annotated[str, Field(min_length=1, max_length=255, pattern=NO_NUL)]
Short = Annotated[str, Field(max_length=32, pattern=NO_NUL)]
EmailText = Annotated[str, Field(max_length=254, pattern=NO_NUL)]
Subject = Annotated[str, Field(max_length=1000, pattern=NO_NUL)]
LongText = Annotated[str, Field(max_length=100_000, pattern=NO_NUL)]
HtmlText = Annotated[str, Field(max_length=200_000, pattern=NO_NUL)]
Note = Annotated[str, Field(max_length=10_000, pattern=NO_NUL)]
Search = Annotated[str, Field(min_length=1, max_length=255, pattern=NO_NUL)]


def _utc(value: datetime) -> datetime:
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of the supported date range") from None


def _check_range(value: datetime) -> datetime:
    if not datetime(1970, 1, 1, tzinfo=UTC) <= value < datetime(9000, 1, 1, tzinfo=UTC):
        raise ValueError("must be between 1970 and 9000")
    return value


UtcDateTime = Annotated[datetime, AfterValidator(_utc), AfterValidator(_check_range)]
Day = Annotated[date, Field(ge=date(1970, 1, 1), le=date(8999, 12, 31))]

_MAX_JSON_DEPTH = 12


def _clean_json(value: Any, depth: int = 0) -> Any:
    """Values both JSON columns store: no NUL characters, finite numbers, bounded depth."""
    if depth > _MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {_MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("strings must not contain NUL characters")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            _clean_json(key, depth + 1)
            _clean_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _clean_json(item, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63 - 1:
        raise ValueError("integers must fit in 64 bits")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_clean_json)]


class Body(BaseModel):
    """A JSON request body: unknown fields are refused, so typos do not pass unnoticed."""

    model_config = ConfigDict(extra="forbid")


class Query(BaseModel):
    """Query parameters (unknown ones are ignored)."""

    model_config = ConfigDict(extra="ignore")


class PageQuery(Query):
    limit: int = Field(50, ge=1, le=500, description="Items per page (at most 500).")
    offset: int = Field(0, ge=0, le=MAX_ID, description="Items to skip.")


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
