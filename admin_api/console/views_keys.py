"""API keys: the caller's keys (a superuser sees everyone's), create one (shown once), revoke."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin_api.console.pages import (
    actor,
    api_context,
    flash,
    form,
    redirect,
    render,
    text_field,
    tr,
    user,
)
from admin_api.context import ApiContext
from persistence.api_keys import issue_key_for, list_keys, revoke_key
from persistence.common_queries import NotFoundError

Route = tuple[str, str, Any, str]
NAME_LIMIT = 100


async def keys_page(request: web.Request) -> web.Response:
    async with api_context(request).sessions() as session:
        keys = await list_keys(session, user(request))
    return await render(request, "keys.html", {"keys": keys, "error": "", "name": ""})


async def create(request: web.Request) -> web.Response:
    ctx = api_context(request)
    name = text_field(await form(request), "name", 500)
    if len(name) > NAME_LIMIT:
        async with ctx.sessions() as session:
            keys = await list_keys(session, user(request))
        error = tr(request, "At most %(limit)s characters.", limit=NAME_LIMIT)
        return await render(request, "keys.html", {"keys": keys, "error": error, "name": name}, 422)
    async with ctx.sessions.begin() as session:
        issued = await issue_key_for(session, user(request), name, actor=actor(request))
    # Shown in this answer only: it is not stored anywhere but as a hash.
    return await render(request, "key_created.html", {"key": issued.key, "name": name})


def _key_id(request: web.Request) -> int:
    raw = request.match_info["key_id"]
    if not raw.isdigit() or len(raw) > 10:
        raise NotFoundError(f"API key {raw}")
    return int(raw)


async def revoke_confirm(request: web.Request) -> web.Response:
    async with api_context(request).sessions() as session:
        keys = {k.id: k for k in await list_keys(session, user(request))}
    key = keys.get(_key_id(request))
    if key is None:
        raise NotFoundError("API key")
    return await render(request, "key_revoke.html", {"key": key})


async def revoke(request: web.Request) -> web.Response:
    ctx = api_context(request)
    async with ctx.sessions.begin() as session:
        key = await revoke_key(
            session, user(request), _key_id(request), ctx.clock(), actor=actor(request)
        )
        prefix = key.prefix
    await flash(
        request,
        tr(
            request,
            "The key hk_%(prefix)s… is revoked; it stops working at once.",
            prefix=prefix,
        ),
    )
    return redirect("/keys")


def routes(_context: ApiContext) -> list[Route]:
    return [
        ("GET", "/keys", keys_page, "keys"),
        ("POST", "/keys", create, "key_create"),
        ("GET", r"/keys/{key_id:\d+}/revoke", revoke_confirm, "key_revoke_confirm"),
        ("POST", r"/keys/{key_id:\d+}/revoke", revoke, "key_revoke"),
    ]
