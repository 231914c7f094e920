"""Recipients of every kind: the table with filters, add / edit / delete with errors next to the
field, and CSV import with a row-by-row report before anything is written."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin_api.console.pages import (
    PageError,
    actor,
    api_context,
    flash,
    form,
    int_field,
    page_request,
    redirect,
    render,
    state,
    text_field,
    tr,
    tristate,
    user,
)
from admin_api.context import ApiContext
from admin_api.errors import ApiError
from admin_api.recipient_input import AddressError, normalize_addresses, parse_csv
from admin_api.routing import path_id, recipient_kind
from admin_api.views_recipients import import_match
from persistence.common_queries import InvalidFieldError, PageRequest
from persistence.models import MessageTypology
from persistence.preferences import (
    PREFERENCE_CHANNELS,
    PreferenceChoice,
    list_preferences,
    replace_preferences,
)
from persistence.recipient_import import import_recipients
from persistence.recipient_kinds import RecipientKind
from persistence.recipient_queries import (
    RecipientFilter,
    create_recipient,
    delete_recipient,
    get_recipient,
    list_recipients,
    update_recipient,
)
from persistence.typology_queries import list_typologies

Route = tuple[str, str, Any, str]
TEXT_LIMITS = {"name": 255, "vat_number": 32, "fiscal_code": 32, "sms": 64, "email": 254}
NOTE_LIMIT = 10_000
MAX_CSV_BYTES = 20 * 1024 * 1024


def kind_of(request: web.Request) -> RecipientKind:
    return recipient_kind(request)  # the API's rule: an unknown kind is not found


def recipient_id(request: web.Request) -> int:
    return path_id(request, "recipient_id", what=request.match_info["kind"])


async def _typologies(request: web.Request, kind: RecipientKind) -> list[Any]:
    async with api_context(request).sessions() as session:
        page = await list_typologies(
            session, kind.typology_model, None, PageRequest(limit=500, offset=0)
        )
    return page.items


def filters_from(query: Any, prefix: str = "") -> RecipientFilter:
    """The table's filters from a query or form (the send page prefixes its fields ``f_``)."""
    return RecipientFilter(
        typology_id=int_field(query, prefix + "typology_id"),
        search=text_field(query, prefix + "q", 100) or None,
        has_telegram=tristate(query, prefix + "telegram"),
        has_email=tristate(query, prefix + "email"),
        has_sms=tristate(query, prefix + "sms"),
        blocked=tristate(query, prefix + "blocked"),
        opted_out=tristate(query, prefix + "opted_out"),
    )


async def recipients_home(request: web.Request) -> web.Response:
    return redirect(f"/recipients/{api_context(request).recipient_kinds.names()[0]}")


async def recipients_page(request: web.Request) -> web.Response:
    ctx = api_context(request)
    kind = kind_of(request)
    async with ctx.sessions() as session:
        page = await list_recipients(
            session, kind, user(request), filters_from(request.query), page_request(request)
        )
    typologies = await _typologies(request, kind)
    return await render(
        request,
        "recipients.html",
        {
            "kind": kind.name,
            "kinds": ctx.recipient_kinds.names(),
            "page": page,
            "typologies": typologies,
            "typology_names": {t.id: t.name for t in typologies},
            "raw": request.query,
        },
    )


