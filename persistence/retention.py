"""Forgetting what is no longer useful: stale bot conversations, old idempotency answers and
handled webhook updates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.models import BotConversation, IdempotencyKey
from persistence.update_inbox import purge_handled

IDEMPOTENCY_KEEP = timedelta(days=7)
HANDLED_UPDATES_KEEP = timedelta(days=1)


@dataclass(frozen=True)
class Purged:
    conversations: int
    idempotency_keys: int
    updates: int = 0


async def purge_old_data(session: AsyncSession, now: datetime, *, keep_days: int) -> Purged:
    """Delete conversation states untouched for ``keep_days`` and week-old idempotency keys.

    Sent-message history is never purged here: it is the record of what happened.
    """
    conversations = await session.execute(
        delete(BotConversation).where(BotConversation.updated_at < now - timedelta(days=keep_days))
    )
    keys = await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < now - IDEMPOTENCY_KEEP)
    )
    updates = await purge_handled(session, now - HANDLED_UPDATES_KEEP)
    return Purged(
        int(conversations.rowcount),  # type: ignore[attr-defined]
        int(keys.rowcount),  # type: ignore[attr-defined]
        updates,
    )
