"""``herald users create|list|set-password|deactivate``: the people who log in to the console.

Passwords are never taken from an argument (they would sit in the shell history and in ``ps``):
they are read from a prompt, twice, or from standard input with ``--password-stdin``. ``--json``
prints a machine-readable answer. The exit status is 0 only when the command did what it says.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from typing import Any

from bot.settings import Settings
from persistence.common_queries import ConflictError, NotFoundError
from persistence.database import create_engine, create_session_factory
from persistence.migrate import ensure_schema_current
from persistence.users import (
    PasswordPolicyError,
    UserSummary,
    create_user,
    deactivate_user,
    hash_password,
    list_users,
    set_password_hash,
    summary,
)


class UsersCliError(Exception):
    """The users command cannot be carried out; the message says why."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = commands.add_parser("users", help="console users (log in with a password)")
    actions = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a user with a password")
    create.add_argument("username")
    create.add_argument("--superuser", action="store_true", help="the user sees everything")
    _password_options(create)
    listing = actions.add_parser("list", help="every user, with role and state")
    listing.add_argument("--json", action="store_true", help="print JSON")
    change = actions.add_parser("set-password", help="set or change a user's password")
    change.add_argument("username")
    _password_options(change)
    off = actions.add_parser(
        "deactivate", help="the user can no longer log in nor use their API keys"
    )
    off.add_argument("username")
    off.add_argument("--json", action="store_true", help="print JSON")


def _password_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (one line) instead of a prompt",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def handles(args: argparse.Namespace) -> bool:
    return bool(args.command == "users")


def read_password(from_stdin: bool) -> str:
    """The hash of a password read from stdin (one line) or typed twice at a silent prompt."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise UsersCliError("no terminal to prompt on: pipe the password with --password-stdin")
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != password:
            raise UsersCliError("the two passwords differ; nothing was changed")
    try:
        return hash_password(password)
    except PasswordPolicyError as exc:
        raise UsersCliError(str(exc)) from None


def _as_json(user: UserSummary) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "is_superuser": user.is_superuser,
        "is_active": user.is_active,
        "has_password": user.has_password,
    }


def _say(args: argparse.Namespace, data: Any, text: str) -> None:
    sys.stdout.write((json.dumps(data) if args.json else text) + "\n")


async def _run(settings: Settings, args: argparse.Namespace, password_hash: str | None) -> None:
    engine = create_engine(settings.database_url)
    try:
        await ensure_schema_current(engine)
        async with create_session_factory(engine).begin() as session:
            action = args.users_command
            if action == "create":
                assert password_hash is not None
                user = await create_user(
                    session, args.username, password_hash, superuser=args.superuser
                )
                role = "superuser" if user.is_superuser else "user"
                _say(args, _as_json(summary(user)), f"created {role} {user.username}")
            elif action == "list":
                users = [summary(u) for u in await list_users(session)]
                lines = [
                    f"{u.id:>5}  {u.username:<24} {'superuser' if u.is_superuser else 'user':<10}"
                    f"{'active' if u.is_active else 'deactivated':<12}"
                    f"{'password' if u.has_password else 'no password'}"
                    for u in users
                ]
                _say(args, [_as_json(u) for u in users], "\n".join(lines) or "no users")
            elif action == "set-password":
                assert password_hash is not None
                user = await set_password_hash(session, args.username, password_hash)
                _say(args, _as_json(summary(user)), f"password of {user.username} changed")
            else:
                user = await deactivate_user(session, args.username)
                _say(args, _as_json(summary(user)), f"{user.username} is deactivated")
    except NotFoundError as exc:
        raise UsersCliError(f"there is no {exc}") from None
    except (ConflictError, ValueError) as exc:
        raise UsersCliError(str(exc)) from None
    finally:
        await engine.dispose()


def run(settings: Settings, args: argparse.Namespace) -> None:
    password_hash = None
    if args.users_command in ("create", "set-password"):
        password_hash = read_password(args.password_stdin)
    asyncio.run(_run(settings, args, password_hash))
