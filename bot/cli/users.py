"""``herald users create|list|set-password|deactivate|set-email|link-code``: the people who
log in to the console, and their own addresses ("send me a test" goes there).

Passwords are never taken from an argument (they would sit in the shell history and in ``ps``):
they are read from a prompt, twice, or from standard input with ``--password-stdin``. A
deactivated user can neither log in nor use their API keys, in every running service at once.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from bot.cli.common import (
    Subcommands,
    UsageError,
    add_command,
    add_group,
    herald_database,
    print_json,
)
from bot.settings import Settings
from channels.addresses import is_valid_email
from channels.clock import utc_now
from persistence import audit
from persistence.audit import Actor, AuditAction
from persistence.common_queries import ConflictError, NotFoundError
from persistence.user_addresses import LINK_CODE_LIFETIME, new_link_code, set_email
from persistence.users import (
    PasswordPolicyError,
    UserSummary,
    create_user,
    deactivate_user,
    hash_password,
    list_users,
    require_user,
    set_password_hash,
    summary,
)


def add_parsers(commands: Subcommands) -> None:
    actions = add_group(commands, "users", help="console users (they log in with a password)")
    create = add_command(
        actions,
        "create",
        help="create a user with a password (asked twice, or --password-stdin)",
        example=[
            "herald users create maria",
            "echo 'a long passphrase' | herald users create maria --password-stdin --superuser",
        ],
        handler=_create,
        json_output=True,
    )
    create.add_argument("username")
    create.add_argument("--superuser", action="store_true", help="the user sees everything")
    _password_option(create)
    add_command(
        actions,
        "list",
        help="every user, with role and state",
        example=["herald users list", "herald users list --json"],
        handler=_list,
        json_output=True,
    )
    change = add_command(
        actions,
        "set-password",
        help="set or change a user's password (their console sessions end)",
        example="herald users set-password maria",
        handler=_set_password,
        json_output=True,
    )
    change.add_argument("username")
    _password_option(change)
    off = add_command(
        actions,
        "deactivate",
        help="the user can no longer log in nor use their API keys",
        example="herald users deactivate maria",
        handler=_deactivate,
        json_output=True,
    )
    off.add_argument("username")
    email = add_command(
        actions,
        "set-email",
        help="set (or with --clear remove) the user's own email: where their test sends go",
        example=["herald users set-email maria maria@example.org"],
        handler=_set_email,
        json_output=True,
    )
    email.add_argument("username")
    email.add_argument("email", nargs="?")
    email.add_argument("--clear", action="store_true", help="remove the email")
    code = add_command(
        actions,
        "link-code",
        help="a one-time code (10 minutes) the user sends the bot as /link CODE to link their "
        "own Telegram chat",
        example="herald users link-code maria",
        handler=_link_code,
        json_output=True,
    )
    code.add_argument("username")


def _password_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (one line) instead of a prompt",
    )


def read_password(from_stdin: bool) -> str:
    """The hash of a password read from stdin (one line) or typed twice at a silent prompt."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise UsageError("no terminal to prompt on: pipe the password with --password-stdin")
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != password:
            raise UsageError("the two passwords differ; nothing was changed")
    try:
        return hash_password(password)
    except PasswordPolicyError as exc:
        raise UsageError(str(exc)) from None


def _as_json(user: UserSummary) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "is_superuser": user.is_superuser,
        "is_active": user.is_active,
        "has_password": user.has_password,
    }


def _say(args: argparse.Namespace, data: Any, text: str) -> None:
    if args.json:
        print_json(data)
    else:
        sys.stdout.write(text + "\n")


async def _create(settings: Settings, args: argparse.Namespace) -> None:
    password_hash = read_password(args.password_stdin)
    async with herald_database(settings) as context, context.sessions.begin() as session:
        try:
            user = await create_user(
                session,
                args.username,
                password_hash,
                superuser=args.superuser,
                actor=Actor.cli(None),
            )
        except (ConflictError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        role = "superuser" if user.is_superuser else "user"
        _say(args, _as_json(summary(user)), f"created {role} {user.username}")


async def _list(settings: Settings, args: argparse.Namespace) -> None:
    async with herald_database(settings) as context, context.sessions() as session:
        users = [summary(u) for u in await list_users(session)]
    lines = [
        f"{u.id:>5}  {u.username:<24} {'superuser' if u.is_superuser else 'user':<10}"
        f"{'active' if u.is_active else 'deactivated':<12}"
        f"{'password' if u.has_password else 'no password'}"
        for u in users
    ]
    _say(args, [_as_json(u) for u in users], "\n".join(lines) or "no users")


async def _set_password(settings: Settings, args: argparse.Namespace) -> None:
    password_hash = read_password(args.password_stdin)
    async with herald_database(settings) as context, context.sessions.begin() as session:
        try:
            user = await set_password_hash(
                session, args.username, password_hash, actor=Actor.cli(None)
            )
        except NotFoundError as exc:
            raise UsageError(f"there is no {exc}") from None
        _say(args, _as_json(summary(user)), f"password of {user.username} changed")


async def _deactivate(settings: Settings, args: argparse.Namespace) -> None:
    async with herald_database(settings) as context, context.sessions.begin() as session:
        try:
            user = await deactivate_user(session, args.username)
        except NotFoundError as exc:
            raise UsageError(f"there is no {exc}") from None
        _say(args, _as_json(summary(user)), f"{user.username} is deactivated")


async def _set_email(settings: Settings, args: argparse.Namespace) -> None:
    if args.clear == (args.email is not None):
        raise UsageError("give the EMAIL, or --clear")
    email = None if args.clear else str(args.email).strip()
    if email is not None and (len(email) > 254 or not is_valid_email(email)):
        raise UsageError(f"{args.email!r} is not an email address")
    async with herald_database(settings) as context, context.sessions.begin() as session:
        try:
            user = await require_user(session, args.username)
        except NotFoundError as exc:
            raise UsageError(f"there is no {exc}") from None
        await set_email(session, user.id, email)
        await audit.record(
            session, Actor.cli(None), AuditAction.USER_EMAIL_SET, "user", [user.id], {}
        )
        _say(
            args,
            {"id": user.id, "username": user.username, "email": email},
            f"email of {user.username}: {email or 'none'}",
        )


async def _link_code(settings: Settings, args: argparse.Namespace) -> None:
    async with herald_database(settings) as context, context.sessions.begin() as session:
        try:
            user = await require_user(session, args.username)
        except NotFoundError as exc:
            raise UsageError(f"there is no {exc}") from None
        code = await new_link_code(session, user.id, utc_now())
    minutes = int(LINK_CODE_LIFETIME.total_seconds() // 60)
    _say(
        args,
        {"username": user.username, "code": code, "expires_in_minutes": minutes},
        f"send the bot: /link {code}  (within {minutes} minutes; once)",
    )
