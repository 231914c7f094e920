"""API keys: generated once, shown once, stored only as a SHA-256 hash; listed and revoked."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.audit import Actor, AuditAction, record
from persistence.common_queries import ConflictError, NotFoundError
from persistence.models import ApiKey, User
from persistence.notify import API_KEYS_CHANNEL, notify

KEY_PREFIX = "hk_"
_PREFIX_CHARS = 8


@dataclass(frozen=True)
class IssuedKey:
    user: User
    key: str  # the only moment the plain key exists
    id: int = 0
    prefix: str = ""


def display_prefix(key: str) -> str:
    """The part of a key that ``keys list`` shows and the audit log names (not a secret)."""
    return key[len(KEY_PREFIX) : len(KEY_PREFIX) + _PREFIX_CHARS]


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
    session: AsyncSession,
    username: str,
    *,
    superuser: bool = False,
    name: str = "",
    actor: Actor | None = None,
) -> IssuedKey:
    """A new key for ``username`` (created if missing). With an ``actor``, the audit log records
    the key (and the user, if new); tests and benchmarks set up their keys without one."""
    existing = (await session.execute(select(User.id).where(User.username == username))).scalar()
    user = await get_or_create_user(session, username, superuser=superuser)
    if actor is not None and existing is None:
        detail = {"username": user.username, "superuser": user.is_superuser}
        await record(session, actor, AuditAction.USER_CREATED, "user", [user.id], detail)
    return await issue_key_for(session, user, name, actor=actor)


async def issue_key_for(
    session: AsyncSession, user: User, name: str = "", *, actor: Actor | None = None
) -> IssuedKey:
    """A new key for an existing ``user``."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(user_id=user.id, name=name, prefix=display_prefix(key), key_hash=hash_key(key))
    session.add(row)
    await session.flush()
    if actor is not None:
        detail = {"prefix": KEY_PREFIX + row.prefix, "name": name, "owner": user.username}
        await record(session, actor, AuditAction.API_KEY_CREATED, "api_key", [row.id], detail)
    return IssuedKey(user=user, key=key, id=row.id, prefix=row.prefix)


async def authenticate(session: AsyncSession, presented: str) -> User | None:
    """The active user owning ``presented``, recording its use; None for unknown or revoked keys."""
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        return None
    prefix = display_prefix(presented)
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


async def list_keys(session: AsyncSession, user: User) -> list[ApiKey]:
    """The keys ``user`` may see: their own; a superuser sees everyone's. Newest first."""
    statement = select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    if not user.is_superuser:
        statement = statement.where(ApiKey.user_id == user.id)
    return list((await session.execute(statement)).scalars())


async def find_key(session: AsyncSession, user: User, reference: str) -> ApiKey:
    """One key ``user`` may see, by id or by the prefix ``keys list`` shows (``hk_`` optional)."""
    prefix = reference.removeprefix(KEY_PREFIX)
    statement = select(ApiKey)
    if reference.isdigit():
        statement = statement.where((ApiKey.id == int(reference)) | (ApiKey.prefix == prefix))
    else:
        statement = statement.where(ApiKey.prefix == prefix)
    if not user.is_superuser:
        statement = statement.where(ApiKey.user_id == user.id)
    found = list((await session.execute(statement)).scalars())
    if not found:
        raise NotFoundError(f"API key {reference}")
    if len(found) > 1:
        raise ConflictError(f"{reference!r} names {len(found)} keys: use the id")
    return found[0]


async def revoke_key(
    session: AsyncSession, user: User, key_id: int, now: datetime, *, actor: Actor
) -> ApiKey:
    """Revoke one key ``user`` may see (once: revoking again keeps the first time, and the
    audit log records only the first).

    Every running service hears of it at commit (PostgreSQL NOTIFY) and forgets the key at once.
    """
    statement = select(ApiKey).where(ApiKey.id == key_id)
    if not user.is_superuser:
        statement = statement.where(ApiKey.user_id == user.id)
    key = (await session.execute(statement)).scalar()
    if key is None:
        raise NotFoundError(f"API key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = now
        await session.flush()
        detail = {"prefix": KEY_PREFIX + key.prefix, "name": key.name, "owner": key.user.username}
        await record(session, actor, AuditAction.API_KEY_REVOKED, "api_key", [key.id], detail)
    await notify(session, API_KEYS_CHANNEL, key_revoked(key.key_hash))
    return key


async def revoke_api_key(session: AsyncSession, prefix: str) -> int:
    """Revoke every active key with this prefix, whoever owns it; how many were revoked."""
    statement = select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
    keys = list((await session.execute(statement)).scalars())
    now = datetime.now(UTC)
    for key in keys:
        key.revoked_at = now
        await notify(session, API_KEYS_CHANNEL, key_revoked(key.key_hash))
    await session.flush()
    return len(keys)


def key_revoked(key_hash: str) -> str:
    """The notification payload that drops one key (by its hash) from every process's cache."""
    return f"key:{key_hash}"


def user_changed(user_id: int) -> str:
    """The payload that drops every cached key of one user (deactivated, rights changed)."""
    return f"user:{user_id}"


def parse_key_notification(payload: str) -> tuple[str, str]:
    """``key:<hash>`` → ("key", hash); ``user:<id>`` → ("user", id); anything else → ("all", "")
    (an unknown payload is safest read as "forget everything")."""
    kind, sep, value = payload.partition(":")
    if sep and kind in ("key", "user") and value:
        return kind, value
    return "all", ""
