"""All sent and received messages, with the API's filters and pagination."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from admin_api.console.pages import api_context, i18n, int_field, page_request, render, user
from admin_api.context import ApiContext
from channels.composition import CHANNELS
from persistence.common_queries import PageRequest
from persistence.message_queries import MessageFilter, list_messages
from persistence.models import Direction, MessageStatus, MessageTypology
from persistence.typology_queries import list_typologies

Route = tuple[str, str, Any, str]


def day_start(raw: str, zone: str, *, end: bool) -> datetime | None:
    """A ``YYYY-MM-DD`` day in the user's time zone: its start (or, for ``end``, the next day's)."""
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return None
    if end:
        day += timedelta(days=1)
    return datetime.combine(day, time(), tzinfo=ZoneInfo(zone))


async def messages_page(request: web.Request) -> web.Response:
    ctx = api_context(request)
    query = request.query
    zone = i18n(request).timezone
    channel = query.get("channel") if query.get("channel") in CHANNELS else None
    status = query.get("status") if query.get("status") in set(MessageStatus) else None
    direction = query.get("direction") if query.get("direction") in set(Direction) else None
    filters = MessageFilter(
        channel=channel,
        status=status,
        typology_id=int_field(query, "typology_id"),
        direction=direction,
        created_from=day_start(query.get("from", ""), zone, end=False),
        created_to=day_start(query.get("to", ""), zone, end=True),
        sender_id=int_field(query, "sender_id"),
    )
    async with ctx.sessions() as session:
        page = await list_messages(
            session, ctx.recipient_kinds, user(request), filters, page_request(request)
        )
        typologies = await list_typologies(
            session, MessageTypology, None, PageRequest(limit=500, offset=0)
        )
    return await render(
        request,
        "messages.html",
        {
            "page": page,
            "filters": filters,
            "channels": CHANNELS,
            "statuses": [s.value for s in MessageStatus],
            "typologies": typologies.items,
            "raw": query,
        },
    )


def routes(_context: ApiContext) -> list[Route]:
    return [("GET", "/messages", messages_page, "messages")]
