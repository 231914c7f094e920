"""Loading a broadcast's recipients: the visible records of one kind, as whole columns.

A broadcast may name 100,000 recipients, so they are loaded as columns (one list per field) with
Core statements, never as ORM objects. On PostgreSQL the ids travel as one array parameter and
the answer is one row of arrays in the caller's order; SQLite reads rows in id chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ARRAY, BigInteger, bindparam, column, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from persistence.id_filter import id_filters
from persistence.models import User
from persistence.recipient_kinds import RecipientKind


async def load_recipient_columns(
    session: AsyncSession,
    kind: RecipientKind,
    user: User,
    fields: Sequence[str],
    *,
    ids: Sequence[int] | None = None,
    typology_ids: Sequence[int] | None = None,
) -> list[Sequence[Any]]:
    """The ``user``-visible recipients of ``kind`` among ``ids`` (distinct; kept in their order)
    or in ``typology_ids`` (by id): a column of ids, then one column per name in ``fields``."""
    m = kind.model
    columns = [m.id, *(getattr(m, name) for name in fields)]
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        return await _columns_postgresql(connection, kind, user, columns, ids, typology_ids)
    return await _columns_by_rows(connection, kind, user, columns, ids, typology_ids)


async def _columns_postgresql(
    connection: AsyncConnection,
    kind: RecipientKind,
    user: User,
    columns: Sequence[Any],
    ids: Sequence[int] | None,
    typology_ids: Sequence[int] | None,
) -> list[Sequence[Any]]:
    m = kind.model
    rows = select(*columns).where(kind.visible_to(user))
    if ids is not None:
        # The ids as one array parameter; its ordinality keeps the caller's order.
        wanted = (
            func.unnest(bindparam("ids", list(ids), type_=ARRAY(BigInteger)))
            .table_valued(column("id", BigInteger), with_ordinality="position")
            .render_derived()
        )
        rows = rows.join_from(wanted, m, m.id == wanted.c.id).order_by(wanted.c.position)
    else:
        rows = rows.where(m.typology_id.in_(typology_ids or [])).order_by(m.id)
    ordered = rows.subquery()
    # One row of arrays instead of a row per recipient: asyncpg decodes each column in one go,
    # and no per-recipient record objects pile up for the garbage collector. An aggregate over a
    # sorted subquery, with nothing else at its level, receives the rows in that order.
    statement = select(*(func.array_agg(c) for c in ordered.c))
    arrays = (await connection.execute(statement)).one()
    return [a if a is not None else [] for a in arrays]


async def _columns_by_rows(
    connection: AsyncConnection,
    kind: RecipientKind,
    user: User,
    columns: Sequence[Any],
    ids: Sequence[int] | None,
    typology_ids: Sequence[int] | None,
) -> list[Sequence[Any]]:
    m = kind.model
    rows = select(*columns).where(kind.visible_to(user))
    records: list[Any] = []
    if ids is None:
        statement = rows.where(m.typology_id.in_(typology_ids or [])).order_by(m.id)
        records = list(await connection.execute(statement))
    else:
        by_id: dict[int, Any] = {}
        for where in id_filters(m.id, ids, connection.dialect.name):
            by_id.update(
                (record[0], record) for record in await connection.execute(rows.where(where))
            )
        records = [by_id[i] for i in ids if i in by_id]  # the caller's order
    if not records:
        return [[] for _ in columns]
    return list(zip(*records, strict=True))
