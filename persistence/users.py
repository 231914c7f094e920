"""Users who log in: argon2id password hashes, creation, listing, deactivation, preferences.

Hashing costs tens of milliseconds of CPU on purpose; callers on the event loop run
:func:`verify_password` and :func:`hash_password` in a thread. A deactivated user can neither log
in nor use their API keys (``persistence.api_keys.authenticate`` checks ``is_active`` too).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.api_keys import user_changed
from persistence.audit import Actor, AuditAction, record
from persistence.common_queries import ConflictError, NotFoundError
from persistence.models import User
from persistence.notify import API_KEYS_CHANNEL, notify

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
MAX_USERNAME_CHARS = 150

# argon2-cffi's defaults are argon2id with the RFC 9106 "low memory" parameters.
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so both answers take as long (made on
    first use: hashing costs every process start ~0.1 s, most of them never log anyone in)."""
    return _HASHER.hash("not a password anyone has")


class PasswordPolicyError(ValueError):
    """The password is too short or too long; the message says which."""


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise PasswordPolicyError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordPolicyError(f"a password has at most {MAX_PASSWORD_CHARS} characters")


def hash_password(password: str) -> str:
    check_password_policy(password)
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not there is a hash to check against."""
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        return (
            _HASHER.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)


def password_fingerprint(password_hash: str | None) -> str:
    """Changes whenever the password does: sessions remember it, so a new password ends them."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


@dataclass(frozen=True)
class UserSummary:
    id: int
    username: str
    is_superuser: bool
    is_active: bool
    has_password: bool


def summary(user: User) -> UserSummary:
    return UserSummary(
        user.id, user.username, user.is_superuser, user.is_active, user.password_hash is not None
    )


async def user_by_name(session: AsyncSession, username: str) -> User | None:
    return (await session.execute(select(User).where(User.username == username))).scalar()


async def user_by_id(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def require_user(session: AsyncSession, username: str) -> User:
    user = await user_by_name(session, username)
    if user is None:
        raise NotFoundError(f"user {username!r}")
    return user


async def create_user(
    session: AsyncSession,
    username: str,
    password_hash: str | None,
    *,
    superuser: bool,
    actor: Actor,
) -> User:
    name = username.strip()
    if not name or len(name) > MAX_USERNAME_CHARS or any(c.isspace() for c in name):
        raise ValueError(f"a username is 1 to {MAX_USERNAME_CHARS} characters without spaces")
    if await user_by_name(session, name) is not None:
        raise ConflictError(f"a user named {name!r} already exists")
    user = User(username=name, is_superuser=superuser, password_hash=password_hash)
    session.add(user)
    await session.flush()
    await session.refresh(user)
    detail = {"username": name, "superuser": superuser, "can_log_in": password_hash is not None}
    await record(session, actor, AuditAction.USER_CREATED, "user", [user.id], detail)
    return user


async def list_users(session: AsyncSession) -> list[User]:
    return list((await session.execute(select(User).order_by(User.id))).scalars())


async def set_password_hash(
    session: AsyncSession, username: str, password_hash: str, *, actor: Actor | None = None
) -> User:
    """Set a new password; with an ``actor`` the audit log says who changed it (not to what)."""
    user = await require_user(session, username)
    user.password_hash = password_hash
    await session.flush()
    if actor is not None:
        detail = {"username": user.username}
        await record(session, actor, AuditAction.PASSWORD_CHANGED, "user", [user.id], detail)
    return user


async def deactivate_user(session: AsyncSession, username: str) -> User:
    """Deactivate ``username``; every running service forgets their API keys at commit."""
    user = await require_user(session, username)
    user.is_active = False
    await session.flush()
    await notify(session, API_KEYS_CHANNEL, user_changed(user.id))
    return user


async def any_login_possible(session: AsyncSession) -> bool:
    """Whether some active user has a password (else nobody can log in to the console)."""
    count = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.is_active.is_(True), User.password_hash.is_not(None))
    )
    return bool(count)


async def save_preferences(
    session: AsyncSession, user_id: int, *, language: str | None, timezone: str | None
) -> None:
    await session.execute(
        update(User).where(User.id == user_id).values(language=language, timezone=timezone)
    )
