"""The inbox: threads with unread badges, one person's thread (everything sent to them on every
channel and everything they wrote, newest last), and the answer box.

An answer is an ordinary broadcast through the composer and the outbox to that one recipient on
Telegram, marked as a reply so the Telegram channel gives it the replies' priority on the shared
budget; it then shows in the thread with its delivery status like any other message.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from admin_api.console.pages import (
    actor,
    api_context,
    flash,
    form,
    page_request,
    redirect,
    render,
    text_field,
    tr,
    user,
)
from admin_api.console.views_recipients import kind_of, recipient_id
from admin_api.context import ApiContext
from channels.composition import REPLY_EXTRA_KEY, ComposeRequest, CompositionError
from channels.personalise import as_received
from channels.telegram_text import TELEGRAM_TEXT_LIMIT
from persistence.common_queries import PageRequest
from persistence.inbox_queries import mark_read, require_recipient, thread, threads
from persistence.models import Direction

Route = tuple[str, str, Any, str]
THREAD_PAGE = 50


async def inbox_page(request: web.Request) -> web.Response:
    ctx = api_context(request)
    unread_only = request.query.get("unread") == "1"
    async with ctx.sessions() as session:
        page = await threads(
            session,
            ctx.recipient_kinds,
            user(request),
            page_request(request),
            unread_only=unread_only,
        )
    return await render(request, "inbox.html", {"page": page, "unread_only": unread_only})


async def _thread_context(request: web.Request) -> dict[str, Any]:
    """The thread's page (newest last), after recording the caller's read receipts."""
    ctx = api_context(request)
    kind = kind_of(request)
    rid = recipient_id(request)
    me = user(request)
    offset = page_request(request).offset
    async with ctx.sessions.begin() as session:
        record = await require_recipient(session, ctx.recipient_kinds, me, kind.name, rid)
        result = await thread(
            session, ctx.recipient_kinds, me, kind.name, rid, PageRequest(THREAD_PAGE, offset)
        )
        for entry in result.entries.items:
            if entry.message.direction == Direction.RECEIVED and not entry.read_by_me:
                await mark_read(session, ctx.recipient_kinds, me, entry.message.id, ctx.clock())
    return {
        "kind": kind.name,
        "record": record,
        "entries": list(reversed(result.entries.items)),
        "page": result.entries,
        "unread": result.unread,
        "limit": TELEGRAM_TEXT_LIMIT,
        # What each recipient got: a personalised broadcast rendered with its stored values.
        "received": lambda m, d: as_received(m.subject, m.body, d.params),
    }


async def thread_page(request: web.Request) -> web.Response:
    context = await _thread_context(request)
    return await render(
        request,
        "thread.html",
        {**context, "answer_key": secrets.token_urlsafe(16), "error": "", "text": ""},
    )


async def thread_entries(request: web.Request) -> web.Response:
    """The messages alone (htmx refreshes them, so delivery statuses and new replies appear)."""
    return await render(request, "_thread_entries.html", await _thread_context(request))


async def answer(request: web.Request) -> web.Response:
    ctx = api_context(request)
    kind = kind_of(request)
    rid = recipient_id(request)
    data = await form(request)
    text = data.get("text", "")
    text = text if isinstance(text, str) else ""
    key = text_field(data, "key", 64) or secrets.token_urlsafe(16)
    compose = ComposeRequest(
        channels=["telegram"],
        body=text,
        recipients={kind.name: [rid]},
        include_related=False,
        idempotency_key=f"console-answer:{key}",
        extra={REPLY_EXTRA_KEY: True},
    )
    error = ""
    try:
        plan = await ctx.composer.presend(user(request), compose)
        telegram = plan.channels[0].classification
        if plan.not_visible:
            error = tr(request, "This recipient does not exist or is not yours.")
        elif not telegram.valid:
            reason = telegram.invalid[0].reason if telegram.invalid else ""
            error = tr(
                request, "This person cannot be reached on Telegram: %(reason)s", reason=reason
            )
        else:
            await ctx.composer.send(user(request), compose, actor(request))
    except CompositionError as exc:
        error = exc.message
    if error:
        context = await _thread_context(request)
        return await render(
            request,
            "thread.html",
            {**context, "answer_key": key, "error": error, "text": text},
            422,
        )
    await flash(request, tr(request, "Your answer is on its way."))
    return redirect(f"/inbox/{kind.name}/{rid}")


def routes(_context: ApiContext) -> list[Route]:
    one = r"/inbox/{kind}/{recipient_id:\d+}"
    return [
        ("GET", "/inbox", inbox_page, "inbox"),
        ("GET", one, thread_page, "thread"),
        ("GET", one + "/entries", thread_entries, "thread_entries"),
        ("POST", one + "/answer", answer, "answer"),
    ]
