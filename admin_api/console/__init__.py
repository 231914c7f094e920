"""The web console: server-rendered pages at ``/`` over the same composer, queries and owner rules
as the JSON API (``/api/v1``), on the same aiohttp application.

Pages are Jinja2 templates (autoescaped) rendered by thin views; htmx (vendored, no CDN) swaps
parts of pages and a small script follows live progress over Server-Sent Events, but every core
flow works without JavaScript. See ``security`` for sessions, CSRF and the headers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from jinja2 import pass_context
from jinja2.runtime import Context

from admin_api.console import (
    views_audit,
    views_auth,
    views_broadcasts,
    views_compose,
    views_dashboard,
    views_inbox,
    views_invoices,
    views_keys,
    views_messages,
    views_recipients,
    views_templates,
    views_typologies,
    views_unsubscribe,
    views_webhooks,
)
from admin_api.console.drafts import DraftStore
from admin_api.console.i18n import LANGUAGE_NAMES, load_catalogs
from admin_api.console.pages import CONSOLE, ConsoleState, query_with
from admin_api.console.progress import Progress, ProgressHub
from admin_api.console.security import CookieStorage, console_middleware_factory
from admin_api.console.throttle import LoginThrottle
from admin_api.context import ApiContext
from persistence.message_queries import message_progress

HERE = Path(__file__).parent
STATIC_NAME = "console.static"


@pass_context
def _gettext(context: Context, message: str) -> str:
    return str(context["i18n"].gettext(message))


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return str(context["i18n"].ngettext(singular, plural, n))


@pass_context
def _datetime(context: Context, value: Any, form: str = "medium") -> str:
    return str(context["i18n"].when(value, form))


@pass_context
def _number(context: Context, value: Any) -> str:
    return str(context["i18n"].number(value))


def _environment(app: web.Application) -> jinja2.Environment:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["dt"] = _datetime
    env.filters["num"] = _number
    router = app.router

    def static(filename: str) -> str:
        return str(router[STATIC_NAME].url_for(filename=filename))

    def url(name: str, **parts: Any) -> str:
        return str(router[name].url_for(**{k: str(v) for k, v in parts.items()}))

    env.globals.update(static=static, url=url, language_names=LANGUAGE_NAMES, query_with=query_with)
    return env


def _progress_reader(context: ApiContext) -> Any:
    engine = context.sessions.kw["bind"]

    async def read(message_ids: Sequence[int]) -> Progress:
        async with engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            return await message_progress(connection, message_ids)

    return read


def setup_console(app: web.Application, context: ApiContext) -> Any:
    """Mount the console on ``app``; returns the middleware to place after the error middleware."""
    config = context.console
    hub = ProgressHub(_progress_reader(context), interval=config.progress_interval)
    app[CONSOLE] = ConsoleState(
        throttle=LoginThrottle(config.login_attempts, config.login_window_seconds),
        hub=hub,
        drafts=DraftStore(ttl=config.draft_ttl_seconds, capacity=config.max_drafts),
        catalogs=load_catalogs(),
    )

    async def close_hub(_app: web.Application) -> None:
        await hub.close()

    app.on_shutdown.append(close_hub)
    _environment(app)
    for module in (
        views_auth,
        views_dashboard,
        views_compose,
        views_broadcasts,
        views_messages,
        views_recipients,
        views_templates,
        views_typologies,
        views_inbox,
        views_invoices,
        views_keys,
        views_audit,
        views_webhooks,
        views_unsubscribe,
    ):
        for method, path, handler, name in module.routes(context):
            app.router.add_route(method, path, handler, name=f"console.{name}")
    app.router.add_static("/static/", HERE / "static", name=STATIC_NAME, append_version=True)
    return console_middleware_factory(CookieStorage(config.secret_key))
