"""Typologies (recipient typologies per kind, and message typologies): names are unique."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.common_queries import (
    ConflictError,
    NotFoundError,
    Page,
    PageRequest,
    fetch_page,
    like_pattern,
)


async def list_typologies(
    session: AsyncSession, model: type[Any], search: str | None, page: PageRequest
) -> Page[Any]:
    statement = select(model)
    if search:
        statement = statement.where(model.name.ilike(like_pattern(search), escape="\\"))
    rows = await fetch_page(session, statement.order_by(model.id), page)
    return Page([row[0] for row in rows.items], rows.limit, rows.offset, rows.has_more)


async def get_typology(session: AsyncSession, model: type[Any], tid: int) -> Any:
    record = await session.get(model, tid)
    if record is None:
        raise NotFoundError(f"typology {tid}")
    return record


async def _ensure_unique(
    session: AsyncSession, model: type[Any], name: str, tid: int | None
) -> None:
    statement = select(model.id).where(func.lower(model.name) == name.lower())
    if tid is not None:
        statement = statement.where(model.id != tid)
    if (await session.execute(statement)).first() is not None:
        raise ConflictError(f"a typology named {name!r} already exists", {"field": "name"})


async def create_typology(
    session: AsyncSession, model: type[Any], values: Mapping[str, Any]
) -> Any:
    await _ensure_unique(session, model, values["name"], None)
    record = model(**values)
    session.add(record)
    try:
        await session.flush()
    except IntegrityError:  # lost a race with an identical name
        raise ConflictError(f"a typology named {values['name']!r} already exists") from None
    await session.refresh(record)
    return record


async def update_typology(
    session: AsyncSession, model: type[Any], tid: int, values: Mapping[str, Any]
) -> Any:
    record = await get_typology(session, model, tid)
    if "name" in values:
        await _ensure_unique(session, model, values["name"], tid)
    for name, value in values.items():
        setattr(record, name, value)
    try:
        await session.flush()
    except IntegrityError:
        raise ConflictError("a typology with that name already exists") from None
    await session.refresh(record)
    return record


async def delete_typology(session: AsyncSession, model: type[Any], tid: int) -> None:
    """Records and messages of this typology keep existing, with no typology."""
    record = await get_typology(session, model, tid)
    await session.delete(record)
    await session.flush()


async def find_typology(session: AsyncSession, model: type[Any], reference: str) -> Any:
    """A typology by id or by name (case-insensitive), as an operator types it."""
    if reference.isdigit():
        record = await session.get(model, int(reference))
        if record is not None:
            return record
    statement = select(model).where(func.lower(model.name) == reference.strip().lower())
    record = (await session.execute(statement)).scalar()
    if record is None:
        raise NotFoundError(f"typology {reference!r}")
    return record


async def typologies_named(
    session: AsyncSession, models: dict[str, type[Any]], name: str
) -> dict[str, int]:
    """The id of the typology called ``name`` in each of ``models`` (by key) that has one."""
    found: dict[str, int] = {}
    for key, model in models.items():
        statement = select(model.id).where(func.lower(model.name) == name.strip().lower())
        tid = (await session.execute(statement)).scalar()
        if tid is not None:
            found[key] = int(tid)
    return found
