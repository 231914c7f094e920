"""API keys: generated once, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.models import ApiKey, User

KEY_PREFIX = "hk_"
_PREFIX_CHARS = 8


@dataclass(frozen=True)
class IssuedKey:
    user: User
    key: str  # the only moment the plain key exists


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def get_or_create_user(session: AsyncSession, username: str, *, superuser: bool) -> User:
    user = (await session.execute(select(User).where(User.username == username))).scalar()
    if user is None:
        user = User(username=username, is_superuser=superuser)
        session.add(user)
        await session.flush()
    elif superuser and not user.is_superuser:
        user.is_superuser = True
    return user


async def issue_api_key(
    session: AsyncSession, username: str, *, superuser: bool = False, name: str = ""
) -> IssuedKey:
    user = await get_or_create_user(session, username, superuser=superuser)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            user_id=user.id,
            name=name,
            prefix=key[len(KEY_PREFIX) : len(KEY_PREFIX) + _PREFIX_CHARS],
            key_hash=hash_key(key),
        )
    )
    await session.flush()
    return IssuedKey(user=user, key=key)


async def authenticate(session: AsyncSession, presented: str) -> User | None:
    """The active user owning ``presented``, recording its use; None for unknown or revoked keys."""
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        return None
    prefix = presented[len(KEY_PREFIX) : len(KEY_PREFIX) + _PREFIX_CHARS]
    presented_hash = hash_key(presented)
    candidates = (
        await session.execute(
            select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        )
    ).scalars()
    for candidate in candidates:
        if hmac.compare_digest(candidate.key_hash, presented_hash) and candidate.user.is_active:
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == candidate.id)
                .values(last_used_at=datetime.now(UTC))
            )
            return candidate.user
    return None


async def revoke_api_key(session: AsyncSession, prefix: str) -> int:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
