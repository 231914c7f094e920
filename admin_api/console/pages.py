"""What every console view shares: the console's state, the request's user and language,
rendering a page, redirects, flash messages and reading forms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session
from babel.support import NullTranslations
from multidict import MultiDictProxy

from admin_api.console.drafts import DraftStore
from admin_api.console.i18n import I18n
from admin_api.console.progress import ProgressHub
from admin_api.console.throttle import LoginThrottle
from admin_api.context import API_CONTEXT, ApiContext
from admin_api.routing import origin
from persistence.audit import Actor, ActorKind
from persistence.common_queries import PageRequest
from persistence.models import User

PAGE_SIZE = 50
MAX_OFFSET = 10_000_000


@dataclass
class ConsoleState:
    throttle: LoginThrottle
    hub: ProgressHub
    drafts: DraftStore
    catalogs: dict[str, NullTranslations]


CONSOLE = web.AppKey("console", ConsoleState)
CONSOLE_USER = web.RequestKey("console_user", User)
I18N = web.RequestKey("console_i18n", I18n)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class PageError(Exception):
    """Answer with an error page: 403, 404, 409... and a sentence for the person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def api_context(request: web.Request) -> ApiContext:
    return request.app[API_CONTEXT]


def state(request: web.Request) -> ConsoleState:
    return request.app[CONSOLE]


def user(request: web.Request) -> User:
    return request[CONSOLE_USER]


def actor(request: web.Request) -> Actor:
    """The signed-in user, from this request's address and browser (for the audit log)."""
    return Actor.of_user(user(request), ActorKind.USER, **origin(request))


def i18n(request: web.Request) -> I18n:
    return request[I18N]


def tr(request: web.Request, message: str, **values: Any) -> str:
    """Translated ``message`` in the request's language, with ``%(name)s`` placeholders filled."""
    text = request[I18N].gettext(message)
    return text % values if values else text


async def render(
    request: web.Request, template: str, context: Mapping[str, Any] | None = None, status: int = 200
) -> web.Response:
    session = await get_session(request)
    values: dict[str, Any] = {
        "request": request,
        "user": request.get(CONSOLE_USER),
        "i18n": request[I18N],
        "csrf_token": session.get("csrf", ""),
        "flashes": session.pop("flash", []),
        "path": request.path,
    }
    values.update(context or {})
    response = aiohttp_jinja2.render_template(template, request, values, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(location: str) -> web.Response:
    """After a form is handled: See Other, so a reload does not post it again."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


async def flash(request: web.Request, message: str, kind: str = "ok") -> None:
    session = await get_session(request)
    session["flash"] = [*session.get("flash", []), {"kind": kind, "text": message}][-5:]


async def form(request: web.Request) -> MultiDictProxy[Any]:
    return await request.post()


def text_field(data: Mapping[str, Any], name: str, limit: int = 1000) -> str:
    value = data.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def int_field(
    data: Mapping[str, Any], name: str, *, low: int = 1, high: int = 2**31 - 1
) -> int | None:
    """A whole number in range, or None when blank or not one."""
    raw = text_field(data, name, 20)
    if not raw.lstrip("-").isdigit():
        return None
    value = int(raw)
    return value if low <= value <= high else None


def tristate(data: Mapping[str, Any], name: str) -> bool | None:
    """``yes``/``no`` select values; anything else means "either"."""
    return {"yes": True, "no": False}.get(text_field(data, name, 5))


def page_request(request: web.Request, size: int = PAGE_SIZE) -> PageRequest:
    offset = int_field(request.query, "offset", low=0, high=MAX_OFFSET) or 0
    return PageRequest(limit=size, offset=offset)


def query_with(request: web.Request, **changes: Any) -> str:
    """The current query string with ``changes`` applied (None removes a name), for links."""
    query = request.rel_url.query.copy()
    for name, value in changes.items():
        query.popall(name, None)
        if value is not None:
            query[name] = str(value)
    return str(request.rel_url.with_query(query).query_string)
