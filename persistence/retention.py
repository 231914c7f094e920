"""Forgetting what is no longer useful: stale bot conversations, old idempotency answers,
handled webhook updates and settled delivery-status webhook events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.models import BotConversation, IdempotencyKey, WebhookEvent, WebhookEventStatus
from persistence.update_inbox import purge_handled

IDEMPOTENCY_KEEP = timedelta(days=7)
HANDLED_UPDATES_KEEP = timedelta(days=1)


@dataclass(frozen=True)
class Purged:
    conversations: int
    idempotency_keys: int
    updates: int = 0
    webhook_events: int = 0


async def purge_old_data(
    session: AsyncSession, now: datetime, *, keep_days: int, webhook_event_days: int = 30
) -> Purged:
    """Delete conversation states untouched for ``keep_days``, week-old idempotency keys, and
    webhook events delivered or failed more than ``webhook_event_days`` ago (with their
    attempts; pending ones stay whatever their age).

    Sent-message history is never purged here: it is the record of what happened.
    """
    conversations = await session.execute(
        delete(BotConversation).where(BotConversation.updated_at < now - timedelta(days=keep_days))
    )
    keys = await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < now - IDEMPOTENCY_KEEP)
    )
    updates = await purge_handled(session, now - HANDLED_UPDATES_KEEP)
    events = await session.execute(
        delete(WebhookEvent).where(
            WebhookEvent.status.in_([WebhookEventStatus.DELIVERED, WebhookEventStatus.FAILED]),
            WebhookEvent.created_at < now - timedelta(days=webhook_event_days),
        )
    )
    return Purged(
        int(conversations.rowcount),  # type: ignore[attr-defined]
        int(keys.rowcount),  # type: ignore[attr-defined]
        updates,
        int(events.rowcount),  # type: ignore[attr-defined]
    )
