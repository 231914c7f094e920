"""The audit log (superusers): the API's filters and pagination, as a page."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from admin_api.console.pages import (
    PageError,
    api_context,
    i18n,
    page_request,
    render,
    text_field,
    tr,
    user,
)
from admin_api.console.views_messages import day_start
from admin_api.context import ApiContext
from persistence.audit import AuditAction, AuditFilter, list_events, split_ids

Route = tuple[str, str, Any, str]
SUBJECT_KINDS = ("message", "customer", "external_subject", "api_key", "user")
_SUBJECT_ID = re.compile(r"[A-Za-z0-9-]{1,64}")


async def audit_page(request: web.Request) -> web.Response:
    if not user(request).is_superuser:
        raise PageError(403, tr(request, "Only a superuser sees the audit log."))
    query = request.query
    zone = i18n(request).timezone
    action = query.get("action") if query.get("action") in set(AuditAction) else None
    kind = query.get("subject_kind") if query.get("subject_kind") in SUBJECT_KINDS else None
    subject_id = text_field(query, "subject_id", 64)
    filters = AuditFilter(
        action=action,
        actor=text_field(query, "actor", 150) or None,
        subject_kind=kind,
        subject_id=subject_id if _SUBJECT_ID.fullmatch(subject_id) else None,
        since=day_start(query.get("from", ""), zone, end=False),
        until=day_start(query.get("to", ""), zone, end=True),
    )
    async with api_context(request).sessions() as session:
        page = await list_events(session, filters, page_request(request))
    return await render(
        request,
        "audit.html",
        {
            "page": page,
            "filters": filters,
            "actions": [a.value for a in AuditAction],
            "subject_kinds": SUBJECT_KINDS,
            "ids_of": split_ids,
            "raw": query,
        },
    )


def routes(_context: ApiContext) -> list[Route]:
    return [("GET", "/audit", audit_page, "audit")]
