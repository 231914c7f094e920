"""Recipient values on the way in: E.164 phone numbers, checked emails, and CSV rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from admin_api.errors import ApiError
from channels.addresses import is_valid_email
from persistence.phones import normalize_phone
from persistence.recipient_queries import ImportRow

_OPTIONAL_TEXT = ("vat_number", "fiscal_code", "sms", "email")
_LIMITS = {"name": 255, "vat_number": 32, "fiscal_code": 32, "email": 254, "note": 10_000}
CSV_COLUMNS = (
    "id",
    "name",
    "vat_number",
    "fiscal_code",
    "sms",
    "email",
    "telegram_chat_id",
    "note",
    "typology",
    "typology_id",
    "owner_id",
)
_ALIASES = {"phone": "sms", "mobile": "sms", "vat": "vat_number", "chat_id": "telegram_chat_id"}
MAX_ROWS = 100_000


class AddressError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def normalize_addresses(values: Mapping[str, Any], region: str) -> dict[str, Any]:
    """Blank optional texts become null, ``sms`` becomes E.164, ``email`` must be valid."""
    result = dict(values)
    for name in _OPTIONAL_TEXT:
        if name in result and isinstance(result[name], str) and not result[name].strip():
            result[name] = None
    sms = result.get("sms")
    if sms is not None:
        number = normalize_phone(sms, region)
        if number is None:
            raise AddressError("sms", f"{sms!r} is not a valid phone number")
        result["sms"] = number
    email = result.get("email")
    if email is not None:
        email = email.strip()
        if not is_valid_email(email):
            raise AddressError("email", f"{email!r} is not a valid email address")
        result["email"] = email
    return result


def address_error(exc: AddressError) -> ApiError:
    return ApiError(
        422,
        "validation_error",
        f"{exc.field}: {exc.message}",
        [{"loc": ["body", exc.field], "message": exc.message}],
    )


@dataclass
class ParsedCsv:
    rows: list[ImportRow]
    ignored_columns: list[str]


def _decode(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(422, "validation_error", "the CSV file must be UTF-8 encoded") from None
    if "\x00" in text:
        raise ApiError(422, "validation_error", "the CSV file contains NUL characters")
    return text


def _header(reader: Any) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        raise ApiError(422, "validation_error", "the CSV file is empty") from None
    columns = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    if "name" not in columns:
        raise ApiError(
            422,
            "validation_error",
            "the CSV header must have a 'name' column",
            [{"loc": ["body", "header"], "message": "missing column 'name'"}],
        )
    return columns


def _int_cell(row: ImportRow, field: str, text: str, low: int, high: int) -> int | None:
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        row.errors.append({"field": field, "message": f"{text!r} is not a whole number"})
        return None
    if not low <= value <= high:
        row.errors.append({"field": field, "message": f"{value} is out of range"})
        return None
    return value


def _row(line: int, cells: Mapping[str, str], region: str) -> ImportRow:
    row = ImportRow(line=line, values={})
    for field, limit in _LIMITS.items():
        text = cells.get(field, "").strip()
        if len(text) > limit:
            row.errors.append({"field": field, "message": f"longer than {limit} characters"})
        elif field in cells:
            row.values[field] = text
    if not cells.get("name", "").strip():
        row.errors.append({"field": "name", "message": "a name is required"})
    if "sms" in cells:
        row.values["sms"] = cells["sms"].strip()[:64]
    row.values["id"] = _int_cell(row, "id", cells.get("id", "").strip(), 1, 2_147_483_647)
    chat = _int_cell(
        row, "telegram_chat_id", cells.get("telegram_chat_id", "").strip(), -(2**53), 2**53
    )
    if chat is not None:
        row.values["telegram_chat_id"] = chat
    for column in ("typology_id", "owner_id"):
        number = _int_cell(row, column, cells.get(column, "").strip(), 1, 2**31 - 1)
        if number is not None:
            row.values[column] = number
    row.typology_name = cells.get("typology", "").strip() or None
    try:
        row.values = normalize_addresses(row.values, region)
    except AddressError as exc:
        row.errors.append({"field": exc.field, "message": exc.message})
    if row.values.get("id") is None:
        row.values.pop("id", None)
    return row


def parse_csv(raw: bytes, region: str) -> ParsedCsv:
    """Rows of a CSV file with a header; every problem is reported per row, not raised."""
    reader = csv.reader(io.StringIO(_decode(raw), newline=""))
    columns = _header(reader)
    rows: list[ImportRow] = []
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) >= MAX_ROWS:
                raise ApiError(422, "validation_error", f"at most {MAX_ROWS} rows per import")
            mapped = {columns[i]: cell for i, cell in enumerate(cells) if i < len(columns)}
            rows.append(_row(reader.line_num, mapped, region))
    except csv.Error as exc:
        raise ApiError(422, "validation_error", f"the CSV file is malformed: {exc}") from None
    ignored = sorted({c for c in columns if c not in CSV_COLUMNS})
    return ParsedCsv(rows, ignored)
