"""Leaderships in the database: one row per leadership, held by one process until it expires.

A process acquires a free or expired leadership, or keeps its own, with one upsert whose update
only applies when the row is expired or already the caller's (atomic, no race between "is it
free?" and "take it"). The holder renews it with a conditional update well before it expires and
resigns it on a clean stop. On PostgreSQL the times are the server's (``clock_timestamp()``), so
the processes' own clocks never have to agree; SQLite runs one process, so its clock is the one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, literal, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.models import Leader

RESIGNED_CHANNEL = "herald_leaders"  # NOTIFY payload: the name of a leadership just given up


@dataclass(frozen=True)
class Leadership:
    name: str
    holder: str
    elected_at: datetime
    expires_at: datetime


def _times(session: AsyncSession, ttl: float) -> tuple[Any, Any]:
    """(now, expiry) as SQL: the server's clock on PostgreSQL, ours on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        now = func.clock_timestamp()
        return now, now + literal(timedelta(seconds=ttl))
    current = datetime.now(UTC)
    return literal(current, Leader.expires_at.type), literal(
        current + timedelta(seconds=ttl), Leader.expires_at.type
    )


async def acquire(session: AsyncSession, name: str, holder: str, ttl: float) -> bool:
    """Take ``name`` if it is free or expired (or keep it, if it is ours); True when held."""
    now, expires = _times(session, ttl)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Leader).values(name=name, holder=holder, elected_at=now, expires_at=expires)
    taken = Leader.__table__.c
    upsert = statement.on_conflict_do_update(
        index_elements=["name"],
        set_={
            "holder": statement.excluded.holder,
            "elected_at": statement.excluded.elected_at,
            "expires_at": statement.excluded.expires_at,
        },
        where=(taken.holder == statement.excluded.holder) | (taken.expires_at < now),
    ).returning(taken.holder)
    row = (await session.execute(upsert)).first()
    return row is not None and row[0] == holder


async def renew(session: AsyncSession, name: str, holder: str, ttl: float) -> bool:
    """Push the expiry out; False when another process holds it now (ours was taken over)."""
    _, expires = _times(session, ttl)
    row = (
        await session.execute(
            update(Leader)
            .where(Leader.name == name, Leader.holder == holder)
            .values(expires_at=expires)
            .returning(Leader.name)
        )
    ).first()
    return row is not None


async def resign(session: AsyncSession, name: str, holder: str) -> None:
    """Give ``name`` up now (a clean stop), and tell the other processes so one takes over at
    once instead of after the expiry."""
    await session.execute(delete(Leader).where(Leader.name == name, Leader.holder == holder))
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:channel, :name)"), {"channel": RESIGNED_CHANNEL, "name": name}
        )


async def release_all_of(session: AsyncSession, holder: str) -> None:
    """Free every leadership ``holder`` held (it is known to be dead)."""
    await session.execute(delete(Leader).where(Leader.holder == holder))


async def holder_of(session: AsyncSession, name: str) -> Leadership | None:
    row = (await session.execute(select(Leader).where(Leader.name == name))).scalar()
    if row is None:
        return None
    return Leadership(row.name, row.holder, row.elected_at, row.expires_at)
