"""Recipient values on the way in: E.164 phone numbers, checked emails, and CSV rows.

CSV files come from spreadsheets: the delimiter is found from the header line (``;`` as Italian
spreadsheets write it, ``,`` or a tab), a UTF-8 byte order mark is skipped, and a few common
column names (``phone``, ``telefono``, ``partita_iva``...) are accepted for Herald's own.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from admin_api.errors import ApiError
from channels.addresses import is_valid_email
from persistence.phones import normalize_phone
from persistence.recipient_import import ImportRow

_OPTIONAL_TEXT = ("vat_number", "fiscal_code", "sms", "email", "external_id")
_LIMITS = {
    "name": 255,
    "vat_number": 32,
    "fiscal_code": 32,
    "email": 254,
    "note": 10_000,
    "external_id": 100,
}
# Each accepted column and what it means; the CLI's --help, the README and the OpenAPI document
# are written from this one list.
CSV_COLUMNS: dict[str, str] = {
    "name": "required: the person's or company's name",
    "external_id": "your own code for the record (unique per owner); what --match external_id uses",
    "sms": "mobile number (also: phone, mobile, telefono, cellulare); stored in E.164",
    "email": "email address",
    "vat_number": "VAT number (also: vat, partita_iva)",
    "fiscal_code": "fiscal code (also: codice_fiscale)",
    "telegram_chat_id": "a known Telegram chat id (also: chat_id)",
    "note": "free text",
    "typology": "the name of a typology of this kind (or typology_id: its id)",
    "typology_id": "the id of a typology of this kind",
    "id": "a Herald id: update that record instead of matching",
    "owner_id": "the owning user's id: superusers any, others only their own",
}
_ALIASES = {
    "phone": "sms",
    "mobile": "sms",
    "telefono": "sms",
    "cellulare": "sms",
    "vat": "vat_number",
    "partita_iva": "vat_number",
    "codice_fiscale": "fiscal_code",
    "chat_id": "telegram_chat_id",
    "nome": "name",
    "tipologia": "typology",
}
DELIMITERS = (";", ",", "\t")
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


def csv_columns_help() -> str:
    """The accepted columns, one per line (for --help and the API's description)."""
    return "\n".join(f"  {name:<17} {meaning}" for name, meaning in CSV_COLUMNS.items())


@dataclass
class ParsedCsv:
    rows: list[ImportRow]
    ignored_columns: list[str]
    columns: list[str]
    delimiter: str


def _decode(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8-sig")  # skips the byte order mark spreadsheets write
    except UnicodeDecodeError:
        raise ApiError(
            422,
            "validation_error",
            "the CSV file must be UTF-8 encoded (in a spreadsheet: save as 'CSV UTF-8')",
        ) from None
    if "\x00" in text:
        raise ApiError(422, "validation_error", "the CSV file contains NUL characters")
    return text


def detect_delimiter(text: str) -> str:
    """The delimiter of the header line: the most frequent of ``;``, ``,`` and tab.

    Column names never contain delimiters, so counting them in the header is reliable where
    guessing from the data is not (a ``,`` inside a note, a ``;`` in an address).
    """
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _column_name(raw: str) -> str:
    name = raw.strip().lower().replace(" ", "_").replace("-", "_")
    return _ALIASES.get(name, name)


def _header(reader: Any) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        raise ApiError(422, "validation_error", "the CSV file is empty") from None
    columns = [_column_name(h) for h in header]
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
    text = _decode(raw)
    delimiter = detect_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
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
    return ParsedCsv(rows, ignored, [c for c in columns if c in CSV_COLUMNS], delimiter)
