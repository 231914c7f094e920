"""Unsubscribe links, outside the login: the token in the path names one person and channel.

``GET /unsubscribe/{token}`` shows a small confirmation page; its button posts to the same
address. ``POST /unsubscribe/{token}`` unsubscribes at once: it is also the RFC 8058 one-click
target that mail clients post ``List-Unsubscribe=One-Click`` to, so it needs no page, no session
and no CSRF token (the signed token is the only permission, and it permits only this). A forged
or altered token is refused; saying it twice changes nothing the second time.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin_api.console.pages import PageError, api_context, form, render
from admin_api.routing import origin
from channels.unsubscribe import UnsubscribeRef
from persistence.audit import Actor
from persistence.models import PreferenceSource
from persistence.preferences import (
    PREFERENCE_CHANNELS,
    PreferenceChoice,
    recipient_name,
    refuses,
    set_channel,
)

Route = tuple[str, str, Any, str]
ONE_CLICK = "List-Unsubscribe=One-Click"


async def _reference(request: web.Request) -> tuple[UnsubscribeRef, str]:
    """The person the token names, and their name; 404 for any token that is not ours."""
    ctx = api_context(request)
    links = ctx.unsubscribe
    ref = links.read(request.match_info["token"]) if links is not None else None
    if ref is None or ref.kind not in ctx.recipient_kinds or ref.channel not in PREFERENCE_CHANNELS:
        raise PageError(404, "")
    async with ctx.sessions() as session:
        name = await recipient_name(session, ctx.recipient_kinds.get(ref.kind), ref.id)
    if name is None:
        raise PageError(404, "")
    return ref, name


async def confirm_page(request: web.Request) -> web.Response:
    ref, name = await _reference(request)
    ctx = api_context(request)
    async with ctx.sessions() as session:
        done = await refuses(session, ref.kind, ref.id, ref.channel)
    return await render(
        request,
        "unsubscribe.html",
        {"name": name, "channel": ref.channel, "done": done, "token": request.match_info["token"]},
    )


async def unsubscribe(request: web.Request) -> web.StreamResponse:
    ref, name = await _reference(request)
    ctx = api_context(request)
    data = await form(request)
    async with ctx.sessions.begin() as session:
        await set_channel(
            session,
            ctx.recipient_kinds.get(ref.kind),
            ref.id,
            PreferenceChoice(ref.channel, None, False),
            source=PreferenceSource.PERSON,
            actor=Actor.person(ref.kind, ref.id, **origin(request)),
            via="one-click" if data.get("List-Unsubscribe") == "One-Click" else "unsubscribe page",
            now=ctx.clock(),
        )
    if "confirm" not in data:  # a mail client's one-click: no page to show anyone
        return web.Response(text="unsubscribed\n", headers={"Cache-Control": "no-store"})
    return await render(
        request,
        "unsubscribe.html",
        {"name": name, "channel": ref.channel, "done": True, "token": request.match_info["token"]},
    )


def routes(_context: object) -> list[Route]:
    return [
        ("GET", "/unsubscribe/{token}", confirm_page, "unsubscribe"),
        ("POST", "/unsubscribe/{token}", unsubscribe, "unsubscribe_post"),
    ]
