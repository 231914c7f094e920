"""A user's own addresses (where "send me a test" goes): their email, and their Telegram chat
linked through the bot with a one-time code.

A link code is 8 characters from an unambiguous alphabet, good for ten minutes and once; only
its SHA-256 is stored, and it is looked up by that hash (no comparison of secrets in Python).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.common_queries import NotFoundError
from persistence.models import TelegramLinkCode, User

LINK_CODE_CHARS = 8
LINK_CODE_LIFETIME = timedelta(minutes=10)
# No 0/O, 1/I/L: a code is read off a screen and typed into Telegram.
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True)
class OwnAddresses:
    """Where a user's test sends go, per channel (None: no address, the channel is skipped)."""

    email: str | None
    telegram_chat_id: int | None


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


async def own_addresses(session: AsyncSession, user_id: int) -> OwnAddresses:
    row = (
        await session.execute(select(User.email, User.telegram_chat_id).where(User.id == user_id))
    ).first()
    if row is None:
        raise NotFoundError(f"user {user_id}")
    return OwnAddresses(row[0], row[1])


async def set_email(session: AsyncSession, user_id: int, email: str | None) -> None:
    result = await session.execute(update(User).where(User.id == user_id).values(email=email))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFoundError(f"user {user_id}")


async def new_link_code(session: AsyncSession, user_id: int, now: datetime) -> str:
    """A fresh one-time code for ``user_id``; their earlier unused codes stop working."""
    await session.execute(
        update(TelegramLinkCode)
        .where(TelegramLinkCode.user_id == user_id, TelegramLinkCode.used_at.is_(None))
        .values(used_at=now)
    )
    code = "".join(secrets.choice(_ALPHABET) for _ in range(LINK_CODE_CHARS))
    session.add(
        TelegramLinkCode(
            user_id=user_id,
            code_hash=_hash(code),
            created_at=now,
            expires_at=now + LINK_CODE_LIFETIME,
        )
    )
    await session.flush()
    return code


async def use_link_code(
    session: AsyncSession, code: str, chat_id: int, now: datetime
) -> User | None:
    """Link ``chat_id`` to the user whose valid code this is (and spend the code); ``None`` when
    the code is unknown, used or expired. A chat is linked to one user at a time."""
    if len(code.strip()) != LINK_CODE_CHARS:
        return None
    row = (
        await session.execute(
            select(TelegramLinkCode).where(TelegramLinkCode.code_hash == _hash(code))
        )
    ).scalar()
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    row.used_at = now
    await session.execute(
        update(User).where(User.telegram_chat_id == chat_id).values(telegram_chat_id=None)
    )
    await session.execute(
        update(User).where(User.id == row.user_id).values(telegram_chat_id=chat_id)
    )
    await session.flush()
    return await session.get(User, row.user_id)
