"""The aiohttp application: admin API routes and, in webhook mode, the Telegram webhook route."""

from __future__ import annotations

from aiohttp import web

from admin_api.context import API_CONTEXT, ApiContext


async def healthz(_request: web.Request) -> web.Response:
    """The process is up and serving HTTP."""
    return web.json_response({"status": "ok"})


def create_app(context: ApiContext) -> web.Application:
    app = web.Application(client_max_size=context.max_request_bytes)
    app[API_CONTEXT] = context
    app.router.add_get("/healthz", healthz)
    return app
