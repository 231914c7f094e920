"""A broadcast's page: live counters per channel (SSE), its deliveries, and cancelling it."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from aiohttp import web
from aiohttp_sse import sse_response
from sqlalchemy.ext.asyncio import AsyncSession

from admin_api.console.pages import (
    PageError,
    actor,
    api_context,
    flash,
    page_request,
    redirect,
    render,
    state,
    text_field,
    tr,
    user,
)
from admin_api.context import ApiContext
from persistence.common_queries import ConflictError, NotFoundError
from persistence.inbox_queries import recipient_names
from persistence.message_queries import (
    MessageView,
    broadcast_messages,
    cancellable_message,
    list_deliveries,
    visible_message_ids,
)
from persistence.models import DeliveryStatus, MessageStatus
from persistence.outbox import OPEN_MESSAGE_STATUSES
from persistence.recall import is_recall, start_recall

Route = tuple[str, str, Any, str]
_BROADCAST_ID = re.compile(r"^[0-9a-f-]{1,36}$")
MAX_WATCHED = 50
DELIVERY_STATUSES = [s.value for s in DeliveryStatus if s is not DeliveryStatus.RECEIVED]


def broadcast_id(request: web.Request) -> str:
    raw = request.match_info["broadcast_id"]
    if not _BROADCAST_ID.match(raw):
        raise NotFoundError(f"broadcast {raw}")
    return raw


async def _views(request: web.Request) -> list[MessageView]:
    ctx = api_context(request)
    async with ctx.sessions() as session:
        return await _broadcast(session, request)


async def _broadcast(session: AsyncSession, request: web.Request) -> list[MessageView]:
    ctx = api_context(request)
    return await broadcast_messages(
        session, ctx.recipient_kinds, user(request), broadcast_id(request)
    )


def _chosen(views: list[MessageView], request: web.Request) -> MessageView:
    wanted = request.query.get("channel")
    return next((v for v in views if v.message.channel == wanted), views[0])


async def _page_context(request: web.Request) -> dict[str, Any]:
    """The broadcast and one page of its deliveries, read in one database session."""
    ctx = api_context(request)
    status = request.query.get("status") or None
    if status not in DELIVERY_STATUSES:
        status = None
    search = text_field(request.query, "q", 100) or None
    async with ctx.sessions() as session:
        views = await _broadcast(session, request)
        view = _chosen(views, request)
        page = await list_deliveries(
            session,
            ctx.recipient_kinds,
            user(request),
            view.message.id,
            status=status,
            page=page_request(request),
            search=search,
        )
        names = await recipient_names(
            session, ctx.recipient_kinds, [(d.recipient_kind, d.recipient_id) for d in page.items]
        )
    return {
        "bid": broadcast_id(request),
        "views": views,
        "view": view,
        "deliveries": page,
        "names": names,
        "status_filter": status or "",
        "search": search or "",
        "statuses": DELIVERY_STATUSES,
    }


async def broadcast_page(request: web.Request) -> web.Response:
    context = await _page_context(request)
    views: list[MessageView] = context["views"]
    cancellable = any(v.message.status in OPEN_MESSAGE_STATUSES for v in views)
    recallable = _recallable(views)
    live = any(v.message.status not in (MessageStatus.DONE, MessageStatus.CANCELLED) for v in views)
    return await render(
        request,
        "broadcast.html",
        {
            **context,
            "first": views[0].message,
            "cancellable": cancellable,
            "recallable": recallable,
            "live": live,
        },
    )


async def deliveries_partial(request: web.Request) -> web.Response:
    """The deliveries table alone (htmx swaps it when a filter or a page changes)."""
    return await render(request, "_deliveries.html", await _page_context(request))


async def cancel_confirm(request: web.Request) -> web.Response:
    views = await _views(request)
    return await render(
        request,
        "broadcast_cancel.html",
        {"views": views, "first": views[0].message, "bid": broadcast_id(request)},
    )


async def cancel(request: web.Request) -> web.Response:
    """Cancel every channel's remaining deliveries (the same rule and call as the API's)."""
    ctx = api_context(request)
    views = await _views(request)
    me = user(request)
    cancelled = 0
    refused = 0
    for view in views:
        try:
            async with ctx.sessions() as session:
                await cancellable_message(session, ctx.recipient_kinds, me, view.message.id)
        except ConflictError:
            refused += 1
            continue
        cancelled += await ctx.cancel(view.message.id, actor(request))
    if refused == len(views):
        raise PageError(409, tr(request, "Every delivery of this broadcast is already final."))
    await flash(
        request, tr(request, "Cancelled: %(count)s deliveries will not be sent.", count=cancelled)
    )
    return redirect(f"/broadcasts/{broadcast_id(request)}")


def _recallable(views: list[MessageView]) -> bool:
    """A Telegram channel with something pending or delivered, and no recall asked yet."""
    if any(is_recall(v.message) for v in views):
        return False
    return any(
        v.message.channel == "telegram"
        and (v.message.status in OPEN_MESSAGE_STATUSES or v.counters.get(DeliveryStatus.SUCCESS))
        for v in views
    )


async def recall_confirm(request: web.Request) -> web.Response:
    views = await _views(request)
    return await render(
        request,
        "broadcast_recall.html",
        {"views": views, "first": views[0].message, "bid": broadcast_id(request)},
    )


async def recall(request: web.Request) -> web.Response:
    """Cancel what is pending and delete what Telegram delivered (the API's recall)."""
    ctx = api_context(request)
    views = [v for v in await _views(request) if not is_recall(v.message)]
    me = user(request)
    cancelled = 0
    for view in views:
        if view.message.status in OPEN_MESSAGE_STATUSES:
            cancelled += await ctx.cancel(view.message.id, None)
    try:
        async with ctx.sessions.begin() as session:
            started = await start_recall(
                session,
                [v.message for v in views],
                me,
                ctx.clock(),
                actor(request),
                cancelled=cancelled,
            )
    except ConflictError:
        raise PageError(409, tr(request, "There is nothing left to recall.")) from None
    said = tr(
        request,
        "Recall started: %(cancelled)s deliveries cancelled, %(deleted)s Telegram messages "
        "being deleted.",
        cancelled=started.cancelled,
        deleted=started.to_delete,
    )
    if started.in_flight:
        said += " " + tr(
            request,
            "%(count)s more still being sent will be deleted once delivered.",
            count=started.in_flight,
        )
    await flash(request, said)
    return redirect(f"/broadcasts/{broadcast_id(request)}")


async def _message_ids(request: web.Request) -> list[int]:
    raw = request.query.getall("m", [])[:MAX_WATCHED]
    ids = [int(v) for v in raw if v.isdigit() and len(v) < 19]
    if not ids:
        raise NotFoundError("messages")
    ctx = api_context(request)
    async with ctx.sessions() as session:
        visible = await visible_message_ids(session, ctx.recipient_kinds, user(request), ids)
    if len(visible) != len(set(ids)):
        raise NotFoundError("messages")
    return visible


async def _stream(request: web.Request, ids: list[int]) -> web.StreamResponse:
    """Server-Sent Events: the messages' counters as they change, until they are all final."""
    hub = state(request).hub
    async with sse_response(request) as sse:
        async with contextlib.aclosing(hub.watch(ids)) as snapshots:
            async for snap in snapshots:
                await sse.send(snap.payload, event="progress")
        await sse.send("{}", event="end")
    return sse


async def progress_events(request: web.Request) -> web.StreamResponse:
    """The messages named by ``m`` (the dashboard's broadcasts in progress)."""
    return await _stream(request, await _message_ids(request))


async def broadcast_events(request: web.Request) -> web.StreamResponse:
    return await _stream(request, [v.message.id for v in await _views(request)])


def routes(_context: ApiContext) -> list[Route]:
    base = "/broadcasts/{broadcast_id}"
    return [
        ("GET", base, broadcast_page, "broadcast"),
        ("GET", base + "/deliveries", deliveries_partial, "deliveries"),
        ("GET", base + "/cancel", cancel_confirm, "cancel_confirm"),
        ("POST", base + "/cancel", cancel, "cancel"),
        ("GET", base + "/recall", recall_confirm, "recall_confirm"),
        ("POST", base + "/recall", recall, "recall"),
        ("GET", base + "/events", broadcast_events, "broadcast_events"),
        ("GET", "/progress", progress_events, "progress"),
    ]
