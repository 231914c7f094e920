"""Reading the send form: channels, typology, who (filters, pasted ids or a CSV of ids), the text,
attachments and an optional time, with an error per field. The composer checks the rest."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import MultiDictProxy

from admin_api.console.pages import api_context, i18n, int_field, text_field, tr, user
from admin_api.console.views_recipients import filters_from
from channels import rich_text
from channels.attachments import IncomingAttachment
from channels.composition import CHANNELS
from persistence.recipient_queries import RecipientFilter, recipient_ids

MAX_RECIPIENTS = 100_000
MAX_BODY = 100_000
MODES = ("filter", "ids", "csv")
FILTER_FIELDS = (
    "f_typology_id",
    "f_q",
    "f_telegram",
    "f_email",
    "f_sms",
    "f_blocked",
    "f_opted_out",
)
_ID_SEPARATORS = re.compile(r"[\s,;]+")


@dataclass
class ComposeForm:
    values: dict[str, Any]  # as typed, to show the form again
    channels: list[str] = field(default_factory=list)
    typology_id: int | None = None
    kind: str = ""
    mode: str = "filter"
    filters: RecipientFilter = field(default_factory=RecipientFilter)
    ids: list[int] = field(default_factory=list)
    include_related: bool = True
    subject: str = ""
    body: str = ""
    attachments: list[IncomingAttachment] = field(default_factory=list)
    send_at: datetime | None = None
    format: str = "text"
    buttons: list[list[dict[str, str]]] = field(default_factory=list)


def parse_ids(text: str) -> tuple[list[int], str | None]:
    """Recipient ids separated by commas, spaces or new lines; the first bad one is named."""
    ids: list[int] = []
    for token in _ID_SEPARATORS.split(text.strip()):
        if not token:
            continue
        if not token.isdigit() or len(token) > 10 or not 1 <= int(token) <= 2**31 - 1:
            return [], token[:20]
        ids.append(int(token))
        if len(ids) > MAX_RECIPIENTS:
            return [], ""
    return list(dict.fromkeys(ids)), None


def parse_id_file(raw: bytes) -> tuple[list[int], str | None]:
    """A CSV of recipients: its ``id`` column, or its first column when no header names one."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], "utf-8"
    rows = [row for row in csv.reader(io.StringIO(text)) if any(c.strip() for c in row)]
    if not rows:
        return [], ""
    header = [c.strip().lower() for c in rows[0]]
    column = header.index("id") if "id" in header else 0
    body = rows[1:] if "id" in header or not rows[0][0].strip().isdigit() else rows
    return parse_ids(" ".join(row[column] if column < len(row) else "" for row in body))


def parse_local_time(raw: str, zone: str) -> datetime | None:
    """A ``datetime-local`` value on the user's wall clock, as an aware UTC datetime."""
    try:
        local = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if local.tzinfo is None:
        local = local.replace(tzinfo=ZoneInfo(zone))
    return local.astimezone(UTC)


async def _attachments(
    request: web.Request, data: MultiDictProxy[Any], errors: dict[str, str]
) -> list[IncomingAttachment]:
    limit = api_context(request).max_attachment_bytes
    found: list[IncomingAttachment] = []
    for item in data.getall("attachments", []):
        if not isinstance(item, web.FileField) or not item.filename:
            continue
        content = item.file.read(limit + 1)
        if len(content) > limit:
            errors["attachments"] = tr(
                request, "%(name)s is larger than %(limit)s bytes.", name=item.filename, limit=limit
            )
            continue
        found.append(IncomingAttachment(item.filename, content, item.content_type or None))
    return found


def _button_error(request: web.Request, error: rich_text.ButtonError) -> str:
    """The problem of a button, said by its row (and place in the row), counted from 1."""
    where = re.match(r"buttons\[(\d+)\](?:\[(\d+)\])?", error.field)
    if where is None:
        return error.reason
    row = int(where.group(1)) + 1
    if where.group(2) is None:
        return tr(request, "Buttons, row %(row)s: %(reason)s", row=row, reason=error.reason)
    return tr(
        request,
        "Buttons, row %(row)s, button %(n)s: %(reason)s",
        row=row,
        n=int(where.group(2)) + 1,
        reason=error.reason,
    )


async def read_compose_form(
    request: web.Request, data: MultiDictProxy[Any]
) -> tuple[ComposeForm, dict[str, str]]:
    ctx = api_context(request)
    errors: dict[str, str] = {}
    kinds = ctx.recipient_kinds.names()
    channels = [c for c in data.getall("channels", []) if isinstance(c, str) and c in CHANNELS]
    body = data.get("body", "")
    values: dict[str, Any] = {
        "channels": channels,
        "typology_id": text_field(data, "typology_id", 12),
        "kind": text_field(data, "kind", 40),
        "mode": text_field(data, "mode", 10),
        "ids": text_field(data, "ids", 2_000_000),
        "related": data.get("related") == "1",
        "subject": text_field(data, "subject", 1000),
        "body": body[: MAX_BODY + 1] if isinstance(body, str) else "",
        "send_at": text_field(data, "send_at", 32),
        "format": text_field(data, "format", 10) or "text",
        "buttons": text_field(data, "buttons", 20_000),
        **{name: text_field(data, name, 100) for name in FILTER_FIELDS},
    }
    composed = ComposeForm(values=values, channels=channels)
    composed.kind = values["kind"] if values["kind"] in kinds else kinds[0]
    composed.mode = values["mode"] if values["mode"] in MODES else "filter"
    composed.typology_id = int_field(data, "typology_id")
    composed.include_related = values["related"]
    composed.subject = values["subject"]
    composed.body = values["body"]
    composed.format = values["format"]
    try:
        buttons = rich_text.parse_button_lines(values["buttons"].splitlines())
        composed.buttons = rich_text.buttons_json(buttons)
    except rich_text.ButtonError as exc:
        errors["buttons"] = _button_error(request, exc)
    composed.filters = filters_from(data, "f_")
    if composed.mode == "ids":
        composed.ids, bad = parse_ids(values["ids"])
        if bad is not None:
            errors["recipients"] = tr(request, "Not a recipient id: %(value)s", value=bad)
    elif composed.mode == "csv":
        upload = data.get("recipients_file")
        if not isinstance(upload, web.FileField) or not upload.filename:
            errors["recipients"] = tr(request, "Choose a CSV file with the recipients' ids.")
        else:
            composed.ids, bad = parse_id_file(upload.file.read(20 * 1024 * 1024))
            if bad is not None:
                errors["recipients"] = tr(
                    request, "The file has a value that is not a recipient id: %(value)s", value=bad
                )
    else:
        async with ctx.sessions() as session:
            composed.ids = await recipient_ids(
                session,
                ctx.recipient_kinds.get(composed.kind),
                user(request),
                composed.filters,
                MAX_RECIPIENTS,
            )
    if not errors.get("recipients") and not composed.ids:
        errors["recipients"] = tr(request, "No recipients: choose who gets this message.")
    if values["send_at"]:
        composed.send_at = parse_local_time(values["send_at"], i18n(request).timezone)
        if composed.send_at is None:
            errors["send_at"] = tr(request, "Not a date and time.")
        elif composed.send_at <= ctx.clock():
            errors["send_at"] = tr(
                request, "Choose a time in the future, or leave it empty to send now."
            )
    composed.attachments = await _attachments(request, data, errors)
    return composed, errors
