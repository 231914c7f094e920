"""INSERT ... ON CONFLICT DO UPDATE for both dialects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase


async def upsert(
    session: AsyncSession,
    model: type[DeclarativeBase],
    rows: Sequence[dict[str, Any]],
    key_columns: Sequence[str],
) -> None:
    """Insert ``rows`` or overwrite the non-key columns of rows that already exist."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(model).values(list(rows))
    updated = {c: statement.excluded[c] for c in rows[0] if c not in key_columns}
    await session.execute(
        statement.on_conflict_do_update(index_elements=list(key_columns), set_=updated)
    )
