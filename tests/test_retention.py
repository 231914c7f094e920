"""Retention: stale bot conversations and old idempotency answers go; message history stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from persistence.models import BotConversation, IdempotencyKey, Message
from persistence.retention import purge_old_data
from tests.conftest import Database


async def test_purge_drops_only_stale_conversations_and_old_keys(db: Database) -> None:
    """Conversations idle past the retention and week-old idempotency keys are purged."""
    now = datetime.now(UTC)
    async with db.sessions.begin() as session:
        session.add_all(
            [
                BotConversation(
                    name="r", key="[1,1]", state={"state": 1}, updated_at=now - timedelta(days=200)
                ),
                BotConversation(
                    name="r", key="[2,2]", state={"state": 1}, updated_at=now - timedelta(days=1)
                ),
                IdempotencyKey(key="old", request_hash="h", created_at=now - timedelta(days=8)),
                IdempotencyKey(key="new", request_hash="h", created_at=now),
                Message(broadcast_id="b", channel="storage", created_at=now - timedelta(days=900)),
            ]
        )
    async with db.sessions.begin() as session:
        purged = await purge_old_data(session, now, keep_days=180)
    assert (purged.conversations, purged.idempotency_keys) == (1, 1)
    async with db.sessions() as session:
        assert await session.scalar(select(BotConversation.key)) == "[2,2]"
        assert await session.scalar(select(IdempotencyKey.key)) == "new"
        assert await session.scalar(select(func.count()).select_from(Message)) == 1
