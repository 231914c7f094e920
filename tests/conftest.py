"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

A throwaway PostgreSQL database is created for the test session and dropped afterwards. Without a
reachable server the PostgreSQL variants skip with the reason, unless HERALD_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import telegram
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from channels.skebby_gateway import SkebbyGateway
from persistence.database import SessionFactory, create_engine, create_session_factory
from persistence.migrate import upgrade
from persistence.models import Base
from sandbox.skebby_simulator import SkebbySimulator
from sandbox.telegram_simulator import TelegramSimulator
from tests.cli_support import Herald, configure
from tests.factories import EpochClock

POSTGRES_ADMIN_URL = os.environ.get(
    "HERALD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("HERALD_REQUIRE_POSTGRES") == "1"


@dataclass
class Database:
    backend: str
    url: str
    engine: AsyncEngine
    sessions: SessionFactory


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def _create_postgres_database() -> str:
    name = f"herald_test_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return str(make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False))


async def _drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated throwaway PostgreSQL database for the whole test session."""
    try:
        url = asyncio.run(_create_postgres_database())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}"
        if REQUIRE_POSTGRES:
            pytest.fail(f"HERALD_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    try:
        asyncio.run(_migrate(url))
        yield url
    finally:
        asyncio.run(_drop_postgres_database(url))


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite file for the whole test session."""
    path: Path = tmp_path_factory.mktemp("sqlite") / "herald-test.db"
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(_migrate(url))
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of a migrated database; each test using it runs once per backend."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


async def _empty_all_tables(engine: AsyncEngine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    async with engine.begin() as conn:  # DELETE beats TRUNCATE on a few small tables
        for table in tables:
            await conn.execute(text(f'DELETE FROM "{table}"'))  # noqa: S608 - our table names


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """An engine and session factory on a migrated database, emptied after the test."""
    engine = create_engine(database_url)
    backend = engine.dialect.name
    try:
        yield Database(backend, database_url, engine, create_session_factory(engine))
    finally:
        await _empty_all_tables(engine)
        await engine.dispose()


@pytest.fixture
async def telegram_sim() -> AsyncIterator[TelegramSimulator]:
    """The project's Telegram Bot API simulator on a free loopback port."""
    async with TelegramSimulator() as simulator:
        yield simulator


@pytest.fixture
def herald(
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Herald:
    """The real ``herald`` command line on the test database (both backends, through ``db``)."""
    configure(monkeypatch, db.url, tmp_path / "data")
    return Herald(capsys)


@pytest.fixture
async def telegram_bot(telegram_sim: TelegramSimulator) -> AsyncIterator[telegram.Bot]:
    """A python-telegram-bot ``Bot`` talking to ``telegram_sim``."""
    async with telegram.Bot(telegram_sim.token, base_url=telegram_sim.base_url) as bot:
        yield bot


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp client, for calls made the way another program would make them."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def epoch_clock() -> EpochClock:
    """A ``time.time``-style clock that moves only when the test moves it."""
    return EpochClock()


@pytest.fixture
async def skebby_sim(epoch_clock: EpochClock) -> AsyncIterator[SkebbySimulator]:
    """The Skebby simulator with 1000 credits per message type, on ``epoch_clock``."""
    async with SkebbySimulator(credits=1000, clock=epoch_clock) as simulator:
        yield simulator


@pytest.fixture
async def skebby_gateway(skebby_sim: SkebbySimulator) -> AsyncIterator[SkebbyGateway]:
    """A Skebby client logged in to ``skebby_sim`` on first use."""
    async with SkebbyGateway(skebby_sim.base_url, "sandbox", "sandbox", timeout=5) as gateway:
        yield gateway
