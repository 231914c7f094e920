"""``column IN ids`` for lists of any length, fast on both databases.

SQLAlchemy renders a bound parameter per element of an ``IN`` list, which costs seconds at
100,000 ids; PostgreSQL takes the whole list as one array parameter instead (``= ANY($1)``).
SQLite has no arrays, so there the ids go in chunks below its bound-parameter limit.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ARRAY, BigInteger, ColumnElement, any_, bindparam
from sqlalchemy.orm import InstrumentedAttribute

SQLITE_CHUNK = 5000


def id_filters(
    column: InstrumentedAttribute[int] | InstrumentedAttribute[int | None],
    ids: Sequence[int],
    dialect: str,
) -> list[ColumnElement[bool]]:
    """One filter per query to run: a single array filter on PostgreSQL, chunks elsewhere."""
    if dialect == "postgresql":
        return [column == any_(bindparam("ids", list(ids), type_=ARRAY(BigInteger)))]
    return [column.in_(ids[i : i + SQLITE_CHUNK]) for i in range(0, len(ids), SQLITE_CHUNK)]
