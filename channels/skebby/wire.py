"""How values travel to and from Skebby: dates, query values, ids in Location headers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from channels.skebby.models import QueryValue, SkebbyBoolean, SkebbyReply

_DELIVERY_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S", "%Y-%m-%dT%H:%M:%S")


def skebby_date(value: datetime | str, pattern: str = "%Y%m%d%H%M%S") -> str:
    """A date as Skebby reads it (``yyyyMMddHHmmss`` unless ``pattern`` says otherwise); aware
    datetimes are converted to UTC first, strings pass as they are."""
    if isinstance(value, str):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime(pattern)


def date_window(
    date_from: datetime | str | None, date_to: datetime | str | None, timezone: str | None
) -> dict[str, QueryValue]:
    """The ``from``/``to``/``timezone`` query of Skebby's history calls."""
    params: dict[str, QueryValue] = {}
    if date_from is not None:
        params["from"] = skebby_date(date_from)
    if date_to is not None:
        params["to"] = skebby_date(date_to)
    aware = any(isinstance(d, datetime) and d.tzinfo is not None for d in (date_from, date_to))
    if timezone is not None or aware:
        params["timezone"] = timezone or "UTC"
    return params


def paging(page_number: int, page_size: int) -> dict[str, QueryValue]:
    return {"pageNumber": page_number, "pageSize": page_size}


def parse_delivery_date(value: object) -> datetime | None:
    """A delivery date as Skebby writes it, in UTC (None when absent or unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    for fmt in _DELIVERY_DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def query_params(params: Mapping[str, QueryValue] | None) -> dict[str, str] | None:
    """Query values as strings, booleans as Skebby spells them, None values left out."""
    if params is None:
        return None
    return {
        key: SkebbyBoolean.of(value).value if isinstance(value, bool) else str(value)
        for key, value in params.items()
        if value is not None
    }


def id_from_location(reply: SkebbyReply) -> str:
    """The id of a created object, from the ``Location`` header Skebby answers with."""
    location = reply.headers.get("Location", "")
    return location.rstrip("/").rsplit("/", 1)[-1]