def _values(
    data: Any, request: web.Request, kind: RecipientKind
) -> tuple[dict[str, Any], dict[str, str]]:
    """The recipient's fields from the form, normalised, and an error per field that is wrong."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, limit in TEXT_LIMITS.items():
        value = data.get(name, "")
        value = value.strip() if isinstance(value, str) else ""
        if len(value) > limit:
            errors[name] = tr(request, "At most %(limit)s characters.", limit=limit)
        values[name] = value
    note = data.get("note", "")
    values["note"] = note if isinstance(note, str) else ""
    if len(values["note"]) > NOTE_LIMIT:
        errors["note"] = tr(request, "At most %(limit)s characters.", limit=NOTE_LIMIT)
    if not values["name"]:
        errors["name"] = tr(request, "Enter a name.")
    values["typology_id"] = int_field(data, "typology_id")
    if _links_customer(kind):
        raw = data.get("related_customer_id", "")
        raw = raw.strip() if isinstance(raw, str) else ""
        if raw and not (raw.isdigit() and len(raw) < 10):
            errors["related_customer_id"] = tr(request, "Enter the number of a customer.")
        values["related_customer_id"] = int(raw) if raw.isdigit() and len(raw) < 10 else None
    if errors:
        return values, errors
    try:
        values = normalize_addresses(values, api_context(request).default_phone_region)
    except AddressError as exc:
        message = {
            "sms": tr(
                request,
                "Not a valid phone number: write it with its prefix, e.g. +39 333 1234567.",
            ),
            "email": tr(request, "This is not a valid email address."),
        }.get(exc.field, exc.message)
        errors[exc.field] = message
    return values, errors


def _links_customer(kind: RecipientKind) -> bool:
    return hasattr(kind.model, "related_customer_id")


async def _form_page(
    request: web.Request,
    kind: RecipientKind,
    values: dict[str, Any],
    errors: dict[str, str],
    record: Any = None,
    status: int = 200,
) -> web.Response:
    choices: dict[str, str] = {}
    message_typologies: list[Any] = []
    if record is not None:
        async with api_context(request).sessions() as session:
            for c in await list_preferences(session, kind.name, record.id):
                key = f"pref-{c.channel}-{c.typology_id or 'all'}"
                choices[key] = "accept" if c.accepted else "refuse"
            message_typologies = (
                await list_typologies(session, MessageTypology, None, PageRequest(500, 0))
            ).items
    return await render(
        request,
        "recipient_form.html",
        {
            "kind": kind.name,
            "values": values,
            "errors": errors,
            "record": record,
            "typologies": await _typologies(request, kind),
            "links_customer": _links_customer(kind),
            "channels": PREFERENCE_CHANNELS,
            "choices": choices,
            "message_typologies": message_typologies,
        },
        status,
    )


async def new_form(request: web.Request) -> web.Response:
    return await _form_page(request, kind_of(request), {}, {})


async def create(request: web.Request) -> web.Response:
    ctx = api_context(request)
    kind = kind_of(request)
    values, errors = _values(await form(request), request, kind)
    if not errors:
        try:
            async with ctx.sessions.begin() as session:
                record = await create_recipient(
                    session, kind, user(request), values, actor=actor(request)
                )
                name = record.name
        except InvalidFieldError as exc:
            errors[exc.field] = exc.message
    if errors:
        return await _form_page(request, kind, values, errors, status=422)
    await flash(request, tr(request, "%(name)s was added.", name=name))
    return redirect(f"/recipients/{kind.name}")


async def edit_form(request: web.Request) -> web.Response:
    ctx = api_context(request)
    kind = kind_of(request)
    async with ctx.sessions() as session:
        record = await get_recipient(session, kind, user(request), recipient_id(request))
    values = {name: getattr(record, name) or "" for name in (*TEXT_LIMITS, "note")}
    values["typology_id"] = record.typology_id
    values["related_customer_id"] = getattr(record, "related_customer_id", None)
    return await _form_page(request, kind, values, {}, record)


async def update(request: web.Request) -> web.Response:
    ctx = api_context(request)
    kind = kind_of(request)
    rid = recipient_id(request)
    async with ctx.sessions() as session:
        record = await get_recipient(session, kind, user(request), rid)
    values, errors = _values(await form(request), request, kind)
    if not errors:
        try:
            async with ctx.sessions.begin() as session:
                await update_recipient(
                    session, kind, user(request), rid, values, actor=actor(request)
                )
        except InvalidFieldError as exc:
            errors[exc.field] = exc.message
    if errors:
        return await _form_page(request, kind, values, errors, record, 422)
    await flash(request, tr(request, "Changes to %(name)s saved.", name=values["name"]))
    return redirect(f"/recipients/{kind.name}")


def _choices(data: Any, typology_ids: set[int]) -> list[PreferenceChoice]:
    """The preference grid of the form: a refused channel, and each typology's exception."""
    chosen: list[PreferenceChoice] = []
    for channel in PREFERENCE_CHANNELS:
        if text_field(data, f"pref-{channel}-all", 10) == "refuse":
            chosen.append(PreferenceChoice(channel, None, False))
        for typology_id in sorted(typology_ids):
            value = text_field(data, f"pref-{channel}-{typology_id}", 10)
            if value in ("accept", "refuse"):
                chosen.append(PreferenceChoice(channel, typology_id, value == "accept"))
    return chosen


async def update_preferences(request: web.Request) -> web.Response:
    ctx = api_context(request)
    kind = kind_of(request)
    rid = recipient_id(request)
    data = await form(request)
    async with ctx.sessions.begin() as session:
        record = await get_recipient(session, kind, user(request), rid)
        typologies = await list_typologies(session, MessageTypology, None, PageRequest(500, 0))
        await replace_preferences(
            session,
            kind,
            rid,
            _choices(data, {t.id for t in typologies.items}),
            actor=actor(request),
            via="console",
            now=ctx.clock(),
        )
        name = record.name
    await flash(request, tr(request, "Channel preferences of %(name)s saved.", name=name))
    return redirect(f"/recipients/{kind.name}/{rid}/edit")


