"""Saved message templates in the console: the list, a new one, editing (each save of the
content is a new version; earlier ones stay readable) and deleting; and "My addresses", where a
user sets their own email and gets the one-time code that links their Telegram chat (where
"send me a test" goes)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin_api.console.pages import (
    actor,
    api_context,
    flash,
    form,
    int_field,
    redirect,
    render,
    text_field,
    tr,
    user,
)
from admin_api.context import ApiContext
from channels import rich_text
from channels.addresses import is_valid_email
from channels.composer import has_text
from channels.composition import CompositionError
from channels.templates import PER_CHANNEL, check_content, normalised
from persistence import audit
from persistence.audit import AuditAction
from persistence.common_queries import (
    ConflictError,
    InvalidFieldError,
    NotFoundError,
    PageRequest,
)
from persistence.models import MessageTypology
from persistence.template_queries import (
    TemplateFilter,
    create_template,
    delete_template,
    get_template,
    list_templates,
    update_template,
)
from persistence.typology_queries import list_typologies
from persistence.user_addresses import LINK_CODE_LIFETIME, new_link_code, own_addresses, set_email

Route = tuple[str, str, Any, str]


def button_lines(rows: list[list[dict[str, str]]]) -> str:
    """Buttons as the send form writes them: one row per line, ``label url | label url``."""
    return "\n".join(" | ".join(f"{b['label']} {b['url']}" for b in row) for row in rows)


def template_values(content: dict[str, Any]) -> dict[str, Any]:
    """A version's content as the form's values."""
    stored = normalised(content)
    return {
        "subject": stored["subject"],
        "body": stored["body"],
        "format": stored["format"],
        "buttons": button_lines(stored["buttons"]),
        "sms_body": stored[PER_CHANNEL].get("sms", {}).get("body", ""),
    }


def _template_id(request: web.Request) -> int:
    raw = request.match_info["template_id"]
    if not raw.isdigit() or len(raw) > 10:
        raise NotFoundError(f"template {raw}")
    return int(raw)


async def _typologies(request: web.Request) -> list[Any]:
    async with api_context(request).sessions() as session:
        page = await list_typologies(session, MessageTypology, None, PageRequest(500, 0))
    return list(page.items)


async def templates_page(request: web.Request) -> web.Response:
    return await _list_page(request, {}, {})


async def _list_page(
    request: web.Request, values: dict[str, Any], errors: dict[str, str], status: int = 200
) -> web.Response:
    search = text_field(request.query, "q", 100) or None
    async with api_context(request).sessions() as session:
        page = await list_templates(
            session, user(request), TemplateFilter(search=search), PageRequest(500, 0)
        )
    return await render(
        request,
        "templates.html",
        {
            "templates": page.items,
            "q": search or "",
            "values": values,
            "errors": errors,
            "message_typologies": await _typologies(request),
        },
        status,
    )


def _read(request: web.Request, data: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """The form's values, the content they make, and the errors, by field."""
    values = {
        "name": text_field(data, "name", 200),
        "typology_id": text_field(data, "typology_id", 12),
        "subject": text_field(data, "subject", 1000),
        "body": str(data.get("body", ""))[:100_001] if isinstance(data.get("body"), str) else "",
        "format": text_field(data, "format", 10) or "text",
        "buttons": text_field(data, "buttons", 20_000),
        "sms_body": text_field(data, "sms_body", 2000),
    }
    errors: dict[str, str] = {}
    if not has_text(values["name"]):
        errors["name"] = tr(request, "Enter a name.")
    elif len(values["name"]) > 150:
        errors["name"] = tr(request, "At most %(limit)s characters.", limit=150)
    if not has_text(values["body"]):
        errors["body"] = tr(request, "Write the message.")
    buttons: list[list[dict[str, str]]] = []
    try:
        buttons = rich_text.buttons_json(
            rich_text.parse_button_lines(values["buttons"].splitlines())
        )
    except rich_text.ButtonError as exc:
        errors["buttons"] = exc.reason
    content = normalised(
        {
            "subject": values["subject"],
            "body": values["body"],
            "format": values["format"] if values["format"] in rich_text.FORMATS else "text",
            "buttons": buttons,
            PER_CHANNEL: {"sms": {"body": values["sms_body"]}} if values["sms_body"] else {},
        }
    )
    if not errors:
        try:
            check_content(content)
        except CompositionError as exc:
            field = "sms_body" if exc.field.startswith(PER_CHANNEL) else exc.field.split(".")[0]
            errors[field if field in values else "body"] = exc.message
    return values, content, errors


def keep_unshown(stored: dict[str, Any], edited: dict[str, Any]) -> dict[str, Any]:
    """The form edits the shared text and the SMS body; what else the template holds (an email
    HTML body, other channels' own content, set through the API) stays as it was."""
    kept = dict(edited)
    if kept.get("body_html") is None:
        kept["body_html"] = stored.get("body_html")
    stored_own = stored.get(PER_CHANNEL) or {}
    own = {channel: dict(fields) for channel, fields in stored_own.items() if channel != "sms"}
    sms = {k: v for k, v in (stored_own.get("sms") or {}).items() if k != "body"}
    sms.update((edited.get(PER_CHANNEL) or {}).get("sms") or {})
    if sms:
        own["sms"] = sms
    kept[PER_CHANNEL] = own
    return normalised(kept)


