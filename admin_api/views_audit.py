"""The audit log (superusers): who did what to which records, when and from where."""

from __future__ import annotations

from aiohttp import web

from admin_api.routing import Operation as Op
from admin_api.routing import Response, context, page_of, parse_query, render_page
from admin_api.schemas_audit import AuditEventOut, AuditPage, AuditQuery
from persistence.audit import AuditFilter, list_events, split_ids
from persistence.models import AuditEvent


def event_out(event: AuditEvent) -> AuditEventOut:
    return AuditEventOut.model_validate(
        {
            "id": event.id,
            "occurred_at": event.occurred_at,
            "actor_kind": event.actor_kind,
            "actor_id": event.actor_id,
            "actor_label": event.actor_label,
            "key_prefix": event.key_prefix,
            "action": event.action,
            "subject_kind": event.subject_kind,
            "subject_ids": split_ids(event.subject_ids),
            "detail": event.detail or {},
            "remote_addr": event.remote_addr,
            "user_agent": event.user_agent,
        }
    )


def filters_of(query: AuditQuery) -> AuditFilter:
    return AuditFilter(
        action=query.action.value if query.action else None,
        actor=query.actor,
        actor_kind=query.actor_kind.value if query.actor_kind else None,
        subject_kind=query.subject_kind,
        subject_id=query.subject_id,
        since=query.since,
        until=query.until,
    )


async def list_audit(request: web.Request) -> web.Response:
    """Audit events, newest first, filtered."""
    query = parse_query(request, AuditQuery)
    async with context(request).sessions() as session:
        page = await list_events(session, filters_of(query), page_of(query))
    return render_page(AuditPage, page, event_out)


def operations() -> list[Op]:
    return [
        Op(
            "GET",
            "/api/v1/audit",
            list_audit,
            "The audit log (superuser)",
            "audit",
            {200: Response("A page of audit events, newest first.", AuditPage)},
            query=AuditQuery,
            superuser=True,
            description=(
                "Who (a console user, an API key, a `herald` command or the Telegram bot) did "
                "what (`action`), to which records (`subject_kind`, `subject_ids`), when and from "
                "where. Secrets (keys, passwords) are never recorded."
            ),
        ),
    ]
