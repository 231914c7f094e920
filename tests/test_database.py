"""The database layer: URLs, engine settings, migrations in step with the models, history kept."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, select, text
from sqlalchemy.engine import Connection

from persistence.database import create_engine, normalize_database_url
from persistence.migrate import SchemaOutOfDateError, ensure_schema_current, head_revision
from persistence.models import (
    Base,
    Message,
    MessageRecipient,
    MessageTypology,
    User,
)
from tests.conftest import Database


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgresql://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///./data/x.db", "sqlite+aiosqlite:///./data/x.db"),
    ],
)
def test_hosting_platform_urls_are_accepted(given: str, expected: str) -> None:
    """The postgres:// and postgresql:// URLs hosting platforms hand out select the async driver."""
    assert normalize_database_url(given).render_as_string(hide_password=False) == expected


async def test_sqlite_runs_with_wal_and_foreign_keys(tmp_path: object) -> None:
    """The embedded database uses WAL, enforces foreign keys and waits on locks."""
    engine = create_engine(f"sqlite:///{tmp_path}/sub/dir/h.db")
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 10000
    finally:
        await engine.dispose()


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_match_the_models(db: Database) -> None:
    """Applying the migrations yields exactly the schema the models describe."""
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []
    await ensure_schema_current(db.engine)


async def test_service_refuses_an_out_of_date_schema(tmp_path: object) -> None:
    """An empty database is refused with the command that fixes it."""
    engine = create_engine(f"sqlite:///{tmp_path}/empty.db")
    try:
        with pytest.raises(SchemaOutOfDateError, match="herald db upgrade") as info:
            await ensure_schema_current(engine)
        assert head_revision() in str(info.value)
    finally:
        await engine.dispose()


async def test_deleting_a_user_or_typology_keeps_sent_history(db: Database) -> None:
    """Removing the sender and the message typology leaves messages and deliveries in place."""
    async with db.sessions.begin() as session:
        user = User(username="alice")
        typology = MessageTypology(name="news")
        session.add_all([user, typology])
        await session.flush()
        message = Message(
            broadcast_id="b1",
            channel="telegram",
            body="hi",
            sender_id=user.id,
            typology_id=typology.id,
        )
        session.add(message)
        await session.flush()
        session.add(
            MessageRecipient(
                message_id=message.id,
                channel="telegram",
                recipient_kind="customer",
                recipient_id=1,
                address="42",
            )
        )
    async with db.sessions.begin() as session:
        await session.execute(delete(User))
        await session.execute(delete(MessageTypology))
    async with db.sessions() as session:
        kept = (await session.execute(select(Message))).scalar_one()
        assert kept.sender_id is None and kept.typology_id is None and kept.body == "hi"
        assert len((await session.execute(select(MessageRecipient))).all()) == 1
