"""The sender window: compose, **check** (the composer's dry run as a page: who gets it on which
channel, who does not and why, fragments, cost, a preview per channel), then **send** from that
page. The check keeps the message as a draft; its id is the send's idempotency key, so a double
click or a reload of the send sends once and shows the same broadcast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from markupsafe import Markup

from admin_api.console.compose_form import (
    MAX_RECIPIENTS,
    ComposeForm,
    read_compose_form,
)
from admin_api.console.pages import (
    actor,
    api_context,
    flash,
    form,
    i18n,
    int_field,
    redirect,
    render,
    state,
    text_field,
    tr,
    user,
)
from admin_api.console.views_recipients import filters_from
from admin_api.console.views_templates import template_values
from admin_api.context import ApiContext
from channels import rich_text
from channels.base import OutgoingMessage
from channels.composer import stored_extra
from channels.composition import CHANNELS, ComposeRequest, CompositionError, Plan
from channels.sms_text import analyse_sms
from channels.telegram_channel import telegram_content
from channels.telegram_text import TELEGRAM_TEXT_LIMIT, render_messages, utf16_len
from channels.templates import apply_template
from persistence import enqueue
from persistence.common_queries import NotFoundError, PageRequest
from persistence.inbox_queries import recipient_names
from persistence.models import MessageTypology
from persistence.recipient_queries import recipient_ids
from persistence.template_queries import TemplateFilter, get_template, list_templates
from persistence.typology_queries import list_typologies

Route = tuple[str, str, Any, str]
DRAFT = "compose"
LISTED = 50  # recipients named per list on the check page


@dataclass
class ComposeDraft:
    form: ComposeForm
    request: ComposeRequest


def _field(error: CompositionError) -> str:
    """Which form field a composer error belongs next to."""
    head = error.field.split(".")[0].split("[")[0]
    return {"typology": "typology_id", "extra": "form"}.get(head, head)


def counters(request: web.Request, subject: str, body: str, fmt: str = "text") -> dict[str, Any]:
    """Telegram length and messages, SMS encoding and fragments, email length: the channels' own
    rules (the same functions the composer plans with). A Markdown or HTML body is counted as
    Telegram shows it and as the SMS says it; while its markup is unfinished, as typed."""
    config = api_context(request).composer.config
    parts = render_messages(subject, body, config.telegram_parse_mode) if body or subject else []
    units, sms_text = utf16_len(body), body
    if fmt in rich_text.FORMATS and fmt != rich_text.Format.TEXT:
        try:
            rich = rich_text.Format(fmt)
            units = sum(
                t.units for t in rich_text.tokenize_html(rich_text.telegram_html(body, rich))
            )
            parts = rich_text.telegram_messages(subject, body, rich) if body or subject else []
            sms_text = rich_text.plain_text(body, rich)
        except rich_text.MarkupError:
            pass
    return {
        "telegram_units": units,
        "telegram_limit": TELEGRAM_TEXT_LIMIT,
        "telegram_parts": len(parts),
        "sms": analyse_sms(sms_text, max_fragments=config.sms_max_fragments),
        "sms_limit": config.sms_max_fragments,
        "email_chars": len(subject) + len(body),
    }


async def _form_context(
    request: web.Request, values: dict[str, Any], errors: dict[str, str], draft: str = ""
) -> dict[str, Any]:
    ctx = api_context(request)
    listing = PageRequest(limit=500, offset=0)
    async with ctx.sessions() as session:
        message_typologies = (await list_typologies(session, MessageTypology, None, listing)).items
        recipient_typologies = {
            kind.name: (await list_typologies(session, kind.typology_model, None, listing)).items
            for kind in ctx.recipient_kinds
        }
        templates = (await list_templates(session, user(request), TemplateFilter(), listing)).items
    return {
        "values": values,
        "errors": errors,
        "channels": CHANNELS,
        "kinds": ctx.recipient_kinds.names(),
        "message_typologies": message_typologies,
        "recipient_typologies": recipient_typologies,
        "counters": counters(
            request, values.get("subject", ""), values.get("body", ""), values.get("format", "")
        ),
        "draft": draft,
        "templates": templates,
    }


async def send_form(request: web.Request) -> web.Response:
    values: dict[str, Any] = {"channels": ["telegram"], "related": True, "mode": "filter"}
    draft_id = request.query.get("draft", "")
    draft = state(request).drafts.get(user(request).id, DRAFT, draft_id) if draft_id else None
    if isinstance(draft, ComposeDraft):
        values = draft.form.values
    elif draft_id:
        draft_id = ""
    template_id = int_field(request.query, "template")
    if template_id is not None and not draft_id:
        # Choose a template (works without JavaScript: ?template=ID): its text fills the form.
        try:
            async with api_context(request).sessions() as session:
                view = await get_template(session, user(request), template_id)
        except NotFoundError:
            await flash(request, tr(request, "That template does not exist."), "warn")
            return redirect("/send")
        values.update(template_values(view.content))
        values["typology_id"] = str(view.template.typology_id or "")
        values["template_id"] = str(view.template.id)
        values["template_version"] = str(view.version.version)
    return await render(request, "send.html", await _form_context(request, values, {}, draft_id))


async def _with_template(
    request: web.Request, data: Any, composed: ComposeForm, compose: ComposeRequest
) -> None:
    """The template the form was filled from: recorded with the broadcast, and each channel's
    own text kept unless the person edited the text it comes from."""
    template_id = int_field(data, "template_id")
    version = int_field(data, "template_version")
    if template_id is None:
        return
    try:
        async with api_context(request).sessions() as session:
            view = await get_template(session, user(request), template_id, version)
    except NotFoundError:
        return  # deleted meanwhile: the form's text is sent as written
    composed.values["template_id"] = str(template_id)
    composed.values["template_version"] = str(view.version.version)
    stored = template_values(view.content)
    typed = {"subject": compose.subject, "body": compose.body, "format": compose.format}
    explicit = {name for name, value in typed.items() if value != stored[name]}
    if composed.values.get("buttons", "") != stored["buttons"]:
        explicit.add("buttons")
    explicit.add("typology_id")  # the form always says it
    apply_template(
        compose,
        view.content,
        template_id=view.template.id,
        version=view.version.version,
        typology_id=view.template.typology_id,
        explicit=explicit,
    )


async def _read_request(
    request: web.Request, data: Any
) -> tuple[ComposeForm, ComposeRequest, dict[str, str]]:
    composed, errors = await read_compose_form(request, data)
    compose = ComposeRequest(
        channels=composed.channels,
        body=composed.body,
        subject=composed.subject,
        typology_id=composed.typology_id,
        recipients={composed.kind: composed.ids} if composed.ids else {},
        include_related=composed.include_related,
        attachments=composed.attachments,
        send_at=composed.send_at,
        format=composed.format,
        buttons=composed.buttons,
    )
    await _with_template(request, data, composed, compose)
    return composed, compose, errors


async def send_test(request: web.Request) -> web.Response:
    """ "Send me a test": the form's draft to my own email and linked Telegram chat only."""
    ctx = api_context(request)
    data = await form(request)
    composed, compose, errors = await _read_request(request, data)
    errors.pop("recipients", None)  # a test goes to me, whoever the form names
    if not errors:
        first = (composed.kind, composed.ids[0]) if composed.ids else None
        try:
            tested = await ctx.composer.send_test(user(request), compose, first, actor(request))
        except CompositionError as exc:
            errors[_field(exc)] = exc.message
    if errors:
        context = await _form_context(request, composed.values, errors)
        return await render(request, "send.html", context, 422)
    sent = ", ".join(m.channel for m in tested.messages)
    if sent:
        await flash(
            request, tr(request, "Test queued to your own addresses: %(channels)s.", channels=sent)
        )
    for skipped in tested.skipped:
        await flash(
            request,
            tr(
                request,
                "%(channel)s skipped: %(reason)s",
                channel=skipped.channel,
                reason=skipped.reason,
            ),
            "warn",
        )
    context = await _form_context(request, composed.values, {})
    context["tested"] = tested
    return await render(request, "send.html", context)


