"""Forgetting what is no longer useful: stale bot conversations and old idempotency answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.models import BotConversation, IdempotencyKey

IDEMPOTENCY_KEEP = timedelta(days=7)


@dataclass(frozen=True)
class Purged:
    conversations: int
    idempotency_keys: int


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
    return Purged(int(conversations.rowcount), int(keys.rowcount))  # type: ignore[attr-defined]
