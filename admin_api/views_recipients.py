"""Recipients of every registered kind, their typologies, CSV import, and message typologies."""

from __future__ import annotations

from typing import Any, cast

from aiohttp import BodyPartReader, web

from admin_api.errors import ApiError
from admin_api.recipient_input import (
    CSV_COLUMNS,
    AddressError,
    ParsedCsv,
    address_error,
    normalize_addresses,
    parse_csv,
)
from admin_api.routing import (
    JSON,
    MULTIPART_ERRORS,
    MultipartForm,
    RequestBody,
    Response,
    api_actor,
    context,
    current_user,
    id_param,
    json_body,
    page_of,
    parse_query,
    path_id,
    recipient_kind,
    render,
    render_page,
    require_content_type,
    require_own_filter,
    require_superuser,
)
from admin_api.routing import Operation as Op
from admin_api.schemas import Deleted
from admin_api.schemas_recipients import (
    ImportQuery,
    ImportReportOut,
    PreferenceOut,
    PreferencesIn,
    PreferencesOut,
    RecipientCreate,
    RecipientOut,
    RecipientPage,
    RecipientPatch,
    RecipientQuery,
    TypologyIn,
    TypologyOut,
    TypologyPage,
    TypologyPatch,
    TypologyQuery,
)
from persistence.models import MessageTypology
from persistence.preferences import (
    PreferenceChoice,
    UnknownTypologyError,
    list_preferences,
    replace_preferences,
)
from persistence.recipient_import import ImportReport, MatchColumn, import_recipients
from persistence.recipient_kinds import RecipientKind
from persistence.recipient_queries import (
    RecipientFilter,
    create_recipient,
    delete_recipient,
    get_recipient,
    list_recipients,
    update_recipient,
)
from persistence.typology_queries import (
    create_typology,
    delete_typology,
    get_typology,
    list_typologies,
    update_typology,
)

CSV = "text/csv"
MULTIPART = "multipart/form-data"


