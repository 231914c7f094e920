"""Which failures count as "the database is unreachable": the real errors, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from persistence.availability import database_unavailable
from persistence.models import User
from tests.conftest import Database
from tests.database_faults import faulty_database
from tests.tcp_proxy import TcpProxy


async def _failure(database: Database, statement: str = "SELECT 1") -> BaseException:
    with pytest.raises(Exception) as failed:  # which one is the point of the test
        async with database.engine.connect() as connection:
            await connection.execute(text(statement))
    return failed.value


async def test_a_database_that_went_away_is_unreachable(db: Database, tmp_path: Path) -> None:
    """Refused connections and SQLite's "unable to open database file" are an outage."""
    async with faulty_database(db, tmp_path) as faulty:
        async with faulty.db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        await faulty.cut()
        cause = database_unavailable(await _failure(faulty.db))
    expected = "connection" if db.backend == "postgresql" else "unable to open database file"
    assert cause is not None and expected in cause


async def test_a_hung_server_is_unreachable_once_connecting_times_out(postgres_url: str) -> None:
    """A PostgreSQL that accepts connections and never answers is an outage too (SQLite has no
    server that could hang)."""
    url = make_url(postgres_url)
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        await proxy.cut("hang")
        engine = create_async_engine(
            url.set(drivername="postgresql+asyncpg", host="127.0.0.1", port=proxy.port),
            connect_args={"timeout": 0.3},
        )
        try:
            with pytest.raises(TimeoutError) as failed:
                async with engine.connect():
                    pass
        finally:
            await engine.dispose()
    assert database_unavailable(failed.value) == "timed out connecting"


async def test_mistakes_and_bugs_are_not_an_outage(db: Database) -> None:
    """A missing table, a broken constraint or a syntax error is not a 503."""
    assert database_unavailable(await _failure(db, "SELECT * FROM no_such_table")) is None
    assert database_unavailable(await _failure(db, "SELEC 1")) is None
    async with db.sessions() as session:
        session.add_all([User(username="twin"), User(username="twin")])
        with pytest.raises(IntegrityError) as duplicate:
            await session.commit()
    assert database_unavailable(duplicate.value) is None
    assert database_unavailable(ConnectionRefusedError(111, "not from a database")) is None
