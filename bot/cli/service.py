"""Running Herald: ``herald run``, ``herald db``, ``herald chat`` and ``herald webhook``."""

from __future__ import annotations

import argparse

from telegram import Bot

from bot.chat_client import ChatOptions, SandboxUnreachableError, chat
from bot.cli.common import Subcommands, UsageError, add_command, add_group
from bot.logging_setup import Redactor
from bot.sandbox_mode import SandboxNotRunningError, read_sandbox_info, telegram_endpoint
from bot.settings import Settings
from bot.texts import LANGUAGES
from bot.webhook import describe_webhook, register_webhook
from persistence.database import create_engine
from persistence.migrate import current_revision, head_revision, upgrade


def add_parsers(commands: Subcommands) -> None:
    run = add_command(
        commands,
        "run",
        help="start the service (bot, admin API, scheduler, dispatcher)",
        description=(
            "Start the service: the bot, the admin API, the scheduler and the dispatcher, until "
            "SIGINT or SIGTERM. Without TELEGRAM_BOT_TOKEN it runs in sandbox mode. The HTTP "
            "server binds HTTP_HOST:PORT (127.0.0.1:8080); the options override them, as the "
            "Procfile does for platforms that route outside traffic to $PORT. On PostgreSQL any "
            "number of processes may run: they share the deliveries and elect one Telegram "
            "leader and one scheduler."
        ),
        example=["herald run", "herald run --host 0.0.0.0 --port 8000", "herald run --role worker"],
        handler=_run,
    )
    run.add_argument("--host", help="the address to bind (default: HTTP_HOST)")
    run.add_argument("--port", type=int, help="the port to bind (default: PORT; 0: any free)")
    run.add_argument(
        "--role",
        choices=["all", "web", "worker"],
        default="all",
        help="web: the API, console and webhook receiver; worker: deliveries and the elected "
        "leaders (no HTTP server); all (default): both",
    )

    db = add_group(commands, "db", help="the database schema")
    add_command(
        db,
        "upgrade",
        help="apply every pending migration",
        example="herald db upgrade",
        handler=_db_upgrade,
    )
    add_command(
        db,
        "current",
        help="show the schema revision of the database",
        example="herald db current",
        handler=_db_current,
    )
    _add_chat(commands)
    _add_webhook(commands)


def _add_chat(commands: Subcommands) -> None:
    parser = add_command(
        commands,
        "chat",
        help="play a recipient against the sandbox bot (while `herald run` is up)",
        description=(
            "Play a recipient against the sandbox bot from this terminal, while `herald run` "
            "runs in sandbox mode. The sandbox is found through DATA_DIR/sandbox.json. Type "
            "/start, then /contact to share your phone number; /quit leaves. Input can be "
            "piped in: the client then waits for the bot's answers before it leaves."
        ),
        example=[
            "herald chat",
            "printf '/start\\n/contact\\n' | herald chat --phone +393331234567",
        ],
        handler=_chat,
    )
    defaults = ChatOptions(control_url="")
    parser.add_argument("--url", help="the simulator's control URL (default: from sandbox.json)")
    parser.add_argument("--user-id", type=int, default=defaults.user_id, help="your Telegram id")
    parser.add_argument("--name", default=defaults.first_name, help="your Telegram first name")
    parser.add_argument("--phone", default=defaults.phone, help="the number /contact shares")
    parser.add_argument("--language", choices=LANGUAGES, default=defaults.language)


def _add_webhook(commands: Subcommands) -> None:
    actions = add_group(commands, "webhook", help="the Telegram webhook of the real bot")
    set_ = add_command(
        actions,
        "set",
        help="point Telegram at TELEGRAM_WEBHOOK_URL",
        example="herald webhook set --url https://herald.example.org/telegram/webhook",
        handler=_webhook,
    )
    set_.add_argument("--url", help="override TELEGRAM_WEBHOOK_URL")
    set_.add_argument("--drop-pending-updates", action="store_true")
    delete = add_command(
        actions,
        "delete",
        help="remove the webhook (back to polling)",
        example="herald webhook delete --drop-pending-updates",
        handler=_webhook,
    )
    delete.add_argument("--drop-pending-updates", action="store_true")
    add_command(
        actions,
        "info",
        help="show what Telegram knows about the webhook",
        example="herald webhook info",
        handler=_webhook,
    )


async def _run(settings: Settings, args: argparse.Namespace) -> None:
    from bot.runner import ROLES, serve  # the whole service: imported only when it runs

    overrides = {"http_host": args.host, "port": args.port}
    changed = {name: value for name, value in overrides.items() if value is not None}
    if args.port is not None and not 0 <= args.port <= 65535:
        raise UsageError("--port: must be between 0 and 65535")
    role = next(r for r in ROLES if r == args.role)
    await serve(settings.model_copy(update=changed) if changed else settings, role)


async def _db_upgrade(settings: Settings, _args: argparse.Namespace) -> None:
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        print(f"database schema is at {await current_revision(engine)} (head)")
    finally:
        await engine.dispose()


async def _db_current(settings: Settings, _args: argparse.Namespace) -> None:
    engine = create_engine(settings.database_url)
    try:
        current = await current_revision(engine)
        head = head_revision()
        state = "up to date" if current == head else f"out of date: head is {head}"
        print(f"{current or 'empty'} ({state})")
    finally:
        await engine.dispose()


async def _chat(settings: Settings, args: argparse.Namespace) -> None:
    def locate() -> str:
        if args.url:
            return str(args.url)
        try:
            return read_sandbox_info(settings).control_url
        except SandboxNotRunningError as exc:
            raise SandboxUnreachableError(str(exc)) from None

    try:
        options = ChatOptions(locate(), args.user_id, args.name, args.phone, args.language)
        await chat(options, locate, Redactor(settings.secrets()))
    except SandboxUnreachableError as exc:
        raise UsageError(str(exc)) from None


async def _webhook(settings: Settings, args: argparse.Namespace) -> None:
    if settings.sandbox:
        raise UsageError(
            "no TELEGRAM_BOT_TOKEN: the sandbox sets its own webhook when TELEGRAM_MODE=webhook"
        )
    endpoint = telegram_endpoint(settings)
    redact = Redactor(settings.secrets())
    bot = Bot(endpoint.token, base_url=endpoint.base_url, base_file_url=endpoint.base_file_url)
    async with bot:
        if args.webhook_action == "set":
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
            print(redact(f"webhook set to {url}"))  # the URL may carry a secret path
        elif args.webhook_action == "delete":
            await bot.delete_webhook(drop_pending_updates=args.drop_pending_updates)
            print("webhook deleted: the bot can poll again")
        else:
            # The URL may hold a secret path, the last error may quote one.
            print(redact(describe_webhook(await bot.get_webhook_info())))
