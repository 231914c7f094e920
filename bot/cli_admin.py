"""Admin commands of the ``herald`` CLI: broadcast (with a live progress bar), recipients import,
messages show.

They call the same composer and queries as the admin API, acting as ``--as USERNAME`` (default:
a superuser named ``cli``, created on first use), so owner scoping applies here too.

``broadcast --wait`` follows the message's live counters with a rich progress bar until every
delivery is final. The deliveries are made by the running service (``herald run``); when nothing
moves for ``--idle-timeout`` seconds the command says so and stops waiting (the broadcast stays
queued for the service). With ``--deliver`` the command runs a dispatcher in this process instead,
for when the service is not running (not in Telegram sandbox mode: the sandbox Bot API lives
inside ``herald run``).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from admin_api.errors import ApiError
from admin_api.recipient_input import parse_csv
from bot.context import HeraldContext
from bot.delivery import build_channels, build_composer, build_dispatcher
from bot.sandbox_mode import telegram_endpoint
from bot.settings import Settings
from channels.base import Channel
from channels.composition import ComposeRequest, CompositionError, IdempotencyConflictError
from channels.dispatcher import Dispatcher
from persistence.api_keys import get_or_create_user
from persistence.common_queries import NotFoundError, PageRequest
from persistence.message_queries import get_message, list_deliveries
from persistence.migrate import ensure_schema_current
from persistence.models import MessageTypology, User
from persistence.outbox import IN_FLIGHT, read_counters
from persistence.recipient_queries import import_recipients

DEFAULT_ACTOR = "cli"
POLL_SECONDS = 0.5


class CliError(Exception):
    """The admin command cannot be carried out; the message says why."""


# --- argument parsing --------------------------------------------------------------------------


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``herald broadcast`` and ``herald messages show``."""
    broadcast = commands.add_parser("broadcast", help="send a message (same rules as the API)")
    broadcast.add_argument(
        "--channel", action="append", required=True, help="telegram, email, sms or storage"
    )
    broadcast.add_argument(
        "--to", action="append", default=[], metavar="KIND:IDS", help="e.g. customer:1,2,3"
    )
    broadcast.add_argument(
        "--to-typology",
        action="append",
        default=[],
        metavar="KIND:IDS",
        help="every recipient of these typologies, e.g. customer:4",
    )
    broadcast.add_argument("--typology", help="message typology (name or id)")
    broadcast.add_argument("--subject", default="")
    text = broadcast.add_mutually_exclusive_group(required=True)
    text.add_argument("--body")
    text.add_argument("--body-file", type=Path)
    broadcast.add_argument("--presend", action="store_true", help="dry run: show the plan")
    broadcast.add_argument("--wait", action="store_true", help="show progress until done")
    broadcast.add_argument(
        "--deliver", action="store_true", help="with --wait: deliver from this process"
    )
    broadcast.add_argument("--idle-timeout", type=float, default=15.0, metavar="SECONDS")
    broadcast.add_argument("--idempotency-key")
    _add_actor(broadcast)

    messages = commands.add_parser("messages", help="sent and received messages")
    actions = messages.add_subparsers(dest="messages_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="a message with its live counters")
    show.add_argument("id", type=int)
    show.add_argument("--deliveries", type=int, default=20, help="how many deliveries to list")
    _add_actor(show)


def add_recipients_import(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``herald recipients import FILE.csv --kind customer``."""
    parser = actions.add_parser("import", help="create or update recipients from a CSV file")
    parser.add_argument("file", type=Path)
    parser.add_argument("--kind", default="customer")
    parser.add_argument("--all-or-nothing", action="store_true")
    _add_actor(parser)


def _add_actor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as",
        dest="as_user",
        default=DEFAULT_ACTOR,
        metavar="USERNAME",
        help=f"act as this user (default: superuser {DEFAULT_ACTOR!r}, created if missing)",
    )


def handles(args: argparse.Namespace) -> bool:
    return args.command in ("broadcast", "messages") or (
        args.command == "recipients" and getattr(args, "recipients_command", None) == "import"
    )


async def run(settings: Settings, args: argparse.Namespace) -> None:
    context = HeraldContext.from_settings(settings)
    try:
        await ensure_schema_current(context.engine)
        user = await _actor(context, args.as_user)
        if args.command == "broadcast":
            await _broadcast(context, user, args)
        elif args.command == "messages":
            await _show(context, user, args.id, args.deliveries)
        else:
            await _import(context, user, args)
    except CompositionError as exc:
        raise CliError(f"{exc.field}: {exc.message}") from None
    except (IdempotencyConflictError, NotFoundError) as exc:
        raise CliError(str(exc)) from None
    except ApiError as exc:
        raise CliError(exc.message) from None
    finally:
        await context.close()


async def _actor(context: HeraldContext, username: str) -> User:
    async with context.sessions.begin() as session:
        if username == DEFAULT_ACTOR:
            user: User | None = await get_or_create_user(session, username, superuser=True)
        else:
            user = (await session.execute(select(User).where(User.username == username))).scalar()
        if user is None:
            raise CliError(f"no user named {username!r} (create one with create-api-key)")
        session.expunge(user)
    return user


# --- broadcast ---------------------------------------------------------------------------------


def _refs(values: Sequence[str], option: str) -> dict[str, list[int]]:
    result: dict[str, list[int]] = {}
    for value in values:
        kind, sep, ids = value.partition(":")
        try:
            numbers = [int(i) for i in ids.split(",") if i.strip()]
        except ValueError:
            numbers = []
        if not sep or not kind or not numbers:
            raise CliError(f"{option} {value!r}: write KIND:ID[,ID...], e.g. customer:1,2")
        result.setdefault(kind, []).extend(numbers)
    return result


async def _typology_id(context: HeraldContext, value: str | None) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    async with context.sessions() as session:
        found = await session.scalar(
            select(MessageTypology.id).where(MessageTypology.name == value)
        )
    if found is None:
        raise CliError(f"no message typology named {value!r}")
    return int(found)


def _channels(values: Sequence[str]) -> list[str]:
    return [c.strip() for value in values for c in value.split(",") if c.strip()]


async def _broadcast(context: HeraldContext, user: User, args: argparse.Namespace) -> None:
    body = args.body if args.body is not None else args.body_file.read_text(encoding="utf-8")
    request = ComposeRequest(
        channels=_channels(args.channel),
        body=body,
        subject=args.subject,
        typology_id=await _typology_id(context, args.typology),
        recipients=_refs(args.to, "--to"),
        typology_selection=_refs(args.to_typology, "--to-typology"),
        idempotency_key=args.idempotency_key,
    )
    composer = build_composer(
        context.settings, context.sessions, context.clock, recipient_kinds=context.recipient_kinds
    )
    console = Console()
    if args.presend:
        _print_plan(console, (await composer.presend(user, request)).to_json())
        return
    answer = await composer.send(user, request)
    for message in answer.messages:
        counts = ", ".join(f"{n} {s}" for s, n in message.counts.items() if n)
        console.print(f"message {message.id} ({message.channel}): {counts}")
    if answer.status == "scheduled":
        console.print(f"scheduled for {answer.send_at}; the service sends it then")
        return
    if args.wait:
        ids = answer.message_ids
        await _wait(context, console, ids, request.channels, args.deliver, args.idle_timeout)


def _print_plan(console: Console, plan: dict[str, Any]) -> None:
    table = Table(title=f"Presend: {plan['recipients']} recipients")
    for column in ("channel", "valid", "invalid", "duplicate", "units", "cost", "notes"):
        table.add_column(column)
    for c in plan["channels"]:
        notes = list(c["problems"])
        if c.get("sms"):
            notes.append(f"{c['sms']['encoding']}, {c['sms']['fragments']} fragment(s)")
        table.add_row(
            c["channel"],
            str(c["valid"]),
            str(c["invalid"]),
            str(c["duplicate"]),
            str(c["units"]),
            c["estimated_cost"],
            "; ".join(notes),
        )
    console.print(table)
    if plan["not_visible"]:
        refused = ", ".join(f"{r['kind']}:{r['id']}" for r in plan["not_visible"])
        console.print(f"[red]not yours or missing, would be refused:[/] {refused}")
    for c in plan["channels"]:
        for problem in c["invalid_recipients"][:10]:
            console.print(
                f"  {c['channel']}: {problem['kind']} {problem['id']}: {problem['reason']}"
            )


def _delivering_channels(settings: Settings, wanted: Sequence[str]) -> dict[str, Channel]:
    if "telegram" in wanted and settings.sandbox:
        raise CliError(
            "sandbox mode (no TELEGRAM_BOT_TOKEN): the sandbox Bot API runs inside `herald run`; "
            "start the service instead of --deliver"
        )
    endpoint = telegram_endpoint(settings) if "telegram" in wanted else None
    return build_channels(settings, telegram=endpoint, only=wanted)


async def _wait(
    context: HeraldContext,
    console: Console,
    message_ids: list[int],
    channels: Sequence[str],
    deliver: bool,
    idle_timeout: float,
) -> None:
    dispatcher: Dispatcher | None = None
    if deliver:
        dispatcher = build_dispatcher(
            context.settings,
            context.sessions,
            _delivering_channels(context.settings, channels),
            context.clock,
            recipient_kinds=context.recipient_kinds,
        )
        await dispatcher.start()
    try:
        await _progress(context, console, message_ids, idle_timeout if not deliver else None)
    finally:
        if dispatcher is not None:
            await dispatcher.stop()


async def _progress(
    context: HeraldContext, console: Console, ids: list[int], idle_timeout: float | None
) -> None:
    async with context.sessions() as session:
        totals = {i: sum((await read_counters(session, [i]))[i].values()) for i in ids}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[counts]}"),
    )
    last_change = time.monotonic()
    previous: dict[int, dict[str, int]] = {}
    with Progress(*columns, console=console) as progress:
        tasks = {i: progress.add_task(f"message {i}", total=totals[i] or 1, counts="") for i in ids}
        while True:
            async with context.sessions() as session:
                counters = await read_counters(session, ids)
            for i in ids:
                done = sum(n for s, n in counters[i].items() if s not in IN_FLIGHT)
                counts = " ".join(f"{s}={n}" for s, n in sorted(counters[i].items()))
                progress.update(tasks[i], completed=done, counts=counts)
            if all(not any(counters[i].get(s) for s in IN_FLIGHT) for i in ids):
                break
            if counters != previous:
                previous, last_change = counters, time.monotonic()
            elif idle_timeout is not None and time.monotonic() - last_change > idle_timeout:
                progress.stop()
                raise CliError(
                    f"nothing was delivered for {idle_timeout:g}s: is `herald run` up? The "
                    "broadcast stays queued for the service (or retry with --wait --deliver)"
                )
            await asyncio.sleep(POLL_SECONDS)


# --- messages show, recipients import ------------------------------------------------------------


async def _show(context: HeraldContext, user: User, message_id: int, shown: int) -> None:
    console = Console()
    async with context.sessions() as session:
        view = await get_message(session, context.recipient_kinds, user, message_id)
        deliveries = await list_deliveries(
            session,
            context.recipient_kinds,
            user,
            message_id,
            status=None,
            page=PageRequest(limit=max(shown, 1), offset=0),
        )
    m = view.message
    console.print(f"[bold]message {m.id}[/] {m.direction} on {m.channel}: {m.status}")
    console.print(f"from {m.sender_name or '-'} at {m.created_at.isoformat()}")
    if m.subject:
        console.print(f"subject: {m.subject}")
    console.print(f"body: {m.body[:500]}")
    counts = ", ".join(f"{s}={n}" for s, n in sorted(view.counters.items())) or "none"
    console.print(f"deliveries ({m.total}): {counts}")
    if shown > 0 and deliveries.items:
        table = Table()
        for column in ("id", "recipient", "address", "status", "attempts", "detail"):
            table.add_column(column)
        for d in deliveries.items:
            table.add_row(
                str(d.id),
                f"{d.recipient_kind}:{d.recipient_id}",
                d.address,
                d.status,
                str(d.attempts),
                d.last_error or d.status_detail,
            )
        console.print(table)


async def _import(context: HeraldContext, user: User, args: argparse.Namespace) -> None:
    if args.kind not in context.recipient_kinds:
        known = ", ".join(context.recipient_kinds.names())
        raise CliError(f"unknown kind {args.kind!r}; known: {known}")
    try:
        raw = args.file.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    parsed = parse_csv(raw, context.settings.default_phone_region)
    kind = context.recipient_kinds.get(args.kind)
    async with context.sessions.begin() as session:
        report = await import_recipients(
            session, kind, user, parsed.rows, all_or_nothing=args.all_or_nothing
        )
        if not report.applied:
            await session.rollback()
    console = Console()
    console.print(
        f"created {report.created}, updated {report.updated}, rejected {report.rejected}"
        + ("" if report.applied else " (nothing written: --all-or-nothing)")
    )
    if parsed.ignored_columns:
        console.print(f"ignored columns: {', '.join(parsed.ignored_columns)}")
    for row in report.rows:
        for error in row.get("errors", []):
            console.print(f"  line {row['line']}: {error['field']}: {error['message']}")
    if report.rejected and not report.applied:
        raise CliError("the import was refused")