async def check(request: web.Request) -> web.Response:
    ctx = api_context(request)
    data = await form(request)
    composed, compose, errors = await _read_request(request, data)
    previous = state(request).drafts.get(user(request).id, DRAFT, text_field(data, "draft", 64))
    keep = data.get("keep_attachments") == "1"
    if not composed.attachments and keep and isinstance(previous, ComposeDraft):
        composed.attachments = previous.form.attachments
        compose.attachments = composed.attachments
    plan: Plan | None = None
    if not errors:
        try:
            plan = await ctx.composer.presend(user(request), compose)
        except CompositionError as exc:
            errors[_field(exc)] = exc.message
    if errors or plan is None:
        context = await _form_context(request, composed.values, errors)
        return await render(request, "send.html", context, 422)
    draft = state(request).drafts.put(user(request).id, DRAFT, ComposeDraft(composed, compose))
    return await render(
        request, "send_check.html", await _check_context(request, plan, compose, draft)
    )


async def _check_context(
    request: web.Request, plan: Plan, compose: ComposeRequest, draft: str
) -> dict[str, Any]:
    ctx = api_context(request)
    refs: list[tuple[str, int]] = []
    for channel in plan.channels:
        c = channel.classification
        refs += [(k, i) for k, i, _a in c.valid[:LISTED]]
        refs += [(p.kind, p.id) for p in [*c.invalid[:LISTED], *c.duplicates[:LISTED]]]
    async with ctx.sessions() as session:
        names = await recipient_names(session, ctx.recipient_kinds, refs)
    # The texts Telegram will get: our own escaping (telegram_text) or checked Telegram HTML
    # (rich_text: only Telegram's tags, links only to http, https and tg), so safe to show.
    outgoing = OutgoingMessage(
        0,
        "telegram",
        compose.subject,
        compose.body,
        extra=stored_extra(compose),
    )
    content = telegram_content(outgoing, ctx.composer.config.telegram_parse_mode)
    telegram_parts = [
        Markup(part) if content.parse_mode == "HTML" else part  # noqa: S704 - checked above
        for part in content.texts
    ]
    for channel in plan.channels:  # personalised Telegram previews: checked HTML as above
        for preview in channel.previews:
            if preview.get("parse_mode") == "HTML" and "texts" in preview:
                preview["texts"] = [Markup(t) for t in preview["texts"]]  # noqa: S704
    fmt, buttons = rich_text.content_of(outgoing.extra)
    blocked = bool(plan.not_visible) or any(c.problems for c in plan.channels)
    reachable = sum(len(c.classification.valid) for c in plan.channels)
    return {
        "plan": plan,
        "compose": compose,
        "names": names,
        "listed": LISTED,
        "telegram_parts": telegram_parts,
        "buttons": buttons,
        "plain_text": rich_text.plain_text(compose.body, fmt, buttons),
        "draft": draft,
        "can_send": not blocked and reachable > 0,
        "send_at_local": i18n(request).when(compose.send_at) if compose.send_at else "",
    }


