"""Broadcasts as one object: read, list, cancel every channel at once, recall."""

from __future__ import annotations

import re

from aiohttp import web

from admin_api.errors import not_found
from admin_api.routing import Operation as Op
from admin_api.routing import (
    Response,
    api_actor,
    context,
    current_user,
    page_of,
    parse_query,
    render,
    render_page,
    require_own_filter,
)
from admin_api.schemas_broadcasts import (
    BROADCAST_ID_PATTERN,
    BroadcastCancelOut,
    BroadcastChannelOut,
    BroadcastOut,
    BroadcastPage,
    BroadcastQuery,
    BroadcastRecallOut,
    BroadcastStatus,
    RecallOut,
)
from persistence.broadcast_queries import (
    BroadcastFilter,
    BroadcastView,
    get_broadcast,
    list_broadcasts,
)
from persistence.common_queries import ConflictError
from persistence.outbox import OPEN_MESSAGE_STATUSES
from persistence.recall import RECALL_EXTRA_KEY, start_recall

_BROADCAST_ID = re.compile(BROADCAST_ID_PATTERN)
BROADCAST_ID = {
    "broadcast_id": {
        "type": "string",
        "pattern": BROADCAST_ID_PATTERN,
        "description": "The broadcast id (a UUID), as POST /messages answers it.",
    }
}


def broadcast_out(view: BroadcastView) -> BroadcastOut:
    first = view.first
    return BroadcastOut(
        id=view.broadcast_id,
        status=BroadcastStatus(view.status),
        channels=[v.message.channel for v in view.channels],
        subject=first.subject,
        body=first.body,
        typology_id=first.typology_id,
        sender_id=first.sender_id,
        sender_name=first.sender_name,
        created_at=first.created_at,
        send_at=first.send_at,
        template_id=first.template_id,
        template_version=first.template_version,
        is_test=first.is_test,
        counters=view.counters,
        messages=[
            BroadcastChannelOut(
                message_id=v.message.id,
                channel=v.message.channel,
                status=v.message.status,
                total=v.message.total,
                counters=v.counters,
                cost_per_unit=str(v.message.cost_per_unit),
                finished_at=v.message.finished_at,
            )
            for v in view.channels
        ],
        recalls=[
            RecallOut(
                message_id=v.message.id,
                recalls_message_id=int(v.message.extra[RECALL_EXTRA_KEY]),
                status=v.message.status,
                total=v.message.total,
                counters=v.counters,
                created_at=v.message.created_at,
            )
            for v in view.recalls
        ],
    )


def _broadcast_id(request: web.Request) -> str:
    raw = request.match_info["broadcast_id"]
    if not _BROADCAST_ID.match(raw):
        raise not_found(f"broadcast {raw}")
    return raw


async def _read(request: web.Request) -> BroadcastView:
    ctx = context(request)
    async with ctx.sessions() as session:
        return await get_broadcast(
            session, ctx.recipient_kinds, current_user(request), _broadcast_id(request)
        )


async def get_broadcast_view(request: web.Request) -> web.Response:
    """One broadcast: every channel's message and live counters."""
    return render(broadcast_out(await _read(request)))


async def list_broadcasts_view(request: web.Request) -> web.Response:
    """Broadcasts the caller may see, newest first, filtered."""
    ctx = context(request)
    query = parse_query(request, BroadcastQuery)
    require_own_filter(request, "sender_id", query.sender_id)
    filters = BroadcastFilter(
        status=query.status.value if query.status else None,
        channel=query.channel,
        typology_id=query.typology_id,
        sender_id=query.sender_id,
        created_from=query.created_from,
        created_to=query.created_to,
    )
    async with ctx.sessions() as session:
        page = await list_broadcasts(
            session, ctx.recipient_kinds, current_user(request), filters, page_of(query)
        )
    return render_page(BroadcastPage, page, broadcast_out)


async def _cancel_open(request: web.Request, view: BroadcastView) -> int:
    """Cancel every channel still open; how many deliveries will not be sent."""
    ctx = context(request)
    cancelled = 0
    for channel in view.channels:
        if channel.message.status in OPEN_MESSAGE_STATUSES:
            cancelled += await ctx.cancel(channel.message.id, api_actor(request))
    return cancelled


async def cancel_broadcast(request: web.Request) -> web.Response:
    """Cancel every channel's remaining deliveries at once."""
    view = await _read(request)
    if not any(v.message.status in OPEN_MESSAGE_STATUSES for v in view.channels):
        raise ConflictError("every delivery of this broadcast is already final")
    cancelled = await _cancel_open(request, view)
    return render(
        BroadcastCancelOut(cancelled=cancelled, broadcast=broadcast_out(await _read(request)))
    )


async def recall_broadcast(request: web.Request) -> web.Response:
    """Cancel what is pending and delete every Telegram message already delivered."""
    ctx = context(request)
    view = await _read(request)
    cancelled = 0
    for channel in view.channels:
        if channel.message.status in OPEN_MESSAGE_STATUSES:
            cancelled += await ctx.cancel(channel.message.id, None)
    async with ctx.sessions.begin() as session:
        started = await start_recall(
            session,
            [v.message for v in view.channels],
            current_user(request),
            ctx.clock(),
            api_actor(request),
            cancelled=cancelled,
        )
    return render(
        BroadcastRecallOut(
            cancelled=started.cancelled,
            to_delete=started.to_delete,
            in_flight=started.in_flight,
            broadcast=broadcast_out(await _read(request)),
        ),
        202,
    )


def operations() -> list[Op]:
    base = "/api/v1/broadcasts"
    return [
        Op(
            "GET",
            base,
            list_broadcasts_view,
            "List broadcasts",
            "broadcasts",
            {200: Response("A page of broadcasts.", BroadcastPage)},
            query=BroadcastQuery,
            errors=(403,),
        ),
        Op(
            "GET",
            base + "/{broadcast_id}",
            get_broadcast_view,
            "Read a broadcast: every channel and its live counters",
            "broadcasts",
            {200: Response("The broadcast.", BroadcastOut)},
            path_params=BROADCAST_ID,
        ),
        Op(
            "POST",
            base + "/{broadcast_id}/cancel",
            cancel_broadcast,
            "Cancel every channel of a broadcast",
            "broadcasts",
            {200: Response("What was cancelled.", BroadcastCancelOut)},
            path_params=BROADCAST_ID,
            errors=(409,),
        ),
        Op(
            "POST",
            base + "/{broadcast_id}/recall",
            recall_broadcast,
            "Recall a broadcast: cancel what is pending, delete what Telegram delivered",
            "broadcasts",
            {202: Response("The recall is under way.", BroadcastRecallOut)},
            path_params=BROADCAST_ID,
            errors=(409,),
            description=(
                "Deliveries still pending are cancelled on every channel, and each Telegram "
                "message already delivered is deleted from its chat through the outbox, under "
                "the bot's rate limits. Telegram lets a bot delete its messages for 48 hours; "
                "each delivery then says `recalled`, or keeps `success` with the reason "
                "Telegram refused in `status_detail`. A send still in flight when the recall "
                "starts (`in_flight`) is deleted once it is delivered."
            ),
        ),
    ]