async def create(request: web.Request) -> web.Response:
    ctx = api_context(request)
    values, content, errors = _read(request, await form(request))
    typology_id = int_field(values, "typology_id")
    if not errors:
        try:
            async with ctx.sessions.begin() as session:
                view = await create_template(
                    session,
                    user(request),
                    name=values["name"],
                    typology_id=typology_id,
                    content=content,
                    now=ctx.clock(),
                )
                await audit.record(
                    session,
                    actor(request),
                    AuditAction.TEMPLATE_CREATED,
                    "template",
                    [view.template.id],
                    {"name": view.template.name, "version": 1},
                )
        except ConflictError:
            errors["name"] = tr(request, "You already have a template with this name.")
        except InvalidFieldError as exc:
            errors["typology_id"] = exc.message
    if errors:
        return await _list_page(request, values, errors, 422)
    await flash(request, tr(request, "Template %(name)s saved.", name=values["name"]))
    return redirect(f"/templates/{view.template.id}")


async def _edit_page(
    request: web.Request,
    template_id: int,
    values: dict[str, Any] | None,
    errors: dict[str, str],
    status: int = 200,
) -> web.Response:
    version = int_field(request.query, "version")
    async with api_context(request).sessions() as session:
        view = await get_template(session, user(request), template_id, version)
    shown = values or {
        "name": view.template.name,
        "typology_id": str(view.template.typology_id or ""),
        **template_values(view.content),
    }
    return await render(
        request,
        "template_edit.html",
        {
            "template": view.template,
            "version": view.version.version,
            "versions": view.versions,
            "values": shown,
            "errors": errors,
            "message_typologies": await _typologies(request),
        },
        status,
    )


async def edit_page(request: web.Request) -> web.Response:
    return await _edit_page(request, _template_id(request), None, {})


async def save(request: web.Request) -> web.Response:
    ctx = api_context(request)
    template_id = _template_id(request)
    values, content, errors = _read(request, await form(request))
    if not errors:
        async with ctx.sessions() as session:
            current = await get_template(session, user(request), template_id)
        content = keep_unshown(current.content, content)
        try:
            check_content(content)
        except CompositionError as exc:
            errors["body"] = exc.message
    if not errors:
        try:
            async with ctx.sessions.begin() as session:
                view = await update_template(
                    session,
                    user(request),
                    template_id,
                    {"name": values["name"], "typology_id": int_field(values, "typology_id")},
                    content=content,
                    now=ctx.clock(),
                )
                await audit.record(
                    session,
                    actor(request),
                    AuditAction.TEMPLATE_UPDATED,
                    "template",
                    [template_id],
                    {"fields": ["content", "name"], "version": view.template.current_version},
                )
        except ConflictError:
            errors["name"] = tr(request, "You already have a template with this name.")
        except InvalidFieldError as exc:
            errors["typology_id"] = exc.message
    if errors:
        return await _edit_page(request, template_id, values, errors, 422)
    await flash(
        request,
        tr(request, "Saved as version %(version)s.", version=view.template.current_version),
    )
    return redirect(f"/templates/{template_id}")


async def delete(request: web.Request) -> web.Response:
    template_id = _template_id(request)
    async with api_context(request).sessions.begin() as session:
        await delete_template(session, user(request), template_id)
        await audit.record(
            session, actor(request), AuditAction.TEMPLATE_DELETED, "template", [template_id], {}
        )
    await flash(request, tr(request, "Template deleted; what was sent from it keeps its text."))
    return redirect("/templates")


# --- my own addresses ------------------------------------------------------------------------


async def _me_page(
    request: web.Request, code: str = "", errors: dict[str, str] | None = None, status: int = 200
) -> web.Response:
    async with api_context(request).sessions() as session:
        own = await own_addresses(session, user(request).id)
    return await render(
        request,
        "me.html",
        {
            "own": own,
            "code": code,
            "minutes": int(LINK_CODE_LIFETIME.total_seconds() // 60),
            "errors": errors or {},
        },
        status,
    )


async def me_page(request: web.Request) -> web.Response:
    return await _me_page(request)


async def save_email(request: web.Request) -> web.Response:
    email = text_field(await form(request), "email", 300)
    if email and (len(email) > 254 or not is_valid_email(email)):
        return await _me_page(
            request, errors={"email": tr(request, "This is not an email address.")}, status=422
        )
    async with api_context(request).sessions.begin() as session:
        await set_email(session, user(request).id, email or None)
        await audit.record(
            session, actor(request), AuditAction.USER_EMAIL_SET, "user", [user(request).id], {}
        )
    await flash(request, tr(request, "Your email is saved."))
    return redirect("/me")


async def link_code(request: web.Request) -> web.Response:
    """A fresh one-time code, shown once on this page (never stored but as its hash)."""
    ctx = api_context(request)
    async with ctx.sessions.begin() as session:
        code = await new_link_code(session, user(request).id, ctx.clock())
    return await _me_page(request, code)


def routes(_context: ApiContext) -> list[Route]:
    one = r"/templates/{template_id:\d+}"
    return [
        ("GET", "/templates", templates_page, "templates"),
        ("POST", "/templates", create, "template_create"),
        ("GET", one, edit_page, "template"),
        ("POST", one, save, "template_save"),
        ("POST", one + "/delete", delete, "template_delete"),
        ("GET", "/me", me_page, "me"),
        ("POST", "/me/email", save_email, "me_email"),
        ("POST", "/me/link-code", link_code, "me_link_code"),
    ]
