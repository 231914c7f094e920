"""Recipients of every registered kind: filtered lists, create, update and delete (the CSV
import is in ``recipient_import``).

Values arrive already validated and normalised (E.164 numbers, checked emails); these functions
check what only the database knows (the typology and the owner exist, the id is visible) and apply
owner scoping: a user who is not a superuser reads and changes only the recipients they own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from persistence import audit
from persistence.audit import Actor, AuditAction
from persistence.common_queries import (
    ConflictError,
    InvalidFieldError,
    NotFoundError,
    Page,
    PageRequest,
    fetch_page,
    like_pattern,
    require_may_name_owner,
)
from persistence.models import Customer, PreferenceSource, User
from persistence.preferences import forget_preferences, mirror_telegram
from persistence.recipient_kinds import RecipientKind

STAFF = PreferenceSource.STAFF

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
    "external_id",
    "typology_id",
    "owner_id",
)
# Columns only some kinds have (an external subject's customer); refused on the others.
LINK_FIELDS = ("related_customer_id",)


@dataclass(frozen=True)
class RecipientFilter:
    typology_id: int | None = None
    search: str | None = None
    has_telegram: bool | None = None
    has_email: bool | None = None
    has_sms: bool | None = None
    blocked: bool | None = None
    opted_out: bool | None = None
    owner_id: int | None = None


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


async def _check_external_id(
    session: AsyncSession,
    kind: RecipientKind,
    owner_id: int | None,
    external_id: str,
    rid: int | None,
) -> None:
    m = kind.model
    owner = m.owner_id.is_(None) if owner_id is None else m.owner_id == owner_id
    statement = select(m.id).where(m.external_id == external_id, owner)
    if rid is not None:
        statement = statement.where(m.id != rid)
    other = (await session.execute(statement)).scalar()
    if other is not None:
        raise ConflictError(
            f"external_id {external_id!r} already belongs to {kind.name} {other}",
            {"field": "external_id", "id": other},
        )


async def _check_references(
    session: AsyncSession, kind: RecipientKind, values: Mapping[str, Any], user: User
) -> None:
    typology_id = values.get("typology_id")
    if typology_id is not None and await session.get(kind.typology_model, typology_id) is None:
        raise InvalidFieldError("typology_id", f"no {kind.name} typology with id {typology_id}")
    owner_id = values.get("owner_id")
    if owner_id is not None and await session.get(User, owner_id) is None:
        raise InvalidFieldError("owner_id", f"no user with id {owner_id}")
    if "related_customer_id" in values:
        await _check_related_customer(session, kind, values["related_customer_id"], user)


def _own_columns(kind: RecipientKind, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` without the columns this kind does not have (checked empty before)."""
    return {k: v for k, v in values.items() if hasattr(kind.model, k)}


async def _check_related_customer(
    session: AsyncSession, kind: RecipientKind, customer_id: int | None, user: User
) -> None:
    """Only a kind with the column links to a customer, and only to one the user may see (an
    invisible customer reads as missing: its existence is not the caller's to learn)."""
    if not hasattr(kind.model, "related_customer_id"):
        if customer_id is None:
            return
        raise InvalidFieldError("related_customer_id", f"a {kind.name} does not act for a customer")
    if customer_id is None:
        return
    visible = select(Customer.id).where(Customer.id == customer_id)
    if not user.is_superuser:
        visible = visible.where(Customer.owner_id == user.id)
    if await session.scalar(visible) is None:
        raise InvalidFieldError("related_customer_id", f"no customer with id {customer_id}")


def owned_values(user: User, values: Mapping[str, Any]) -> dict[str, Any]:
    """A new record's values: a superuser may name any owner (or none); everyone else owns
    what they create, and naming anyone else is refused (never silently replaced)."""
    result = {k: v for k, v in values.items() if k in RECIPIENT_FIELDS or k in LINK_FIELDS}
    if result.get("owner_id") is not None:
        require_may_name_owner(user, result["owner_id"])
    elif not user.is_superuser:
        result["owner_id"] = user.id
    return result


async def create_recipient(
    session: AsyncSession,
    kind: RecipientKind,
    user: User,
    values: Mapping[str, Any],
    *,
    actor: Actor,
) -> Any:
    row = owned_values(user, values)
    await _check_references(session, kind, row, user)
    row = _own_columns(kind, row)
    if row.get("external_id"):
        await _check_external_id(session, kind, row.get("owner_id"), row["external_id"], None)
    record = kind.model(**row)
    session.add(record)
    await session.flush()
    await session.refresh(record)
    await audit.record(session, actor, AuditAction.RECIPIENT_CREATED, kind.name, [record.id])
    if record.telegram_opted_out:
        await mirror_telegram(session, kind.name, [record.id], False, datetime.now(UTC), STAFF)
    return record


async def update_recipient(
    session: AsyncSession,
    kind: RecipientKind,
    user: User,
    rid: int,
    values: Mapping[str, Any],
    *,
    actor: Actor,
) -> Any:
    """Change ``values``; the audit log lists the fields that changed (names, not values: it
    is no second copy of people's addresses)."""
    record = await get_recipient(session, kind, user, rid)
    changes = {k: v for k, v in values.items() if k in RECIPIENT_FIELDS or k in LINK_FIELDS}
    if "owner_id" in changes:
        require_may_name_owner(user, changes["owner_id"])
    await _check_references(session, kind, changes, user)
    changes = _own_columns(kind, changes)
    # A new owner must not already have a record with this one's external_id either.
    external_id = changes.get("external_id", record.external_id)
    if external_id and ("external_id" in changes or "owner_id" in changes):
        owner_id = changes.get("owner_id", record.owner_id)
        await _check_external_id(session, kind, owner_id, external_id, rid)
    changed = sorted(name for name, value in changes.items() if getattr(record, name) != value)
    for name, value in changes.items():
        setattr(record, name, value)
    try:
        await session.flush()
    except IntegrityError:  # lost a race with the same external_id
        raise ConflictError(
            f"external_id {external_id!r} is already used", {"field": "external_id"}
        ) from None
    await session.refresh(record)
    await audit.record(
        session, actor, AuditAction.RECIPIENT_UPDATED, kind.name, [rid], {"fields": changed}
    )
    if "telegram_opted_out" in changed:  # the channel preferences follow the flag
        accepted = not record.telegram_opted_out
        await mirror_telegram(session, kind.name, [rid], accepted, datetime.now(UTC), STAFF)
    return record


async def delete_recipient(
    session: AsyncSession, kind: RecipientKind, user: User, rid: int, *, actor: Actor
) -> None:
    """Deleting a recipient keeps every message and delivery that named it (history stays)."""
    await get_recipient(session, kind, user, rid)
    await session.execute(delete(kind.model).where(kind.model.id == rid))
    await forget_preferences(session, kind.name, [rid])
    await audit.record(session, actor, AuditAction.RECIPIENT_DELETED, kind.name, [rid])