def recipient_out(kind: RecipientKind, record: Any) -> RecipientOut:
    return RecipientOut(
        id=record.id,
        kind=kind.name,
        name=record.name,
        vat_number=record.vat_number,
        fiscal_code=record.fiscal_code,
        sms=record.sms,
        email=record.email,
        telegram_chat_id=record.telegram_chat_id,
        telegram_opted_out=record.telegram_opted_out,
        telegram_blocked=record.telegram_blocked,
        note=record.note,
        extra=record.extra or {},
        external_id=record.external_id,
        typology_id=record.typology_id,
        related_customer_id=getattr(record, "related_customer_id", None),
        owner_id=record.owner_id,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def _normalized(request: web.Request, values: dict[str, Any]) -> dict[str, Any]:
    try:
        return normalize_addresses(values, context(request).default_phone_region)
    except AddressError as exc:
        raise address_error(exc) from None


# --- recipients --------------------------------------------------------------------------------


async def list_recipients_view(request: web.Request) -> web.Response:
    """Recipients of one kind the caller may see, filtered."""
    ctx = context(request)
    kind = recipient_kind(request)
    query = parse_query(request, RecipientQuery)
    require_own_filter(request, "owner_id", query.owner_id)
    filters = RecipientFilter(
        typology_id=query.typology_id,
        search=query.q,
        has_telegram=query.has_telegram,
        has_email=query.has_email,
        has_sms=query.has_sms,
        blocked=query.blocked,
        opted_out=query.opted_out,
        owner_id=query.owner_id,
    )
    async with ctx.sessions() as session:
        page = await list_recipients(session, kind, current_user(request), filters, page_of(query))
    return render_page(RecipientPage, page, lambda r: recipient_out(kind, r))


async def create_recipient_view(request: web.Request) -> web.Response:
    """Create a recipient; the caller owns it unless a superuser names another owner."""
    ctx = context(request)
    kind = recipient_kind(request)
    body = await json_body(request, RecipientCreate)
    values = _normalized(request, body.model_dump())
    async with ctx.sessions.begin() as session:
        record = await create_recipient(
            session, kind, current_user(request), values, actor=api_actor(request)
        )
        out = recipient_out(kind, record)
    return render(out, 201, {"Location": f"/api/v1/recipients/{kind.name}/{out.id}"})


async def get_recipient_view(request: web.Request) -> web.Response:
    ctx = context(request)
    kind = recipient_kind(request)
    rid = path_id(request, "recipient_id", what=kind.name)
    async with ctx.sessions() as session:
        record = await get_recipient(session, kind, current_user(request), rid)
    return render(recipient_out(kind, record))


async def update_recipient_view(request: web.Request) -> web.Response:
    """Change the fields sent; the phone number is normalised again."""
    ctx = context(request)
    kind = recipient_kind(request)
    rid = path_id(request, "recipient_id", what=kind.name)
    body = await json_body(request, RecipientPatch)
    values = _normalized(request, body.model_dump(include=body.model_fields_set))
    async with ctx.sessions.begin() as session:
        record = await update_recipient(
            session, kind, current_user(request), rid, values, actor=api_actor(request)
        )
        out = recipient_out(kind, record)
    return render(out)


async def delete_recipient_view(request: web.Request) -> web.Response:
    """Delete a recipient; the messages and deliveries that named it stay."""
    ctx = context(request)
    kind = recipient_kind(request)
    rid = path_id(request, "recipient_id", what=kind.name)
    async with ctx.sessions.begin() as session:
        await delete_recipient(session, kind, current_user(request), rid, actor=api_actor(request))
    return render(Deleted())


async def _preferences_out(session: Any, kind: RecipientKind, rid: int) -> PreferencesOut:
    choices = await list_preferences(session, kind.name, rid)
    return PreferencesOut(
        kind=kind.name,
        recipient_id=rid,
        preferences=[
            PreferenceOut(
                channel=c.channel,
                typology_id=c.typology_id,
                typology_name=c.typology_name,
                accepted=c.accepted,
                source=c.source,
                updated_at=c.updated_at,
            )
            for c in choices
        ],
    )


async def get_preferences_view(request: web.Request) -> web.Response:
    """The channels the recipient accepts, in general and per message typology."""
    ctx = context(request)
    kind = recipient_kind(request)
    rid = path_id(request, "recipient_id", what=kind.name)
    async with ctx.sessions() as session:
        await get_recipient(session, kind, current_user(request), rid)
        out = await _preferences_out(session, kind, rid)
    return render(out)


async def put_preferences_view(request: web.Request) -> web.Response:
    """Replace the recipient's channel choices (recorded in the audit log)."""
    ctx = context(request)
    kind = recipient_kind(request)
    rid = path_id(request, "recipient_id", what=kind.name)
    body = await json_body(request, PreferencesIn)
    choices = [
        PreferenceChoice(p.channel.value, p.typology_id, p.accepted) for p in body.preferences
    ]
    seen: set[tuple[str, int | None]] = set()
    for i, choice in enumerate(choices):
        key = (choice.channel, choice.typology_id)
        if key in seen:
            raise ApiError(
                422,
                "validation_error",
                f"preferences[{i}]: {choice.channel} for this typology is listed twice",
                [{"loc": ["body", "preferences", i], "message": "listed twice"}],
            )
        seen.add(key)
    async with ctx.sessions.begin() as session:
        await get_recipient(session, kind, current_user(request), rid)
        try:
            await replace_preferences(
                session, kind, rid, choices, actor=api_actor(request), via="api", now=ctx.clock()
            )
        except UnknownTypologyError as exc:
            index = next(i for i, c in enumerate(choices) if c.typology_id == exc.typology_id)
            raise ApiError(
                422,
                "validation_error",
                f"preferences[{index}].typology_id: no message typology with that id",
                [{"loc": ["body", "preferences", index, "typology_id"], "message": "not found"}],
            ) from None
        out = await _preferences_out(session, kind, rid)
    return render(out)


async def _csv_bytes(request: web.Request) -> bytes:
    given = require_content_type(request, CSV, MULTIPART)
    if given == CSV:
        return await request.read()
    found: bytes | None = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name != "file" or found is not None:
                raise ApiError(
                    422,
                    "validation_error",
                    f"unexpected form field {getattr(part, 'name', None)!r}; send one part 'file'",
                    [{"loc": ["body", str(getattr(part, "name", None))], "message": "unexpected"}],
                )
            found = bytes(await part.read())
    except MULTIPART_ERRORS:
        raise ApiError(400, "malformed_multipart", "the multipart body is malformed") from None
    if found is not None:
        return found
    raise ApiError(
        422,
        "validation_error",
        "file: the multipart body needs a part named 'file'",
        [{"loc": ["body", "file"], "message": "field required"}],
    )


def import_match(requested: str | None, parsed: ParsedCsv) -> MatchColumn | None:
    """The column rows are matched on: as asked (``phone`` is ``sms``), else ``external_id``
    when the file has it, else none (rows create records unless they carry an ``id``)."""
    if requested is None:
        return "external_id" if "external_id" in parsed.columns else None
    column = "sms" if requested == "phone" else requested
    if column not in parsed.columns:
        raise ApiError(
            422,
            "validation_error",
            f"match: the file has no {column!r} column to match on",
            [{"loc": ["query", "match"], "message": f"no column {column!r}"}],
        )
    return cast(MatchColumn, column)


def import_report(parsed: ParsedCsv, report: ImportReport) -> ImportReportOut:
    """The report as the API (and ``herald recipients import --json``) gives it."""
    return ImportReportOut.model_validate(
        {
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "rejected": report.rejected,
            "applied": report.applied,
            "match": report.match,
            "delimiter": parsed.delimiter,
            "columns": parsed.columns,
            "ignored_columns": parsed.ignored_columns,
            "rows": report.rows,
        }
    )


async def import_recipients_view(request: web.Request) -> web.Response:
    """Create or update recipients from a CSV file with a header row (see the description)."""
    ctx = context(request)
    kind = recipient_kind(request)
    query = parse_query(request, ImportQuery)
    parsed = parse_csv(await _csv_bytes(request), ctx.default_phone_region)
    match = import_match(query.match.value if query.match else None, parsed)
    async with ctx.sessions.begin() as session:
        report = await import_recipients(
            session,
            kind,
            current_user(request),
            parsed.rows,
            all_or_nothing=query.all_or_nothing,
            match=match,
            actor=api_actor(request),
        )
        if not report.applied:
            await session.rollback()
    return render(import_report(parsed, report), 200 if report.applied else 422)


IMPORT_DESCRIPTION = (
    "A CSV file with a header row, as `text/csv` or as the `file` part of a multipart form. "
    "The delimiter is found from the header (`;`, `,` or tab) and a UTF-8 byte order mark is "
    "skipped; the file must be UTF-8. A second import of the same file updates the records "
    "instead of duplicating them: see `match`. Every row is reported with its line number as "
    "created, updated (with the columns changed), unchanged or rejected (with the reasons). "
    "Accepted columns (others are listed in `ignored_columns`):\n\n"
    + "\n".join(f"- `{name}`: {meaning}" for name, meaning in CSV_COLUMNS.items())
)


# --- typologies (per recipient kind, and of messages) -------------------------------------------


def _typology_model(request: web.Request) -> type[Any]:
    if "kind" in request.match_info:
        return recipient_kind(request).typology_model
    return MessageTypology


def _typology_out(record: Any) -> TypologyOut:
    return TypologyOut.model_validate(record, from_attributes=True)


async def list_typologies_view(request: web.Request) -> web.Response:
    ctx = context(request)
    model = _typology_model(request)
    query = parse_query(request, TypologyQuery)
    async with ctx.sessions() as session:
        page = await list_typologies(session, model, query.q, page_of(query))
    return render_page(TypologyPage, page, _typology_out)


async def create_typology_view(request: web.Request) -> web.Response:
    ctx = context(request)
    model = _typology_model(request)
    require_superuser(request)
    body = await json_body(request, TypologyIn)
    async with ctx.sessions.begin() as session:
        out = _typology_out(await create_typology(session, model, body.model_dump()))
    return render(out, 201)


async def get_typology_view(request: web.Request) -> web.Response:
    ctx = context(request)
    model = _typology_model(request)
    tid = path_id(request, "typology_id")
    async with ctx.sessions() as session:
        out = _typology_out(await get_typology(session, model, tid))
    return render(out)


async def update_typology_view(request: web.Request) -> web.Response:
    ctx = context(request)
    model = _typology_model(request)
    tid = path_id(request, "typology_id")
    require_superuser(request)
    body = await json_body(request, TypologyPatch)
    async with ctx.sessions.begin() as session:
        record = await update_typology(
            session, model, tid, body.model_dump(include=body.model_fields_set)
        )
        out = _typology_out(record)
    return render(out)


async def delete_typology_view(request: web.Request) -> web.Response:
    ctx = context(request)
    model = _typology_model(request)
    tid = path_id(request, "typology_id")
    require_superuser(request)
    async with ctx.sessions.begin() as session:
        await delete_typology(session, model, tid)
    return render(Deleted())


def operations(kind_names: list[str]) -> list[Op]:
    kind_param = {"kind": {"type": "string", "enum": kind_names, "description": "Recipient kind."}}
    rid = {**kind_param, "recipient_id": id_param("The recipient id.")}
    base = "/api/v1/recipients/{kind}"
    ops = [
        Op(
            "GET",
            base,
            list_recipients_view,
            "List recipients of a kind",
            "recipients",
            {200: Response("A page of recipients.", RecipientPage)},
            query=RecipientQuery,
            path_params=kind_param,
            errors=(403,),
        ),
        Op(
            "POST",
            base,
            create_recipient_view,
            "Create a recipient",
            "recipients",
            {201: Response("Created.", RecipientOut)},
            body=RequestBody({JSON: RecipientCreate}),
            path_params=kind_param,
            errors=(403, 409),
            description="A user who is not a superuser may name only themselves as owner_id.",
        ),
        Op(
            "GET",
            base + "/{recipient_id}",
            get_recipient_view,
            "Read a recipient",
            "recipients",
            {200: Response("The recipient.", RecipientOut)},
            path_params=rid,
        ),
        Op(
            "PATCH",
            base + "/{recipient_id}",
            update_recipient_view,
            "Change a recipient",
            "recipients",
            {200: Response("The changed recipient.", RecipientOut)},
            body=RequestBody({JSON: RecipientPatch}),
            path_params=rid,
            errors=(403, 409),
        ),
        Op(
            "GET",
            base + "/{recipient_id}/preferences",
            get_preferences_view,
            "Read a recipient's channel preferences",
            "recipients",
            {200: Response("The recipient's choices.", PreferencesOut)},
            path_params=rid,
        ),
        Op(
            "PUT",
            base + "/{recipient_id}/preferences",
            put_preferences_view,
            "Replace a recipient's channel preferences",
            "recipients",
            {200: Response("The recipient's choices now.", PreferencesOut)},
            body=RequestBody({JSON: PreferencesIn}),
            path_params=rid,
            description=(
                "The list replaces every choice: a channel not listed is accepted; each "
                "(channel, typology_id) at most once, naming an existing message typology "
                "(else 422). A typology's "
                "choice wins over the general one (typology_id null) for messages of that "
                "typology. Presend and the dispatcher refuse deliveries accordingly."
            ),
        ),
        Op(
            "DELETE",
            base + "/{recipient_id}",
            delete_recipient_view,
            "Delete a recipient (its message history stays)",
            "recipients",
            {200: Response("Deleted.", Deleted)},
            path_params=rid,
        ),
        Op(
            "POST",
            base + "/import",
            import_recipients_view,
            "Import recipients from CSV",
            "recipients",
            {
                200: Response("The import report.", ImportReportOut),
                422: Response(
                    "Invalid input, or rows rejected with all_or_nothing (nothing written).",
                    schema={
                        "oneOf": [
                            {"$ref": "#/components/schemas/ImportReportOut"},
                            {"$ref": "#/components/schemas/ErrorOut"},
                        ]
                    },
                ),
            },
            query=ImportQuery,
            errors=(403,),
            body=RequestBody(
                {
                    "text/csv": {
                        "type": "string",
                        "description": "UTF-8 CSV with a header row that has a name column.",
                    },
                    MULTIPART: MultipartForm(
                        {"file": {"type": "string", "contentMediaType": "text/csv"}},
                        required=("file",),
                        text_parts={"file": "text/csv"},
                    ),
                }
            ),
            path_params=kind_param,
            description=IMPORT_DESCRIPTION,
        ),
    ]
    for prefix, tag, params in (
        (base + "/typologies", "typologies", kind_param),
        ("/api/v1/message-typologies", "typologies", {}),
    ):
        tparams = {**params, "typology_id": id_param("The typology id.")}
        what = "recipient" if params else "message"
        ops += [
            Op(
                "GET",
                prefix,
                list_typologies_view,
                f"List {what} typologies",
                tag,
                {200: Response("A page of typologies.", TypologyPage)},
                query=TypologyQuery,
                path_params=params,
            ),
            Op(
                "POST",
                prefix,
                create_typology_view,
                f"Create a {what} typology (superuser)",
                tag,
                {201: Response("Created.", TypologyOut)},
                body=RequestBody({JSON: TypologyIn}),
                path_params=params,
                errors=(403, 409),
            ),
            Op(
                "GET",
                prefix + "/{typology_id}",
                get_typology_view,
                f"Read a {what} typology",
                tag,
                {200: Response("The typology.", TypologyOut)},
                path_params=tparams,
            ),
            Op(
                "PATCH",
                prefix + "/{typology_id}",
                update_typology_view,
                f"Change a {what} typology (superuser)",
                tag,
                {200: Response("The typology.", TypologyOut)},
                body=RequestBody({JSON: TypologyPatch}),
                path_params=tparams,
                errors=(403, 409),
            ),
            Op(
                "DELETE",
                prefix + "/{typology_id}",
                delete_typology_view,
                f"Delete a {what} typology (superuser)",
                tag,
                {200: Response("Deleted.", Deleted)},
                path_params=tparams,
                errors=(403,),
            ),
        ]
    return ops
