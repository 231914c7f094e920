"""The console's part of start-up: its session key, its settings, and in sandbox mode a first
user to log in with.

SECRET_KEY encrypts the session cookies. When it is not set, a random key is generated once and
kept in ``DATA_DIR/secret_key`` (readable by the owner only), so sessions survive a restart; a
deployment with several processes sets SECRET_KEY so they all accept the same cookies.

In sandbox mode, when nobody can log in yet, the first start creates the superuser ``admin`` with
a random password and writes it once to the terminal (standard error, never the log), with the
console's address.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from pathlib import Path

from admin_api.context import ConsoleConfig
from bot.settings import Settings
from persistence.api_keys import get_or_create_user
from persistence.database import SessionFactory
from persistence.users import any_login_possible, hash_password

log = logging.getLogger(__name__)

FIRST_USER = "admin"
KEY_FILE = "secret_key"
UNSUBSCRIBE_FILE = "unsubscribe_secret"


def _kept_key(data_dir: Path, name: str = KEY_FILE) -> bytes:
    path = data_dir / name
    try:
        return path.read_text().strip().encode()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    try:
        # Created with owner-only permissions from the start (no window where others can read it).
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process starting at the same moment wrote it first
        return path.read_text().strip().encode()
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    return key.encode()


def console_secret(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    return _kept_key(settings.data_dir)


def unsubscribe_secret(settings: Settings) -> bytes:
    """UNSUBSCRIBE_SECRET, or one generated once and kept in DATA_DIR/unsubscribe_secret (the
    links already sent keep working across restarts)."""
    if settings.unsubscribe_secret is not None:
        return settings.unsubscribe_secret.get_secret_value().encode()
    return _kept_key(settings.data_dir, UNSUBSCRIBE_FILE)


def secret_key_advice(settings: Settings) -> str | None:
    """What to say, once the service runs, when the console's key was generated outside the
    sandbox (said after start-up so that a failed start stays one line)."""
    if settings.secret_key is not None or settings.sandbox:
        return None
    return (
        f"SECRET_KEY is not set: the console's session key is kept in "
        f"{settings.data_dir / KEY_FILE}; set SECRET_KEY when several processes serve the console"
    )


def console_config(settings: Settings) -> ConsoleConfig:
    return ConsoleConfig(
        secret_key=console_secret(settings),
        session_idle_seconds=settings.console_session_idle_minutes * 60,
        session_max_seconds=settings.console_session_max_hours * 3600,
        default_timezone=settings.console_timezone,
        login_attempts=settings.console_login_attempts,
    )


async def ensure_first_user(sessions: SessionFactory, settings: Settings, url: str) -> None:
    """Sandbox only: if no active user has a password, give ``admin`` one and show it once."""
    if not settings.sandbox:
        return
    async with sessions.begin() as session:
        if await any_login_possible(session):
            return
        password = secrets.token_urlsafe(12)
        user = await get_or_create_user(session, FIRST_USER, superuser=True)
        user.password_hash = hash_password(password)
        user.is_active = True
    sys.stderr.write(
        "\n"
        "  Herald's console is at " + url + "\n"
        "  Log in as " + FIRST_USER + " with the password " + password + "\n"
        "  (shown only this once; change it with: herald users set-password " + FIRST_USER + ")\n"
        "\n"
    )
    sys.stderr.flush()
