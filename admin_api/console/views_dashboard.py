"""The dashboard: recent broadcasts with live progress, unread replies, the queue, the latest
failures, Skebby credits (superusers) and the readiness of each part (the /readyz checks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from admin_api.console.pages import api_context, render, user
from admin_api.context import ApiContext
from admin_api.errors import ApiError
from admin_api.views_ops import read_skebby_status, run_checks
from persistence.common_queries import PageRequest
from persistence.inbox_queries import threads
from persistence.message_queries import MessageFilter, MessageView, list_messages, recent_failures
from persistence.models import Direction
from persistence.outbox import OPEN_MESSAGE_STATUSES, queue_depth

Route = tuple[str, str, Any, str]
RECENT_BROADCASTS = 8
ACTIVE = OPEN_MESSAGE_STATUSES  # a broadcast still being delivered (or waiting to be)


@dataclass
class BroadcastSummary:
    """One broadcast: its message per channel (the page groups them by ``broadcast_id``)."""

    broadcast_id: str
    messages: list[MessageView]

    @property
    def first(self) -> MessageView:
        return self.messages[0]

    @property
    def active(self) -> bool:
        return any(view.message.status in ACTIVE for view in self.messages)


def group_broadcasts(views: Sequence[MessageView], limit: int) -> list[BroadcastSummary]:
    grouped: dict[str, BroadcastSummary] = {}
    for view in views:
        key = view.message.broadcast_id
        if key not in grouped:
            if len(grouped) == limit:
                continue
            grouped[key] = BroadcastSummary(key, [])
        grouped[key].messages.append(view)
    for summary in grouped.values():
        summary.messages.sort(key=lambda v: v.message.id)
    return list(grouped.values())


async def dashboard(request: web.Request) -> web.Response:
    ctx = api_context(request)
    me = user(request)
    async with ctx.sessions() as session:
        recent = await list_messages(
            session,
            ctx.recipient_kinds,
            me,
            MessageFilter(direction=Direction.SENT.value),
            PageRequest(limit=RECENT_BROADCASTS * 4, offset=0),
        )
        unread = await threads(
            session, ctx.recipient_kinds, me, PageRequest(limit=10, offset=0), unread_only=True
        )
        depth = await queue_depth(session)
        failures = await recent_failures(session, ctx.recipient_kinds, me, 8)
    broadcasts = group_broadcasts(recent.items, RECENT_BROADCASTS)
    active_ids = [v.message.id for b in broadcasts if b.active for v in b.messages]
    return await render(
        request,
        "dashboard.html",
        {
            "broadcasts": broadcasts,
            "active_ids": active_ids,
            "unread": unread.items,
            "depth": depth,
            "failures": failures,
            "skebby": await _skebby(ctx) if me.is_superuser else None,
            "checks": (await run_checks(request.app))[0],
        },
    )


async def _skebby(ctx: ApiContext) -> dict[str, Any]:
    try:
        return {"ok": True, "status": await read_skebby_status(ctx)}
    except ApiError as exc:
        return {"ok": False, "configured": exc.status != 503, "message": exc.message}


def routes(_context: ApiContext) -> list[Route]:
    return [("GET", "/", dashboard, "dashboard")]
