"""Recipients of every registered kind: filtered lists, create/update/delete, and bulk import.

Values arrive already validated and normalised (E.164 numbers, checked emails); these functions
check what only the database knows (the typology and the owner exist, the id is visible) and apply
owner scoping: a user who is not a superuser reads and changes only the recipients they own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.common_queries import (
    InvalidFieldError,
    NotFoundError,
    Page,
    PageRequest,
    chunks,
    fetch_page,
    like_pattern,
)
from persistence.models import User
from persistence.recipient_kinds import RecipientKind

RECIPIENT_FIELDS = (
    "name",
    "vat_number",
    "fiscal_code",
    "sms",
    "email",
    "telegram_chat_id",
    "telegram_opted_out",
    "telegram_blocked",
    "note",
    "extra",
    "typology_id",
    "owner_id",
)


@dataclass(frozen=True)
class RecipientFilter:
    typology_id: int | None = None
    search: str | None = None
    has_telegram: bool | None = None
    has_email: bool | None = None
    has_sms: bool | None = None
    blocked: bool | None = None
    owner_id: int | None = None
    opted_out: bool | None = None


def _presence(column: Any, wanted: bool) -> Any:
    present = column.is_not(None) if wanted else column.is_(None)
    if wanted and column.type.python_type is str:
        return present & (column != "")
    if not wanted and column.type.python_type is str:
        return or_(column.is_(None), column == "")
    return present


def _filtered(statement: Any, kind: RecipientKind, user: User, filters: RecipientFilter) -> Any:
    m = kind.model
    statement = statement.where(kind.visible_to(user))
    if filters.typology_id is not None:
        statement = statement.where(m.typology_id == filters.typology_id)
    if filters.search:
        statement = statement.where(m.name.ilike(like_pattern(filters.search), escape="\\"))
    if filters.has_telegram is not None:
        statement = statement.where(_presence(m.telegram_chat_id, filters.has_telegram))
    if filters.has_email is not None:
        statement = statement.where(_presence(m.email, filters.has_email))
    if filters.has_sms is not None:
        statement = statement.where(_presence(m.sms, filters.has_sms))
    if filters.blocked is not None:
        statement = statement.where(m.telegram_blocked.is_(filters.blocked))
    if filters.opted_out is not None:
        statement = statement.where(m.telegram_opted_out.is_(filters.opted_out))
    if filters.owner_id is not None:
        statement = statement.where(m.owner_id == filters.owner_id)
    return statement


async def list_recipients(
    session: AsyncSession,
    kind: RecipientKind,
    user: User,
    filters: RecipientFilter,
    page: PageRequest,
) -> Page[Any]:
    m = kind.model
    statement = _filtered(select(m), kind, user, filters)
    rows = await fetch_page(session, statement.order_by(m.id), page)
    return Page([row[0] for row in rows.items], rows.limit, rows.offset, rows.has_more)


async def recipient_ids(
    session: AsyncSession, kind: RecipientKind, user: User, filters: RecipientFilter, limit: int
) -> list[int]:
    """The ids of every recipient matching ``filters`` that ``user`` may see (at most ``limit``)."""
    m = kind.model
    statement = _filtered(select(m.id), kind, user, filters).order_by(m.id).limit(limit)
    return [rid for (rid,) in await session.execute(statement)]


async def get_recipient(session: AsyncSession, kind: RecipientKind, user: User, rid: int) -> Any:
    m = kind.model
    record = (await session.execute(select(m).where(m.id == rid, kind.visible_to(user)))).scalar()
    if record is None:
        raise NotFoundError(f"{kind.name} {rid}")
    return record


async def _check_references(
    session: AsyncSession, kind: RecipientKind, values: Mapping[str, Any]
) -> None:
    typology_id = values.get("typology_id")
    if typology_id is not None and await session.get(kind.typology_model, typology_id) is None:
        raise InvalidFieldError("typology_id", f"no {kind.name} typology with id {typology_id}")
    owner_id = values.get("owner_id")
    if owner_id is not None and await session.get(User, owner_id) is None:
        raise InvalidFieldError("owner_id", f"no user with id {owner_id}")


def _owned_values(user: User, values: Mapping[str, Any]) -> dict[str, Any]:
    """Only a superuser chooses the owner; everyone else creates records they own."""
    result = {k: v for k, v in values.items() if k in RECIPIENT_FIELDS}
    if not user.is_superuser or "owner_id" not in result:
        result["owner_id"] = user.id if not user.is_superuser else result.get("owner_id")
    return result


async def create_recipient(
    session: AsyncSession, kind: RecipientKind, user: User, values: Mapping[str, Any]
) -> Any:
    row = _owned_values(user, values)
    await _check_references(session, kind, row)
    record = kind.model(**row)
    session.add(record)
    await session.flush()
    await session.refresh(record)
    return record


async def update_recipient(
    session: AsyncSession, kind: RecipientKind, user: User, rid: int, values: Mapping[str, Any]
) -> Any:
    record = await get_recipient(session, kind, user, rid)
    changes = {k: v for k, v in values.items() if k in RECIPIENT_FIELDS}
    if not user.is_superuser:
        changes.pop("owner_id", None)
    await _check_references(session, kind, changes)
    for name, value in changes.items():
        setattr(record, name, value)
    await session.flush()
    await session.refresh(record)
    return record


async def delete_recipient(
    session: AsyncSession, kind: RecipientKind, user: User, rid: int
) -> None:
    """Deleting a recipient keeps every message and delivery that named it (history stays)."""
    await get_recipient(session, kind, user, rid)
    await session.execute(delete(kind.model).where(kind.model.id == rid))


# --- import ---------------------------------------------------------------------------------


@dataclass
class ImportRow:
    """One parsed CSV row: its line number, the values, and the problems found so far."""

    line: int
    values: dict[str, Any]
    errors: list[dict[str, str]] = field(default_factory=list)
    typology_name: str | None = None


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    rejected: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    applied: bool = True


async def import_recipients(
    session: AsyncSession,
    kind: RecipientKind,
    user: User,
    rows: Sequence[ImportRow],
    *,
    all_or_nothing: bool,
) -> ImportReport:
    """Create rows without an ``id``; update visible records for rows with one.

    Typologies may be named (``typology`` column) or given by id. With ``all_or_nothing`` a
    single rejected row means nothing is written (the caller rolls the transaction back).
    """
    typologies = await _typology_ids(session, kind)
    wanted_ids = [r.values["id"] for r in rows if r.values.get("id") is not None]
    existing: set[int] = set()
    for chunk in chunks(wanted_ids):
        found = await session.execute(
            select(kind.model.id).where(kind.model.id.in_(chunk), kind.visible_to(user))
        )
        existing.update(rid for (rid,) in found)
    for row in rows:
        _resolve_row(kind, row, typologies, existing)
    report = ImportReport()
    creates: list[tuple[ImportRow, dict[str, Any]]] = []
    updates: list[tuple[ImportRow, dict[str, Any]]] = []
    for row in rows:
        if row.errors:
            report.rejected += 1
            report.rows.append({"line": row.line, "status": "rejected", "errors": row.errors})
            continue
        target = updates if row.values.get("id") is not None else creates
        target.append((row, row.values))
    if all_or_nothing and report.rejected:
        report.applied = False
        return report
    if creates:
        values = [_owned_values(user, v) for _, v in creates]
        new_ids = await _bulk_create(session, kind, values)
        for (row, _), new_id in zip(creates, new_ids, strict=True):
            report.rows.append({"line": row.line, "status": "created", "id": new_id})
        report.created = len(creates)
    for row, update_values in updates:
        rid = update_values["id"]
        changes = {
            k: v for k, v in update_values.items() if k in RECIPIENT_FIELDS and k != "owner_id"
        }
        await session.execute(update(kind.model).where(kind.model.id == rid).values(**changes))
        report.rows.append({"line": row.line, "status": "updated", "id": rid})
        report.updated += 1
    report.rows.sort(key=lambda r: int(r["line"]))
    return report


async def _typology_ids(session: AsyncSession, kind: RecipientKind) -> dict[str, int]:
    model = kind.typology_model
    rows = await session.execute(select(model.name, model.id))
    return {name.casefold(): tid for name, tid in rows}


def _resolve_row(
    kind: RecipientKind, row: ImportRow, typologies: dict[str, int], existing: set[int]
) -> None:
    rid = row.values.get("id")
    if rid is not None and rid not in existing:
        row.errors.append({"field": "id", "message": f"no {kind.name} {rid} of yours to update"})
    if row.typology_name:
        tid = typologies.get(row.typology_name.casefold())
        if tid is None:
            row.errors.append(
                {"field": "typology", "message": f"unknown typology {row.typology_name!r}"}
            )
        else:
            row.values["typology_id"] = tid
    elif (
        row.values.get("typology_id") is not None
        and row.values["typology_id"] not in typologies.values()
    ):
        row.errors.append(
            {"field": "typology_id", "message": f"no typology {row.values['typology_id']}"}
        )


async def _bulk_create(
    session: AsyncSession, kind: RecipientKind, values: list[dict[str, Any]]
) -> list[int]:
    """One INSERT per row batch with RETURNING, in the order given."""
    columns = {name for row in values for name in row}
    rows = [{name: row.get(name, _default(name)) for name in columns} for row in values]
    ids: list[int] = []
    for start in range(0, len(rows), 1000):
        batch = rows[start : start + 1000]
        result = await session.execute(
            insert(kind.model).returning(kind.model.id, sort_by_parameter_order=True), batch
        )
        ids.extend(int(rid) for rid in result.scalars())
    return ids


def _default(name: str) -> Any:
    if name in ("telegram_opted_out", "telegram_blocked"):
        return False
    if name == "note":
        return ""
    if name == "extra":
        return {}
    return None
