"""Running a few fixed, hot statements straight on asyncpg, and autocommit helpers.

For the bot's per-update queries SQLAlchemy's execution machinery (cache keys, execution
contexts, result objects, greenlet hops) costs more CPU than the round trip itself
(bench/updates.py). Statements are still written and compiled by SQLAlchemy, and values still go
through the column types' bind processors, so they are encoded exactly as SQLAlchemy would.
"""

from __future__ import annotations

import asyncio
import weakref
from functools import lru_cache
from typing import Any

from sqlalchemy import TextClause
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import Pool, QueuePool
from sqlalchemy.util import greenlet_spawn

from persistence.database import SessionFactory


def engine_of(sessions: SessionFactory) -> AsyncEngine:
    """The engine the session factory is bound to (hot paths run Core on it, no ORM session)."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        raise TypeError("the session factory must be bound to an AsyncEngine")
    return bind


async def driver_in_transaction(connection: AsyncConnection) -> Any:
    """The asyncpg connection under ``connection``, inside its SQLAlchemy transaction.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement it runs itself: a
    statement sent straight to asyncpg before that would commit on its own, apart from the rest
    of the transaction.
    """
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    if not driver.is_in_transaction() and connection.in_transaction():
        await connection.exec_driver_sql("SELECT 1")  # the adapter's BEGIN goes out with it
    return driver


async def autocommit(connection: AsyncConnection) -> AsyncConnection:
    """A single statement needs no transaction: no BEGIN/COMMIT round trips around it."""
    return await connection.execution_options(isolation_level="AUTOCOMMIT")


class DriverStatement:
    """A typed ``text()`` compiled once for PostgreSQL and run straight on asyncpg.

    The per-update queries are a handful of fixed statements; SQLAlchemy's execution machinery
    (cache keys, execution contexts, result objects, greenlet hops) costs more CPU than the
    round trip itself. The binds still go through the column types' bind processors, so values
    are encoded exactly as SQLAlchemy would encode them.
    """

    def __init__(self, statement: TextClause, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self._binds: list[tuple[str, Any, Any]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]  # its value is the fixed one, if any (``kind_0``)
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self._binds.append((name, bind.value, processor))

    def arguments(self, params: dict[str, Any]) -> list[Any]:
        arguments: list[Any] = []
        for name, fixed, processor in self._binds:
            value = params.get(name, fixed)
            arguments.append(processor(value) if processor is not None else value)
        return arguments

    async def fetch(self, engine: AsyncEngine, params: dict[str, Any]) -> list[Any]:
        """The rows, on a pooled connection outside any transaction (autocommit)."""
        arguments = self.arguments(params)
        async with _pool_slots(engine):
            return await self._fetch(engine, arguments)

    async def _fetch(self, engine: AsyncEngine, arguments: list[Any]) -> list[Any]:
        raw = await engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None
            rows: list[Any] = await driver.fetch(self.sql, *arguments)
        except BaseException as exc:
            # A server error (it has a SQLSTATE) leaves the connection usable; anything else
            # (lost connection, cancelled mid-query) may not: the pool must not hand it out.
            if getattr(exc, "sqlstate", None) is None:
                await greenlet_spawn(raw.invalidate, exc)
            raise
        finally:
            await greenlet_spawn(raw.close)
        return rows


_SLOTS: weakref.WeakKeyDictionary[Pool, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _pool_slots(engine: AsyncEngine) -> asyncio.Semaphore:
    """At most the pool's steady size of these queries at once: with many updates in flight,
    going past it would open overflow connections, each dropped again when checked in (a new
    connection costs milliseconds of CPU, and its statements are prepared anew); waiting a
    moment for a pooled one is far cheaper.
    """
    pool = engine.sync_engine.pool
    slots = _SLOTS.get(pool)
    if slots is None:
        size = pool.size() if isinstance(pool, QueuePool) else 1
        slots = _SLOTS[pool] = asyncio.Semaphore(max(size, 1))
    return slots


@lru_cache(maxsize=16)
def driver_statement(statement: TextClause, dialect: Dialect) -> DriverStatement:
    return DriverStatement(statement, dialect)
