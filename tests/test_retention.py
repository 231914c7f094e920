"""Retention: stale bot conversations, old idempotency answers and settled webhook events go;
message history and unsettled events stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from persistence import webhook_queries
from persistence.models import (
    BotConversation,
    IdempotencyKey,
    Message,
    User,
    WebhookAttempt,
    WebhookEvent,
)
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


async def test_settled_webhook_events_go_after_their_retention_with_their_attempts(
    db: Database,
) -> None:
    """Delivered and failed events older than 30 days go with their attempts; pending and
    recent ones stay."""
    now = datetime.now(UTC)
    async with db.sessions.begin() as session:
        owner = User(username="alice", password_hash="x")
        session.add(owner)
        await session.flush()
        endpoint = await webhook_queries.create_endpoint(
            session,
            owner_id=owner.id,
            url="https://hooks.example.org/herald",
            events=["delivery.success"],
            secret="s" * 32,
        )
        ages = {"old-delivered": 31, "old-failed": 40, "old-pending": 45, "new-delivered": 29}
        for name, days in ages.items():
            session.add(
                WebhookEvent(
                    id=name,
                    endpoint_id=endpoint.id,
                    event_type="delivery.success",
                    payload={},
                    status=name.split("-")[1],
                    next_attempt_at=now,
                    created_at=now - timedelta(days=days),
                )
            )
        await session.flush()  # the events before the attempts that refer to them
        for name in ages:
            session.add(WebhookAttempt(event_id=name, attempt=1, attempted_at=now, status_code=200))
    async with db.sessions.begin() as session:
        purged = await purge_old_data(session, now, keep_days=180, webhook_event_days=30)
    assert purged.webhook_events == 2
    async with db.sessions() as session:
        kept = set(await session.scalars(select(WebhookEvent.id)))
        attempts = set(await session.scalars(select(WebhookAttempt.event_id)))
    assert kept == attempts == {"old-pending", "new-delivered"}
