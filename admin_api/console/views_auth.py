"""Logging in and out, the language switch and the user's preferences."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from aiohttp import web
from aiohttp_session import get_session, new_session

from admin_api.console.i18n import LANGUAGES
from admin_api.console.pages import (
    api_context,
    flash,
    form,
    i18n,
    redirect,
    render,
    state,
    text_field,
    tr,
    user,
)
from admin_api.console.security import end_session, start_session
from admin_api.context import ApiContext
from persistence.models import User
from persistence.timezones import is_timezone, timezone_names
from persistence.users import (
    MAX_PASSWORD_CHARS,
    hash_password,
    needs_rehash,
    save_preferences,
    user_by_id,
    user_by_name,
    verify_password,
)

Route = tuple[str, str, Any, str]


def safe_next(target: str) -> str:
    """Only a path on this site (never ``//host`` or a scheme) may follow a login."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


async def login_form(request: web.Request) -> web.Response:
    session = await get_session(request)
    expired = bool(session.pop("expired", False))
    return await render(
        request,
        "login.html",
        {"next": safe_next(request.query.get("next", "/")), "error": "", "expired": expired},
    )


async def login(request: web.Request) -> web.Response:
    data = await form(request)
    username = text_field(data, "username", 150)
    raw_password = data.get("password", "")
    password = raw_password if isinstance(raw_password, str) else ""
    target = safe_next(text_field(data, "next", 2000) or "/")
    address = request.remote or "unknown"
    throttle = state(request).throttle
    values = {"next": target, "username": username, "expired": False}
    wait = throttle.retry_after(username, address)
    if wait > 0:
        minutes = max(1, math.ceil(wait / 60))
        message = tr(
            request, "Too many failed attempts. Try again in %(minutes)s minutes.", minutes=minutes
        )
        return await render(request, "login.html", {**values, "error": message}, 429)
    ctx = api_context(request)
    async with ctx.sessions() as db:
        record = await user_by_name(db, username) if username else None
    stored = record.password_hash if record is not None and record.is_active else None
    # Hashing is slow on purpose: off the event loop, and as slow for unknown names.
    if not await asyncio.to_thread(verify_password, stored, password[:MAX_PASSWORD_CHARS]):
        throttle.failed(username, address)
        message = tr(request, "Wrong username or password.")
        return await render(request, "login.html", {**values, "error": message}, 401)
    assert record is not None and stored is not None
    throttle.succeeded(username)
    await _after_login(ctx, record, password, text_field(data, "tz", 64))
    chosen = (await get_session(request)).get("lang")  # picked on the login page, if any
    session = await new_session(request)  # a new session: nothing from before the login stays
    start_session(session, record, record.language or chosen, ctx.clock().timestamp())
    return redirect(target)


async def _after_login(ctx: ApiContext, record: User, password: str, tz: str) -> None:
    """Upgrade an old hash, and take the browser's time zone if the user has not chosen one."""
    stored = record.password_hash or ""
    fresh = await asyncio.to_thread(hash_password, password) if needs_rehash(stored) else None
    take_zone = not record.timezone and is_timezone(tz)
    if fresh is None and not take_zone:
        return
    async with ctx.sessions.begin() as db:
        row = await user_by_id(db, record.id)
        if row is None:
            return
        if fresh is not None:
            row.password_hash = record.password_hash = fresh
        if take_zone:
            row.timezone = record.timezone = tz


async def logout(request: web.Request) -> web.Response:
    end_session(await get_session(request))
    await flash(request, tr(request, "You are logged out."))
    return redirect("/login")


async def set_language(request: web.Request) -> web.Response:
    data = await form(request)
    language = text_field(data, "language", 8)
    target = safe_next(text_field(data, "next", 2000) or "/")
    if language in LANGUAGES:
        session = await get_session(request)
        session["lang"] = language
    return redirect(target)


async def preferences_form(request: web.Request) -> web.Response:
    return await render(request, "preferences.html", _preference_values(request, {}))


def _preference_values(request: web.Request, errors: dict[str, str]) -> dict[str, Any]:
    me = user(request)
    return {
        "languages": LANGUAGES,
        "timezones": timezone_names(),
        "chosen_language": me.language or i18n(request).language,
        "chosen_timezone": me.timezone or i18n(request).timezone,
        "errors": errors,
    }


async def save_preferences_view(request: web.Request) -> web.Response:
    data = await form(request)
    language = text_field(data, "language", 8)
    timezone = text_field(data, "timezone", 64)
    errors: dict[str, str] = {}
    if language not in LANGUAGES:
        errors["language"] = tr(request, "Choose English or Italian.")
    if not is_timezone(timezone):
        errors["timezone"] = tr(request, "Choose a time zone from the list.")
    if errors:
        return await render(request, "preferences.html", _preference_values(request, errors), 422)
    async with api_context(request).sessions.begin() as db:
        await save_preferences(db, user(request).id, language=language, timezone=timezone)
    session = await get_session(request)
    session["lang"] = language
    await flash(request, tr(request, "Preferences saved."))
    return redirect("/preferences")


def routes(_context: ApiContext) -> list[Route]:
    return [
        ("GET", "/login", login_form, "login"),
        ("POST", "/login", login, "login_post"),
        ("POST", "/logout", logout, "logout"),
        ("POST", "/language", set_language, "language"),
        ("GET", "/preferences", preferences_form, "preferences"),
        ("POST", "/preferences", save_preferences_view, "preferences_post"),
    ]