async def delete_confirm(request: web.Request) -> web.Response:
    ctx = api_context(request)
    kind = kind_of(request)
    async with ctx.sessions() as session:
        record = await get_recipient(session, kind, user(request), recipient_id(request))
    return await render(request, "recipient_delete.html", {"kind": kind.name, "record": record})


async def delete(request: web.Request) -> web.Response:
    ctx = api_context(request)
    kind = kind_of(request)
    async with ctx.sessions.begin() as session:
        await delete_recipient(
            session, kind, user(request), recipient_id(request), actor=actor(request)
        )
    await flash(request, tr(request, "The recipient was deleted; the messages sent to them stay."))
    return redirect(f"/recipients/{kind.name}")


# --- CSV import: check first (nothing written), then confirm -----------------------------------


async def import_form(request: web.Request) -> web.Response:
    return await render(request, "import.html", {"kind": kind_of(request).name, "error": ""})


async def _uploaded(request: web.Request, name: str) -> bytes | None:
    field = (await form(request)).get(name)
    if not isinstance(field, web.FileField):
        return None
    data: bytes = field.file.read(MAX_CSV_BYTES + 1)
    return data


async def _dry_run(request: web.Request, kind: RecipientKind, raw: bytes) -> tuple[Any, Any]:
    """What importing ``raw`` would do, row by row; the transaction is rolled back."""
    ctx = api_context(request)
    parsed = parse_csv(raw, ctx.default_phone_region)
    async with ctx.sessions.begin() as session:
        report = await import_recipients(
            session,
            kind,
            user(request),
            parsed.rows,
            all_or_nothing=False,
            match=import_match(None, parsed),
            actor=actor(request),
        )
        await session.rollback()
    return parsed, report


async def import_check(request: web.Request) -> web.Response:
    kind = kind_of(request)
    raw = await _uploaded(request, "file")
    if not raw:
        error = tr(request, "Choose a CSV file to import.")
        return await render(request, "import.html", {"kind": kind.name, "error": error}, 422)
    if len(raw) > MAX_CSV_BYTES:
        raise PageError(413, "")
    try:
        parsed, report = await _dry_run(request, kind, raw)
    except ApiError as exc:  # the file as a whole is unusable (encoding, header, size)
        return await render(request, "import.html", {"kind": kind.name, "error": exc.message}, 422)
    draft = state(request).drafts.put(user(request).id, f"import:{kind.name}", raw)
    return await render(
        request,
        "import_report.html",
        {"kind": kind.name, "report": report, "parsed": parsed, "draft": draft},
    )


async def import_confirm(request: web.Request) -> web.Response:
    ctx = api_context(request)
    kind = kind_of(request)
    draft = text_field(await form(request), "draft", 64)
    raw = state(request).drafts.get(user(request).id, f"import:{kind.name}", draft)
    if raw is None:
        await flash(request, tr(request, "That check has expired; choose the file again."), "warn")
        return redirect(f"/recipients/{kind.name}/import")
    parsed = parse_csv(raw, ctx.default_phone_region)
    async with ctx.sessions.begin() as session:
        report = await import_recipients(
            session,
            kind,
            user(request),
            parsed.rows,
            all_or_nothing=False,
            match=import_match(None, parsed),
            actor=actor(request),
        )
    state(request).drafts.drop(draft)
    await flash(
        request,
        tr(
            request,
            "Imported: %(created)s created, %(updated)s updated, %(rejected)s rows skipped.",
            created=report.created,
            updated=report.updated,
            rejected=report.rejected,
        ),
    )
    return redirect(f"/recipients/{kind.name}")


def routes(_context: ApiContext) -> list[Route]:
    base = "/recipients/{kind}"
    one = base + r"/{recipient_id:\d+}"
    return [
        ("GET", "/recipients", recipients_home, "recipients_home"),
        ("GET", base, recipients_page, "recipients"),
        ("GET", base + "/new", new_form, "recipient_new"),
        ("POST", base + "/new", create, "recipient_create"),
        ("GET", one + "/edit", edit_form, "recipient_edit"),
        ("POST", one + "/edit", update, "recipient_update"),
        ("POST", one + "/preferences", update_preferences, "recipient_preferences"),
        ("GET", one + "/delete", delete_confirm, "recipient_delete_confirm"),
        ("POST", one + "/delete", delete, "recipient_delete"),
        ("GET", base + "/import", import_form, "import_form"),
        ("POST", base + "/import", import_check, "import_check"),
        ("POST", base + "/import/confirm", import_confirm, "import_confirm"),
    ]