async def confirm(request: web.Request) -> web.Response:
    ctx = api_context(request)
    me = user(request)
    draft_id = text_field(await form(request), "draft", 64)
    key = f"console:{draft_id}"
    draft = state(request).drafts.get(me.id, DRAFT, draft_id)
    if not isinstance(draft, ComposeDraft):
        async with ctx.sessions() as session:
            stored = await enqueue.stored_answer(session, me.id, key) if draft_id else None
        if stored is not None:  # sent already (a reload after a restart): show it again
            return redirect(f"/broadcasts/{stored.response['broadcast_id']}")
        await flash(
            request, tr(request, "That check has expired; please check the message again."), "warn"
        )
        return redirect("/send")
    compose = draft.request
    compose.idempotency_key = key
    try:
        result = await ctx.composer.send(me, compose, actor(request))
    except CompositionError as exc:
        context = await _form_context(
            request, draft.form.values, {_field(exc): exc.message}, draft_id
        )
        return await render(request, "send.html", context, 422)
    if not result.replayed:
        await flash(request, tr(request, "Your message is queued for delivery."))
    return redirect(f"/broadcasts/{result.broadcast_id}")


async def live_counters(request: web.Request) -> web.Response:
    """The text's counters alone (htmx asks while the person types)."""
    data = await form(request)
    body = data.get("body", "")
    subject = text_field(data, "subject", 1000)
    fmt = text_field(data, "format", 10)
    context = counters(request, subject, body[:100_001] if isinstance(body, str) else "", fmt)
    return await render(request, "_counters.html", {"counters": context})


async def matching(request: web.Request) -> web.Response:
    """How many recipients the filters select (htmx asks while the filters change)."""
    ctx = api_context(request)
    kinds = ctx.recipient_kinds
    name = request.query.get("kind", "")
    kind = kinds.get(name) if name in kinds else next(iter(kinds))
    async with ctx.sessions() as session:
        ids = await recipient_ids(
            session, kind, user(request), filters_from(request.query, "f_"), MAX_RECIPIENTS + 1
        )
    return await render(
        request,
        "_matching.html",
        {"count": min(len(ids), MAX_RECIPIENTS), "more": len(ids) > MAX_RECIPIENTS},
    )


def routes(_context: ApiContext) -> list[Route]:
    return [
        ("GET", "/send", send_form, "send"),
        ("POST", "/send/check", check, "send_check"),
        ("POST", "/send/confirm", confirm, "send_confirm"),
        ("POST", "/send/test", send_test, "send_test"),
        ("POST", "/send/counters", live_counters, "send_counters"),
        ("GET", "/send/matching", matching, "send_matching"),
    ]
