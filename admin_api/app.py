"""The aiohttp application: the admin API, the web console and, in webhook mode, the Telegram
webhook route.

``create_app(context)`` is the single factory. Every API route comes from the route table (the
views' ``operations()``), which also writes the OpenAPI document served at
``/api/v1/openapi.json``. The console (``admin_api.console``) adds its pages at ``/``.
"""

from __future__ import annotations

from aiohttp import web

from admin_api import (
    views_audit,
    views_broadcasts,
    views_inbox,
    views_invoices,
    views_messages,
    views_ops,
    views_recipients,
    views_templates,
    views_webhooks,
)
from admin_api.auth import auth_middleware
from admin_api.console import setup_console
from admin_api.context import API_CONTEXT, ApiContext
from admin_api.errors import error_middleware, metrics_middleware, request_id_middleware
from admin_api.openapi import build_document
from admin_api.outage import DATABASE_OUTAGE, outage_log, outage_middleware
from admin_api.routing import OPERATIONS, Operation, query_middleware
from admin_api.views_ops import OPENAPI_DOCUMENT


def route_table(context: ApiContext) -> list[Operation]:
    kinds = context.recipient_kinds.names()
    return [
        *views_ops.operations(),
        *views_messages.operations(),
        *views_broadcasts.operations(),
        *views_templates.operations(),
        *views_inbox.operations(kinds),
        *views_recipients.operations(kinds),
        *views_invoices.operations(),
        *views_audit.operations(),
        *views_webhooks.operations(),
    ]


def create_app(context: ApiContext) -> web.Application:
    app = web.Application(client_max_size=context.max_request_bytes)
    app[API_CONTEXT] = context
    app[DATABASE_OUTAGE] = outage_log(context.database_retry_after_seconds)
    console_middleware = setup_console(app, context)
    # The console's middleware sits inside the error middleware: console routes answer HTML
    # pages (errors too); every other route passes through it untouched.
    app.middlewares.extend(
        [
            request_id_middleware,
            metrics_middleware,
            error_middleware,
            outage_middleware,
            console_middleware,
            auth_middleware,
            query_middleware,
        ]
    )
    operations = route_table(context)
    by_route: dict[object, Operation] = {}
    for op in operations:
        route = app.router.add_route(op.method, op.aiohttp_path(), op.handler)
        by_route[route] = op
    app[OPERATIONS] = by_route
    app[OPENAPI_DOCUMENT] = build_document(
        operations, recipient_kinds=context.recipient_kinds.names()
    )
    return app
