"""The ``herald`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from telegram import Bot
from telegram.error import TelegramError

from bot import cli_admin, cli_users, event_loop
from bot.chat_client import ChatOptions, SandboxUnreachableError, chat
from bot.logging_setup import configure_logging
from bot.sandbox_mode import SANDBOX_HOST, telegram_endpoint
from bot.settings import ConfigurationError, Settings, load_settings
from bot.texts import LANGUAGES
from bot.webhook import describe_webhook, register_webhook
from persistence.api_keys import issue_api_key
from persistence.database import create_engine, create_session_factory
from persistence.migrate import (
    SchemaOutOfDateError,
    current_revision,
    ensure_schema_current,
    head_revision,
    upgrade,
)
from persistence.phones import normalize_phone
from persistence.recipient_kinds import default_registry
from persistence.registration import add_recipient

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

    _add_chat_parser(commands)
    _add_webhook_parser(commands)
    _add_recipients_parser(commands)
    cli_admin.add_parsers(commands)
    cli_users.add_parser(commands)
    return parser


def _add_chat_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chat = commands.add_parser(
        "chat", help="play a recipient against the sandbox bot (while `herald run` is up)"
    )
    defaults = ChatOptions(control_url="")
    chat.add_argument("--url", help="the simulator's control URL (default: the sandbox port)")
    chat.add_argument("--user-id", type=int, default=defaults.user_id, help="your Telegram id")
    chat.add_argument("--name", default=defaults.first_name, help="your Telegram first name")
    chat.add_argument("--phone", default=defaults.phone, help="the number /contact shares")
    chat.add_argument("--language", choices=LANGUAGES, default=defaults.language)


def _add_webhook_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    webhook = commands.add_parser("webhook", help="the Telegram webhook of the real bot")
    actions = webhook.add_subparsers(dest="webhook_command", required=True, metavar="ACTION")
    set_ = actions.add_parser("set", help="point Telegram at TELEGRAM_WEBHOOK_URL")
    set_.add_argument("--url", help="override TELEGRAM_WEBHOOK_URL")
    set_.add_argument("--drop-pending-updates", action="store_true")
    delete = actions.add_parser("delete", help="remove the webhook (back to polling)")
    delete.add_argument("--drop-pending-updates", action="store_true")
    actions.add_parser("info", help="show what Telegram knows about the webhook")


def _add_recipients_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    recipients = commands.add_parser("recipients", help="recipients people register against")
    actions = recipients.add_subparsers(dest="recipients_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a recipient with a phone number")
    add.add_argument("--kind", default="customer", help="recipient kind (default: customer)")
    add.add_argument("--name", required=True)
    add.add_argument("--phone", required=True, help="international, e.g. +393331234567")
    add.add_argument("--email")
    cli_admin.add_recipients_import(actions)


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


async def _chat(settings: Settings, args: argparse.Namespace) -> None:
    url = args.url or f"http://{SANDBOX_HOST}:{settings.telegram_sandbox_port}/_sim"
    options = ChatOptions(url, args.user_id, args.name, args.phone, args.language)
    try:
        await chat(options)
    except SandboxUnreachableError as exc:
        raise UsageError(str(exc)) from None


async def _webhook(settings: Settings, args: argparse.Namespace) -> None:
    if settings.sandbox:
        raise UsageError(
            "no TELEGRAM_BOT_TOKEN: the sandbox sets its own webhook when TELEGRAM_MODE=webhook"
        )
    endpoint = telegram_endpoint(settings)
    bot = Bot(endpoint.token, base_url=endpoint.base_url, base_file_url=endpoint.base_file_url)
    async with bot:
        if args.webhook_command == "set":
            url = args.url or settings.telegram_webhook_url
            secret = settings.telegram_webhook_secret
            if not url or secret is None:
                raise UsageError("set TELEGRAM_WEBHOOK_URL (or --url) and TELEGRAM_WEBHOOK_SECRET")
            await register_webhook(
                bot,
                url,
                secret.get_secret_value(),
                allowed_updates=settings.allowed_updates,
                drop_pending_updates=args.drop_pending_updates,
            )
            print(f"webhook set to {url}")
        elif args.webhook_command == "delete":
            await bot.delete_webhook(drop_pending_updates=args.drop_pending_updates)
            print("webhook deleted: the bot can poll again")
        else:
            print(describe_webhook(await bot.get_webhook_info()))


async def _recipients_add(settings: Settings, args: argparse.Namespace) -> None:
    kinds = default_registry()
    if args.kind not in kinds:
        raise UsageError(f"unknown kind {args.kind!r}; known: {', '.join(kinds.names())}")
    phone = normalize_phone(args.phone, settings.default_phone_region)
    if phone is None:
        raise UsageError(f"{args.phone!r} is not a valid phone number")
    engine = create_engine(settings.database_url)
    try:
        await ensure_schema_current(engine)
        sessions = create_session_factory(engine)
        added = await add_recipient(sessions, kinds, args.kind, args.name, phone, args.email)
        print(f"added {added.kind} {added.id}: {added.name}, {phone}")
    finally:
        await engine.dispose()


async def _run(settings: Settings) -> None:
    from bot.runner import serve

    await serve(settings)


def _dispatch(args: argparse.Namespace, settings: Settings) -> None:
    if args.command == "run":
        event_loop.run(_run(settings))
    elif args.command == "db" and args.db_command == "upgrade":
        asyncio.run(_db_upgrade(settings))
    elif args.command == "db" and args.db_command == "current":
        asyncio.run(_db_current(settings))
    elif args.command == "create-api-key":
        asyncio.run(_create_api_key(settings, args))
    elif args.command == "chat":
        asyncio.run(_chat(settings, args))
    elif args.command == "webhook":
        asyncio.run(_webhook(settings, args))
    elif args.command == "recipients" and args.recipients_command == "add":
        asyncio.run(_recipients_add(settings, args))
    elif cli_users.handles(args):
        cli_users.run(settings, args)
    elif cli_admin.handles(args):
        asyncio.run(cli_admin.run(settings, args))
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
    except (
        ConfigurationError,
        SchemaOutOfDateError,
        UsageError,
        cli_admin.CliError,
        cli_users.UsersCliError,
    ) as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 2
    except TelegramError as exc:
        print(f"herald: Telegram answered: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # e.g. the port is taken or the database is unreachable
        log.error("cannot continue: %s", exc)
        return 1
    return 0
