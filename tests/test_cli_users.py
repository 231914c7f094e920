"""``herald users``: people who log in to the console, created and changed from the command line
with passwords that never appear on it; and the sandbox's first user."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import cli
from bot.console_setup import console_secret, ensure_first_user
from bot.settings import load_settings
from persistence.api_keys import authenticate, issue_api_key
from persistence.models import User
from persistence.users import verify_password
from tests.conftest import Database


@pytest.fixture(autouse=True)
def _quiet_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """main() reconfigures the root logger; keep pytest's logging as it is."""
    monkeypatch.setattr(cli, "configure_logging", lambda *_args: None)
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    yield


async def _herald(monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return await asyncio.to_thread(cli.main, list(argv))


async def _user(db: Database, name: str) -> User | None:
    async with db.sessions() as session:
        return (await session.execute(select(User).where(User.username == name))).scalar()


async def test_create_reads_the_password_from_stdin_and_stores_only_a_hash(
    db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`users create --password-stdin --json` answers JSON; the hash is argon2id."""
    monkeypatch.setenv("DATABASE_URL", db.url)
    code = await _herald(
        monkeypatch, "users", "create", "ada", "--superuser", "--password-stdin", "--json",
        stdin="a long enough secret\n",
    )  # fmt: skip
    assert code == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["username"] == "ada" and answer["is_superuser"] and answer["has_password"]
    user = await _user(db, "ada")
    assert user is not None and user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert "a long enough secret" not in user.password_hash
    assert verify_password(user.password_hash, "a long enough secret")


async def test_bad_requests_fail_with_a_reason_and_change_nothing(
    db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Short passwords, duplicates, unknown users and no terminal exit 2 with one line."""
    monkeypatch.setenv("DATABASE_URL", db.url)
    create = ("users", "create", "ada", "--password-stdin")
    assert await _herald(monkeypatch, *create, stdin="short\n") == 2
    assert "at least 8 characters" in capsys.readouterr().err
    assert await _user(db, "ada") is None
    assert await _herald(monkeypatch, *create, stdin="long enough pw\n") == 0
    assert await _herald(monkeypatch, *create, stdin="long enough pw\n") == 2
    assert "already exists" in capsys.readouterr().err
    change = ("users", "set-password", "nobody", "--password-stdin")
    assert await _herald(monkeypatch, *change, stdin="long enough pw\n") == 2
    assert "there is no user 'nobody'" in capsys.readouterr().err
    assert await _herald(monkeypatch, "users", "create", "eve") == 2  # stdin is no terminal
    assert "--password-stdin" in capsys.readouterr().err
    # There is no way to pass it as an argument: argparse refuses the option (exit 2).
    assert await _herald(monkeypatch, "users", "create", "eve", "--password", "x") == 2


async def test_set_password_list_and_deactivate(
    db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new password replaces the old; the list shows roles; a deactivated user's key fails."""
    monkeypatch.setenv("DATABASE_URL", db.url)
    await _herald(monkeypatch, "users", "create", "ada", "--password-stdin", stdin="first pass 1\n")
    async with db.sessions.begin() as session:
        key = (await issue_api_key(session, "ada")).key
    change = ("users", "set-password", "ada", "--password-stdin")
    assert await _herald(monkeypatch, *change, stdin="second pass 2\n") == 0
    user = await _user(db, "ada")
    assert user is not None and verify_password(user.password_hash, "second pass 2")
    assert not verify_password(user.password_hash, "first pass 1")
    capsys.readouterr()
    assert await _herald(monkeypatch, "users", "list", "--json") == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed == {
        "id": user.id,
        "username": "ada",
        "is_superuser": False,
        "is_active": True,
        "has_password": True,
    }
    assert await _herald(monkeypatch, "users", "deactivate", "ada") == 0
    assert "ada is deactivated" in capsys.readouterr().out
    async with db.sessions.begin() as session:
        assert await authenticate(session, key) is None


async def test_the_sandbox_creates_a_first_user_once_and_shows_its_password(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """First sandbox start: `admin` with a random password on stderr; later starts: nothing."""
    settings = load_settings(_env_file=None, database_url=db.url)
    assert settings.sandbox
    await ensure_first_user(db.sessions, settings, "http://127.0.0.1:8080/")
    shown = capsys.readouterr().err
    assert "http://127.0.0.1:8080/" in shown and "Log in as admin with the password " in shown
    password = shown.split("with the password ")[1].split()[0]
    user = await _user(db, "admin")
    assert user is not None and user.is_superuser and verify_password(user.password_hash, password)
    await ensure_first_user(db.sessions, settings, "http://127.0.0.1:8080/")
    assert capsys.readouterr().err == ""


async def test_no_first_user_outside_the_sandbox(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a real bot token nobody is created behind the operator's back."""
    settings = load_settings(_env_file=None, database_url=db.url, telegram_bot_token="1:abc")
    await ensure_first_user(db.sessions, settings, "http://127.0.0.1:8080/")
    assert capsys.readouterr().err == "" and await _user(db, "admin") is None


def test_the_session_key_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    """Without SECRET_KEY the key is created once in DATA_DIR, owner-only, and reused."""
    settings = load_settings(_env_file=None, data_dir=tmp_path / "data")
    first = console_secret(settings)
    assert console_secret(settings) == first and len(first) == 64
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o777 == 0o600
    chosen = load_settings(_env_file=None, data_dir=tmp_path / "data", secret_key="k" * 32)
    assert console_secret(chosen) == b"k" * 32
