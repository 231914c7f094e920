"""The ``herald`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from bot.logging_setup import configure_logging
from bot.settings import ConfigurationError, Settings, load_settings
from persistence.api_keys import issue_api_key
from persistence.database import create_engine, create_session_factory
from persistence.migrate import SchemaOutOfDateError, current_revision, head_revision, upgrade

log = logging.getLogger("herald")


class UsageError(Exception):
    """The command line cannot be carried out; the message says why."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herald", description="Herald: Telegram-first notification service."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("run", help="start the service (bot, admin API, scheduler, dispatcher)")

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", help="apply every pending migration")
    db_commands.add_parser("current", help="show the schema revision of the database")

    key = commands.add_parser(
        "create-api-key", help="create an admin API key (shown once, stored hashed)"
    )
    key.add_argument("username", help="the user the key belongs to (created if missing)")
    key.add_argument("--superuser", action="store_true", help="the user sees everything")
    key.add_argument("--name", default="", help="a label for the key, e.g. the script using it")
    return parser


async def _db_upgrade(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        print(f"database schema is at {await current_revision(engine)} (head)")
    finally:
        await engine.dispose()


async def _db_current(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        current = await current_revision(engine)
        head = head_revision()
        state = "up to date" if current == head else f"out of date: head is {head}"
        print(f"{current or 'empty'} ({state})")
    finally:
        await engine.dispose()


async def _create_api_key(settings: Settings, args: argparse.Namespace) -> None:
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine).begin() as session:
            issued = await issue_api_key(
                session, args.username, superuser=args.superuser, name=args.name
            )
        role = "superuser" if issued.user.is_superuser else "user"
        print(f"API key for {issued.user.username} ({role}); it is shown only this once:")
        print(issued.key)
    finally:
        await engine.dispose()


async def _run(settings: Settings) -> None:
    from bot.runner import serve

    await serve(settings)


def _dispatch(args: argparse.Namespace, settings: Settings) -> None:
    if args.command == "run":
        asyncio.run(_run(settings))
    elif args.command == "db" and args.db_command == "upgrade":
        asyncio.run(_db_upgrade(settings))
    elif args.command == "db" and args.db_command == "current":
        asyncio.run(_db_current(settings))
    elif args.command == "create-api-key":
        asyncio.run(_create_api_key(settings, args))
    else:  # pragma: no cover - argparse rejects unknown commands first
        raise UsageError(f"unknown command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"herald: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.secrets())
    try:
        _dispatch(args, settings)
    except (ConfigurationError, SchemaOutOfDateError, UsageError) as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # e.g. the port is taken or the database is unreachable
        log.error("cannot continue: %s", exc)
        return 1
    return 0
