"""Inbox and replies: a recipient's thread, the list of threads with unread counts, receipts."""

from __future__ import annotations

from aiohttp import web

from admin_api.routing import Operation as Op
from admin_api.routing import (
    Response,
    context,
    current_user,
    id_param,
    page_of,
    parse_query,
    path_id,
    recipient_kind,
    render,
    render_page,
)
from admin_api.schemas import PageQuery
from admin_api.schemas_messages import ReadOut
from admin_api.schemas_recipients import (
    InboxPage,
    InboxQuery,
    ThreadEntryOut,
    ThreadOut,
    ThreadSummaryOut,
)
from admin_api.views_messages import MESSAGE_ID
from channels.personalise import as_received
from persistence.inbox_queries import ThreadEntry, ThreadSummary, mark_read, thread, threads
from persistence.models import Direction


def _entry(entry: ThreadEntry) -> ThreadEntryOut:
    m, d = entry.message, entry.delivery
    received = m.direction == Direction.RECEIVED
    subject, body = as_received(m.subject, m.body, d.params)
    return ThreadEntryOut(
        message_id=m.id,
        delivery_id=d.id,
        direction=m.direction,
        channel=d.channel,
        subject=subject,
        body=body,
        status=d.status,
        sender_name=m.sender_name,
        created_at=m.created_at,
        sent_at=d.sent_at,
        read=entry.read_by_me if received else d.read_at is not None,
    )


async def recipient_thread(request: web.Request) -> web.Response:
    """What was sent to a recipient on every channel and what they wrote, newest first."""
    ctx = context(request)
    kind = recipient_kind(request)
    rid = path_id(request, "recipient_id", what=kind.name)
    query = parse_query(request, PageQuery)
    async with ctx.sessions() as session:
        result = await thread(
            session, ctx.recipient_kinds, current_user(request), kind.name, rid, page_of(query)
        )
    page = result.entries
    return render_page(
        ThreadOut, page, _entry, kind=kind.name, recipient_id=rid, unread=result.unread
    )


async def inbox(request: web.Request) -> web.Response:
    """Recipients who wrote in, most recent first, with the caller's unread count per thread."""
    ctx = context(request)
    query = parse_query(request, InboxQuery)
    async with ctx.sessions() as session:
        page = await threads(
            session,
            ctx.recipient_kinds,
            current_user(request),
            page_of(query),
            unread_only=query.unread_only,
        )
    return render_page(InboxPage, page, _summary)


def _summary(t: ThreadSummary) -> ThreadSummaryOut:
    return ThreadSummaryOut(
        kind=t.kind,
        recipient_id=t.recipient_id,
        name=t.name,
        received=t.received,
        unread=t.unread,
        last_received_at=t.last_received_at,
    )


async def read_message(request: web.Request) -> web.Response:
    """Record that the caller read this message (once; repeats keep the first time)."""
    ctx = context(request)
    message_id = path_id(request, "message_id", big=True)
    async with ctx.sessions.begin() as session:
        read_at = await mark_read(
            session, ctx.recipient_kinds, current_user(request), message_id, ctx.clock()
        )
    return render(ReadOut(message_id=message_id, read_at=read_at))


def operations(kind_names: list[str]) -> list[Op]:
    rid = {
        "kind": {"type": "string", "enum": kind_names, "description": "Recipient kind."},
        "recipient_id": id_param("The recipient id."),
    }
    return [
        Op(
            "GET",
            "/api/v1/recipients/{kind}/{recipient_id}/messages",
            recipient_thread,
            "A recipient's thread",
            "inbox",
            {200: Response("A page of the thread, newest first.", ThreadOut)},
            query=PageQuery,
            path_params=rid,
        ),
        Op(
            "GET",
            "/api/v1/inbox",
            inbox,
            "Threads with unread counts",
            "inbox",
            {200: Response("A page of threads.", InboxPage)},
            query=InboxQuery,
        ),
        Op(
            "POST",
            "/api/v1/messages/{message_id}/read",
            read_message,
            "Record the caller's read receipt",
            "inbox",
            {200: Response("When the caller read it.", ReadOut)},
            path_params=MESSAGE_ID,
        ),
    ]
