"""Delivery-status webhooks: the caller's endpoints, their recent events, a test ping.

Endpoints are their owner's alone: another user's endpoint answers 404 like a missing one.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from admin_api.errors import invalid, not_found
from admin_api.routing import (
    JSON,
    KEY_PREFIX,
    RequestBody,
    Response,
    api_actor,
    context,
    current_user,
    id_param,
    json_body,
    parse_query,
    path_id,
    render,
)
from admin_api.routing import Operation as Op
from admin_api.schemas import Deleted
from admin_api.schemas_webhooks import (
    WebhookAttemptOut,
    WebhookCreatedOut,
    WebhookEventList,
    WebhookEventOut,
    WebhookEventsQuery,
    WebhookIn,
    WebhookList,
    WebhookOut,
    WebhookPatch,
    WebhookTestOut,
)
from channels.webhook_urls import UnsafeUrlError, check_url
from persistence import webhook_queries as sql
from persistence.models import WebhookEndpoint, WebhookEventStatus
from persistence.webhook_queries import EventView

BASE = "/api/v1/webhooks"
WEBHOOK_ID = {"webhook_id": id_param("The webhook endpoint's id.")}


def webhook_out(endpoint: WebhookEndpoint) -> WebhookOut:
    return WebhookOut(
        id=endpoint.id,
        url=endpoint.url,
        events=list(endpoint.events),
        description=endpoint.description,
        active=endpoint.active,
        created_at=endpoint.created_at,
    )


def event_out(view: EventView) -> WebhookEventOut:
    event = view.event
    return WebhookEventOut(
        id=event.id,
        type=event.event_type,
        status=WebhookEventStatus(event.status),
        attempts=event.attempts,
        created_at=event.created_at,
        next_attempt_at=event.next_attempt_at if event.status == "pending" else None,
        delivered_at=event.delivered_at,
        last_error=event.last_error,
        data=event.payload or {},
        attempt_log=[
            WebhookAttemptOut(
                attempt=a.attempt,
                attempted_at=a.attempted_at,
                status_code=a.status_code,
                error=a.error,
                duration_ms=a.duration_ms,
            )
            for a in view.attempts
        ],
    )


async def _safe_url(request: web.Request, url: str) -> str:
    ctx = context(request)
    try:
        return await check_url(url, ctx.webhook_policy, ctx.webhook_resolve)
    except UnsafeUrlError as exc:
        raise invalid("body.url", f"body.url: {exc}") from None


async def list_webhooks(request: web.Request) -> web.Response:
    async with context(request).sessions() as session:
        rows = await sql.list_endpoints(session, current_user(request).id)
    return render(WebhookList(items=[webhook_out(e) for e in rows]))


async def create_webhook(request: web.Request) -> web.Response:
    """Register an endpoint; the secret is answered this once."""
    body = await json_body(request, WebhookIn)
    url = await _safe_url(request, body.url)
    secret = body.secret or secrets.token_urlsafe(32)
    async with context(request).sessions.begin() as session:
        endpoint = await sql.create_endpoint(
            session,
            owner_id=current_user(request).id,
            url=url,
            events=[e.value for e in body.events],
            secret=secret,
            description=body.description,
            key_prefix=request.get(KEY_PREFIX),
            actor=api_actor(request),
        )
        out = WebhookCreatedOut(**webhook_out(endpoint).model_dump(), secret=secret)
    return render(out, 201, {"Location": f"{BASE}/{out.id}"})


async def _endpoint_or_404(request: web.Request, endpoint_id: int) -> WebhookEndpoint:
    async with context(request).sessions() as session:
        endpoint = await sql.get_endpoint(session, current_user(request).id, endpoint_id)
    if endpoint is None:
        raise not_found(f"webhook {endpoint_id}")
    return endpoint


async def get_webhook(request: web.Request) -> web.Response:
    endpoint_id = path_id(request, "webhook_id", what="webhook")
    return render(webhook_out(await _endpoint_or_404(request, endpoint_id)))


async def update_webhook(request: web.Request) -> web.Response:
    """Change the fields sent (the secret stays: to change it, register a new endpoint)."""
    endpoint_id = path_id(request, "webhook_id", what="webhook")
    body = await json_body(request, WebhookPatch)
    changes = body.model_dump(include=body.model_fields_set, mode="json")
    if "url" in changes:
        changes["url"] = await _safe_url(request, changes["url"])
    async with context(request).sessions.begin() as session:
        endpoint = await sql.update_endpoint(
            session, current_user(request).id, endpoint_id, changes, actor=api_actor(request)
        )
        if endpoint is None:
            raise not_found(f"webhook {endpoint_id}")
        out = webhook_out(endpoint)
    return render(out)


async def delete_webhook(request: web.Request) -> web.Response:
    """Delete the endpoint, its events and their attempts."""
    endpoint_id = path_id(request, "webhook_id", what="webhook")
    async with context(request).sessions.begin() as session:
        found = await sql.delete_endpoint(
            session, current_user(request).id, endpoint_id, actor=api_actor(request)
        )
    if not found:
        raise not_found(f"webhook {endpoint_id}")
    return render(Deleted())


async def list_webhook_events(request: web.Request) -> web.Response:
    endpoint_id = path_id(request, "webhook_id", what="webhook")
    query = parse_query(request, WebhookEventsQuery)
    await _endpoint_or_404(request, endpoint_id)
    async with context(request).sessions() as session:
        views = await sql.recent_events(session, endpoint_id, limit=int(query.limit))
    return render(WebhookEventList(items=[event_out(v) for v in views]))


async def test_webhook(request: web.Request) -> web.Response:
    """Queue a ``ping`` event for this endpoint (delivered, signed and retried like any)."""
    ctx = context(request)
    endpoint_id = path_id(request, "webhook_id", what="webhook")
    endpoint = await _endpoint_or_404(request, endpoint_id)
    async with ctx.sessions.begin() as session:
        (event_id,) = await sql.add_events(
            session,
            sql.Subscriptions(),
            [sql.NewEvent(endpoint.owner_id, sql.PING_EVENT, {"webhook_id": endpoint_id})],
            ctx.clock(),
            endpoint_ids=[endpoint_id],
        )
    ctx.wake_webhooks()
    return render(WebhookTestOut(event_id=event_id), 202)


def operations() -> list[Op]:
    events = ", ".join(f"`{t.value}`" for t in sql.WebhookEventType)
    return [
        Op(
            "GET",
            BASE,
            list_webhooks,
            "Your webhook endpoints",
            "webhooks",
            {200: Response("Your endpoints (never their secrets).", WebhookList)},
        ),
        Op(
            "POST",
            BASE,
            create_webhook,
            "Register a webhook endpoint",
            "webhooks",
            {201: Response("Registered; the secret is in this answer only.", WebhookCreatedOut)},
            body=RequestBody({JSON: WebhookIn}),
            description=(
                f"Events: {events}. Each is POSTed as JSON, signed "
                "(`Herald-Signature: v1=<hex HMAC-SHA256(secret, timestamp + '.' + body)>`, "
                "`Herald-Timestamp`, `Herald-Event-Id`), at least once, retried with back-off "
                "for more than an hour. A URL that is not https or whose host resolves to a "
                "private, loopback, link-local or reserved address is refused (422 naming "
                "`url`); loopback is allowed in sandbox mode."
            ),
        ),
        Op(
            "GET",
            BASE + "/{webhook_id}",
            get_webhook,
            "A webhook endpoint",
            "webhooks",
            {200: Response("The endpoint.", WebhookOut)},
            path_params=WEBHOOK_ID,
        ),
        Op(
            "PATCH",
            BASE + "/{webhook_id}",
            update_webhook,
            "Change a webhook endpoint (URL, events, active, description)",
            "webhooks",
            {200: Response("The changed endpoint.", WebhookOut)},
            body=RequestBody({JSON: WebhookPatch}),
            path_params=WEBHOOK_ID,
        ),
        Op(
            "DELETE",
            BASE + "/{webhook_id}",
            delete_webhook,
            "Delete a webhook endpoint with its events",
            "webhooks",
            {200: Response("Deleted.", Deleted)},
            path_params=WEBHOOK_ID,
        ),
        Op(
            "GET",
            BASE + "/{webhook_id}/events",
            list_webhook_events,
            "A webhook endpoint's recent events and every attempt",
            "webhooks",
            {200: Response("The newest events first.", WebhookEventList)},
            query=WebhookEventsQuery,
            path_params=WEBHOOK_ID,
        ),
        Op(
            "POST",
            BASE + "/{webhook_id}/test",
            test_webhook,
            "Send a test ping to a webhook endpoint",
            "webhooks",
            {202: Response("The ping is queued.", WebhookTestOut)},
            path_params=WEBHOOK_ID,
        ),
    ]
