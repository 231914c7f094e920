"""Webhooks: the signed-in user's endpoints (theirs alone), register one (the secret shown
once), delete one, and each endpoint's recent events with every attempt."""

from __future__ import annotations

import secrets
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
from channels.webhook_urls import UnsafeUrlError, check_url
from persistence import webhook_queries as sql
from persistence.common_queries import NotFoundError
from persistence.models import WebhookEndpoint

Route = tuple[str, str, Any, str]


async def _page(request: web.Request, status: int = 200, **values: Any) -> web.Response:
    async with api_context(request).sessions() as session:
        hooks = await sql.list_endpoints(session, user(request).id)
    context = {
        "hooks": hooks,
        "event_types": sql.EVENT_TYPES,
        "error": "",
        "url": "",
        "chosen": [],
        **values,
    }
    return await render(request, "webhooks.html", context, status)


async def webhooks_page(request: web.Request) -> web.Response:
    return await _page(request)


async def create(request: web.Request) -> web.Response:
    ctx = api_context(request)
    data = await form(request)
    url = text_field(data, "url", 2048)
    chosen = [e for e in data.getall("events", []) if e in sql.EVENT_TYPES]
    if not chosen:
        error = tr(request, "Choose at least one event.")
        return await _page(request, 422, error=error, url=url, chosen=chosen)
    try:
        await check_url(url, ctx.webhook_policy, ctx.webhook_resolve)
    except UnsafeUrlError as exc:
        error = tr(request, "This URL cannot be used: %(reason)s.", reason=str(exc))
        return await _page(request, 422, error=error, url=url, chosen=chosen)
    secret = secrets.token_urlsafe(32)
    async with ctx.sessions.begin() as session:
        endpoint = await sql.create_endpoint(
            session,
            owner_id=user(request).id,
            url=url,
            events=chosen,
            secret=secret,
            actor=actor(request),
        )
        endpoint_id = endpoint.id
    # Shown in this answer only.
    return await render(
        request, "webhook_created.html", {"secret": secret, "url": url, "id": endpoint_id}
    )


def _id(request: web.Request) -> int:
    raw = request.match_info["webhook_id"]
    if not raw.isdigit() or len(raw) > 10:
        raise NotFoundError(f"webhook {raw}")
    return int(raw)


async def _own(request: web.Request) -> WebhookEndpoint:
    async with api_context(request).sessions() as session:
        endpoint = await sql.get_endpoint(session, user(request).id, _id(request))
    if endpoint is None:
        raise NotFoundError("webhook")
    return endpoint


async def events_page(request: web.Request) -> web.Response:
    endpoint = await _own(request)
    async with api_context(request).sessions() as session:
        views = await sql.recent_events(session, endpoint.id, limit=50)
    return await render(request, "webhook_events.html", {"hook": endpoint, "events": views})


async def delete_confirm(request: web.Request) -> web.Response:
    return await render(request, "webhook_delete.html", {"hook": await _own(request)})


async def delete(request: web.Request) -> web.Response:
    ctx = api_context(request)
    endpoint_id = _id(request)
    async with ctx.sessions.begin() as session:
        found = await sql.delete_endpoint(
            session, user(request).id, endpoint_id, actor=actor(request)
        )
    if not found:
        raise NotFoundError("webhook")
    await flash(request, tr(request, "The webhook is deleted."))
    return redirect("/webhooks")


def routes(_context: ApiContext) -> list[Route]:
    return [
        ("GET", "/webhooks", webhooks_page, "webhooks"),
        ("POST", "/webhooks", create, "webhook_create"),
        ("GET", r"/webhooks/{webhook_id:\d+}", events_page, "webhook_events"),
        ("GET", r"/webhooks/{webhook_id:\d+}/delete", delete_confirm, "webhook_delete_confirm"),
        ("POST", r"/webhooks/{webhook_id:\d+}/delete", delete, "webhook_delete"),
    ]
