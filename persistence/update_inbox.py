"""The durable webhook inbox: Telegram's updates stored before it gets its 200.

Any process may receive a webhook POST; it stores the raw update (once per bot and
``update_id``, so Telegram's redelivery is harmless) and answers only after the commit. The
Telegram leader takes pending updates in ``update_id`` order, marks them ``handling`` under its
name, and ``handled`` once its handlers are done; when it takes over from a dead leader it first
puts back what that one had taken. Handled updates are deleted after a while.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import BigInteger, String, bindparam, delete, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.database import SessionFactory
from persistence.driver_sql import driver_statement, engine_of
from persistence.models import TelegramUpdate
from persistence.notify import UPDATES_CHANNEL

U = TelegramUpdate
PENDING, HANDLING, HANDLED = "pending", "handling", "handled"


@dataclass(frozen=True)
class StoredUpdate:
    id: int
    update_id: int
    payload: dict[str, Any]


# PostgreSQL: the insert (and its NOTIFY) in one autocommit statement, one round trip: a webhook
# POST is answered after it (bench/updates.py measures it).
_INSERT_POSTGRES: Final = (
    "INSERT INTO telegram_updates (bot, update_id, payload, status) "
    "VALUES (:bot, :update_id, :payload, :status) "
    "ON CONFLICT (bot, update_id) DO NOTHING RETURNING id"
)
_STORE_BINDS: Final = (
    bindparam("bot", type_=String()),
    bindparam("update_id", type_=BigInteger()),
    bindparam("payload", type_=U.__table__.c.payload.type),
    bindparam("status", type_=String()),
)
_STORE_POSTGRES: Final = text(_INSERT_POSTGRES).bindparams(*_STORE_BINDS)
_STORE_AND_ANNOUNCE_POSTGRES: Final = text(
    f"WITH stored AS ({_INSERT_POSTGRES}) SELECT pg_notify(:channel, :bot) FROM stored"  # noqa: S608 - constants
).bindparams(*_STORE_BINDS, bindparam("channel", type_=String()))


async def store(
    sessions: SessionFactory,
    bot: str,
    update_id: int,
    payload: dict[str, Any],
    *,
    announce: bool = True,
) -> bool:
    """Keep the update unless it is already kept; True when it is new.

    ``announce`` NOTIFYs the other processes (their consumer may be the one to handle it); the
    receiver leaves it out when its own process consumes the updates: every NOTIFY serialises
    the commits of all processes on PostgreSQL's notification queue.
    """
    engine = engine_of(sessions)
    if engine.dialect.name == "postgresql":
        params = {"bot": bot, "update_id": update_id, "payload": payload, "status": PENDING}
        statement = _STORE_POSTGRES
        if announce:
            statement = _STORE_AND_ANNOUNCE_POSTGRES
            params["channel"] = UPDATES_CHANNEL
        return bool(await driver_statement(statement, engine.dialect).fetch(engine, params))
    async with sessions.begin() as session:
        inserted = (
            sqlite.insert(U)
            .values(bot=bot, update_id=update_id, payload=payload, status=PENDING)
            .on_conflict_do_nothing(index_elements=["bot", "update_id"])
            .returning(U.id)
        )
        return (await session.execute(inserted)).first() is not None


async def take(session: AsyncSession, bot: str, holder: str, limit: int) -> list[StoredUpdate]:
    """The oldest pending updates, now ``handling`` by ``holder``, in ``update_id`` order."""
    due = select(U.id).where(U.bot == bot, U.status == PENDING).order_by(U.update_id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = (
        await session.execute(
            update(U)
            .where(U.id.in_(due.scalar_subquery()))
            .values(status=HANDLING, holder=holder)
            .returning(U.id, U.update_id, U.payload)
            .execution_options(synchronize_session=False)
        )
    ).all()
    return sorted((StoredUpdate(i, u, dict(p)) for i, u, p in rows), key=lambda s: s.update_id)


async def mark_handled(
    session: AsyncSession, ids: Sequence[int], holder: str, now: datetime
) -> None:
    if ids:
        await session.execute(
            update(U)
            .where(U.id.in_(list(ids)), U.holder == holder)
            .values(status=HANDLED, handled_at=now)
            .execution_options(synchronize_session=False)
        )


async def put_back_others(session: AsyncSession, bot: str, holder: str) -> int:
    """A new leader's first step: updates a previous leader took but never finished are
    pending again (they are handled again: at least once)."""
    result = await session.execute(
        update(U)
        .where(U.bot == bot, U.status == HANDLING, U.holder != holder)
        .values(status=PENDING, holder=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def purge_handled(session: AsyncSession, before: datetime) -> int:
    result = await session.execute(delete(U).where(U.status == HANDLED, U.handled_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def pending_count(session: AsyncSession, bot: str) -> int:
    rows = await session.execute(
        select(U.id).where(U.bot == bot, U.status != HANDLED).limit(10_000)
    )
    return len(rows.all())
