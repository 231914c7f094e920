"""``herald broadcast``: the API's POST /api/v1/messages from a terminal or a script.

The same composer, limits and owner rules as the API (acting as ``--as USERNAME``). ``--wait``
follows the live counters until every delivery is final; the deliveries are made by the running
service (``herald run``), and when nothing moves for ``--idle-timeout`` seconds the command says
so and stops waiting (the broadcast stays queued for the service). With ``--deliver`` the command
delivers from this process instead, for when the service is not running (not for Telegram in
sandbox mode: the sandbox Bot API lives inside ``herald run``).

The exit code is 0 when every delivery was queued (and, with ``--wait``, succeeded); 1 when the
broadcast was refused or any delivery was invalid, failed, blocked or cancelled.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from bot.cli.common import (
    CliError,
    Subcommands,
    UsageError,
    actor,
    add_command,
    aware_datetime,
    console,
    herald_database,
    print_json,
    table,
)
from bot.cli.progress import follow
from bot.context import HeraldContext
from bot.delivery import build_channels, build_composer, build_dispatcher
from bot.sandbox_mode import telegram_endpoint
from bot.settings import Settings
from channels import rich_text
from channels.attachments import IncomingAttachment
from channels.base import Channel
from channels.composition import ComposeRequest, Plan, SendResult, TestSendResult
from channels.dispatcher import Dispatcher
from channels.templates import apply_template
from persistence.audit import Actor
from persistence.common_queries import NotFoundError
from persistence.models import DeliveryStatus, MessageTypology, User
from persistence.template_queries import find_template, get_template
from persistence.typology_queries import find_typology, typologies_named

# Outcomes that mean the person was not reached (duplicates are the same address twice: fine).
NOT_REACHED = (
    DeliveryStatus.INVALID,
    DeliveryStatus.FAILED,
    DeliveryStatus.BLOCKED,
    DeliveryStatus.CANCELLED,
)

EXAMPLES = [
    'herald broadcast --channel telegram --to customer:1 --body "Hello" --wait',
    'herald broadcast --channel telegram,email --to typology:Retail --subject "Closed" '
    "--body-file notice.txt --attach timetable.pdf --send-at 2026-12-24T09:00+01:00",
    'herald broadcast --channel sms --to customer:1,2,3 --body "Hi" --presend --json',
    'herald broadcast --channel telegram,email --to customer:1 --subject "News" --format markdown '
    '--body "**Open** on Sunday: [hours](https://example.com/hours)" '
    '--button "Our site https://example.com | Map https://example.com/map"',
    'herald broadcast --channel email,sms --to customer:1,2 --template "Office closed"',
    "herald broadcast --test --channel telegram,email --template 3 --recipient customer:1",
]


def add_parsers(commands: Subcommands) -> None:
    parser = add_command(
        commands,
        "broadcast",
        help="send a message to recipients over one or more channels (same rules as the API)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        example=EXAMPLES,
        handler=_broadcast,
        acting=True,
        json_output=True,
    )
    parser.add_argument(
        "--channel",
        action="append",
        required=True,
        help="telegram, email, sms or storage (repeatable, or comma-separated)",
    )
    parser.add_argument(
        "--to",
        action="append",
        default=[],
        metavar="KIND:IDS|typology:NAME",
        help="recipients, e.g. customer:1,2,3; typology:NAME is every recipient of the "
        "typology of that name (of any kind)",
    )
    parser.add_argument(
        "--to-typology",
        action="append",
        default=[],
        metavar="KIND:IDS",
        help="every recipient of these typology ids, e.g. customer:4",
    )
    parser.add_argument("--typology", help="the message typology (name or id)")
    parser.add_argument("--subject", help="the subject (email, inbox)")
    text = parser.add_mutually_exclusive_group()
    text.add_argument("--body", help="the text (required unless --template gives it)")
    text.add_argument("--body-file", type=Path, help="read the text from this UTF-8 file")
    parser.add_argument(
        "--template",
        metavar="NAME|ID",
        help="take the content from this saved template; --subject, --body, --format and "
        "--button replace its own",
    )
    parser.add_argument(
        "--template-version", type=int, metavar="N", help="that version of --template"
    )
    parser.add_argument(
        "--test",
        action="store_true",
        help="send me a test: only to your own email and linked Telegram chat (no --to)",
    )
    parser.add_argument(
        "--recipient",
        metavar="KIND:ID",
        help="with --test: render the draft as this recipient would receive it",
    )
    parser.add_argument(
        "--format",
        choices=("text", "markdown", "html"),
        default=None,
        help="how the text is written: text (the default), markdown (**bold**, *italic*, "
        "`code`, [label](https://...)) or html (Telegram's tags)",
    )
    parser.add_argument(
        "--button",
        action="append",
        default=[],
        metavar="'LABEL URL | LABEL URL'",
        help="a row of URL buttons (repeatable, at most 3 rows of 3): each the label, then "
        "its http(s):// or tg:// URL; | separates the buttons of a row",
    )
    parser.add_argument(
        "--attach",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="attach a file (repeatable); MAX_ATTACHMENT_BYTES each",
    )
    parser.add_argument(
        "--send-at",
        type=aware_datetime,
        metavar="TIME",
        help="schedule it: ISO 8601 with a timezone, e.g. 2026-12-24T09:00+01:00",
    )
    parser.add_argument("--presend", action="store_true", help="dry run: show the plan")
    parser.add_argument("--wait", action="store_true", help="show progress until delivered")
    parser.add_argument(
        "--deliver", action="store_true", help="with --wait: deliver from this process"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="with --wait: stop waiting when nothing moves this long (default 15)",
    )
    parser.add_argument("--idempotency-key", help="repeat a send safely: the first answer counts")


# --- reading the options -------------------------------------------------------------------------


def button_rows(rows: Sequence[str]) -> list[list[dict[str, str]]]:
    try:
        return rich_text.buttons_json(rich_text.parse_button_lines(rows))
    except rich_text.ButtonError as exc:
        raise UsageError(f"--button: {exc.reason}") from None


def _channels(values: Sequence[str]) -> list[str]:
    return [c.strip() for value in values for c in value.split(",") if c.strip()]


def _ids(value: str, option: str) -> tuple[str, list[int]]:
    kind, sep, ids = value.partition(":")
    try:
        numbers = [int(i) for i in ids.split(",") if i.strip()]
    except ValueError:
        numbers = []
    if not sep or not kind or not numbers:
        raise UsageError(f"{option} {value!r}: write KIND:ID[,ID...], e.g. customer:1,2")
    return kind, numbers


async def _targets(
    context: HeraldContext, to: Sequence[str], to_typology: Sequence[str]
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """``--to`` and ``--to-typology`` as the composer's recipients and typology selection."""
    recipients: dict[str, list[int]] = {}
    selection: dict[str, list[int]] = {}
    models = {kind.name: kind.typology_model for kind in context.recipient_kinds}
    for value in to:
        head, _, name = value.partition(":")
        if head == "typology":
            if not name.strip():
                raise UsageError(f"--to {value!r}: write typology:NAME")
            async with context.sessions() as session:
                found = await typologies_named(session, models, name)
            if not found:
                raise CliError(f"--to {value!r}: no recipient typology named {name!r}")
            for kind, tid in found.items():
                selection.setdefault(kind, []).append(tid)
            continue
        kind, ids = _ids(value, "--to")
        recipients.setdefault(kind, []).extend(ids)
    for value in to_typology:
        kind, ids = _ids(value, "--to-typology")
        selection.setdefault(kind, []).extend(ids)
    return recipients, selection


def _attachments(settings: Settings, files: Sequence[Path]) -> list[IncomingAttachment]:
    """The files, refused before reading when over the API's limits."""
    limit, total_limit = settings.max_attachment_bytes, settings.max_request_bytes
    attachments: list[IncomingAttachment] = []
    total = 0
    for path in files:
        try:
            size = path.stat().st_size
            if size > limit:
                raise UsageError(
                    f"--attach {path}: {size} bytes; the limit is {limit} (MAX_ATTACHMENT_BYTES)"
                )
            total += size
            if total > total_limit:
                raise UsageError(
                    f"--attach: the files are {total} bytes together; the limit is "
                    f"{total_limit} (MAX_REQUEST_BYTES)"
                )
            attachments.append(IncomingAttachment(path.name, path.read_bytes()))
        except OSError as exc:
            raise UsageError(f"--attach {path}: {exc.strerror}") from None
    return attachments


def _body(args: argparse.Namespace) -> str:
    if args.body is not None:
        return str(args.body)
    if args.body_file is None:
        if args.template is None:
            raise UsageError("give --body, --body-file or --template")
        return ""
    try:
        return str(args.body_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--body-file {args.body_file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--body-file {args.body_file}: not UTF-8 text") from None


async def _typology_id(context: HeraldContext, value: str | None) -> int | None:
    if value is None:
        return None
    async with context.sessions() as session:
        try:
            return int((await find_typology(session, MessageTypology, value)).id)
        except NotFoundError:
            raise CliError(f"--typology: no message typology {value!r}") from None


# --- the command --------------------------------------------------------------------------------


def _explicit(args: argparse.Namespace) -> set[str]:
    """The content options given on the command line (they replace a template's)."""
    given = {
        "subject": args.subject is not None,
        "body": args.body is not None or args.body_file is not None,
        "format": args.format is not None,
        "buttons": bool(args.button),
        "typology_id": args.typology is not None,
    }
    return {name for name, present in given.items() if present}


async def _apply_template(
    context: HeraldContext, user: User, request: ComposeRequest, args: argparse.Namespace
) -> None:
    if args.template is None:
        if args.template_version is not None:
            raise UsageError("--template-version: only with --template")
        return
    async with context.sessions() as session:
        try:
            template = await find_template(session, user, args.template)
            view = await get_template(session, user, template.id, args.template_version)
        except NotFoundError as exc:
            raise CliError(f"--template: {exc} does not exist or is not yours") from None
    apply_template(
        request,
        view.content,
        template_id=view.template.id,
        version=view.version.version,
        typology_id=view.template.typology_id,
        explicit=_explicit(args),
    )


def _recipient(value: str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    kind, ids = _ids(value, "--recipient")
    if len(ids) != 1:
        raise UsageError(f"--recipient {value!r}: one recipient, KIND:ID")
    return kind, ids[0]


async def _broadcast(settings: Settings, args: argparse.Namespace) -> None:
    if args.deliver and not args.wait:
        raise UsageError("--deliver: only with --wait")
    if args.test and (args.to or args.to_typology or args.send_at or args.presend):
        raise UsageError(
            "--test: goes to your own addresses now; leave out --to, --send-at and --presend"
        )
    if args.recipient is not None and not args.test:
        raise UsageError("--recipient: only with --test")
    body = _body(args)
    attachments = _attachments(settings, args.attach)
    out = console()
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        recipients, selection = await _targets(context, args.to, args.to_typology)
        request = ComposeRequest(
            channels=_channels(args.channel),
            body=body,
            subject=args.subject or "",
            typology_id=await _typology_id(context, args.typology),
            recipients=recipients,
            typology_selection=selection,
            attachments=attachments,
            send_at=args.send_at,
            idempotency_key=args.idempotency_key,
            format=args.format or "text",
            buttons=button_rows(args.button),
        )
        await _apply_template(context, user, request, args)
        composer = build_composer(
            settings, context.sessions, context.clock, recipient_kinds=context.recipient_kinds
        )
        if args.test:
            tested = await composer.send_test(
                user, request, _recipient(args.recipient), Actor.cli(user)
            )
            _show_test(out, tested, as_json=args.json)
            return
        if args.presend:
            plan = await composer.presend(user, request)
            _show_plan(out, plan, as_json=args.json)
            return
        sent = _sent(await composer.send(user, request, Actor.cli(user)))
        if not args.json:
            for line in sent["lines"]:
                out.print(line)
        counters: dict[int, dict[str, int]] = sent["counts"]
        if args.wait and sent["status"] != "scheduled":
            counters = await _wait(context, out, sent["labels"], request.channels, args)
    result = {**sent["answer"], "counters": {str(i): c for i, c in counters.items()}}
    if args.json:
        print_json(result)
    _check_reached(counters, reported=args.json)


def _sent(answer: SendResult) -> dict[str, Any]:
    """Everything the command needs from the composer's answer (one place to change)."""
    labels = {m.id: f"message {m.id} ({m.channel})" for m in answer.messages}
    lines = [
        f"{labels[m.id]}: " + ", ".join(f"{n} {s}" for s, n in m.counts.items() if n)
        for m in answer.messages
    ]
    if answer.status == "scheduled":
        lines.append(f"scheduled for {answer.send_at}; the service sends it then")
    lines.append(
        f"broadcast {answer.broadcast_id}: herald broadcasts show|cancel|recall "
        f"{answer.broadcast_id}"
    )
    return {
        "answer": answer.to_json(),
        "status": answer.status,
        "labels": labels,
        "lines": lines,
        "counts": {m.id: dict(m.counts) for m in answer.messages},
    }


def _show_test(out: Console, tested: TestSendResult, *, as_json: bool) -> None:
    if as_json:
        print_json(tested.to_json())
        return
    for m in tested.messages:
        out.print(f"test message {m.id} ({m.channel}): queued to your own address")
    for s in tested.skipped:
        out.print(f"{s.channel}: skipped: {s.reason}")
    if not tested.messages:
        raise CliError("no channel has an address of yours: nothing was sent")


def _check_reached(counters: dict[int, dict[str, int]], *, reported: bool) -> None:
    lost = {
        status.value: sum(c.get(status.value, 0) for c in counters.values())
        for status in NOT_REACHED
    }
    total = sum(sum(c.values()) for c in counters.values())
    if any(lost.values()):
        detail = ", ".join(f"{n} {status}" for status, n in lost.items() if n)
        raise CliError(
            f"{sum(lost.values())} of {total} deliveries not made: {detail}", reported=reported
        )


def _show_plan(out: Console, plan: Plan, *, as_json: bool) -> None:
    data = plan.to_json()
    if as_json:
        print_json(data)
        return
    rows = []
    for c in data["channels"]:
        notes = [*c["problems"], *c.get("drops", [])]
        if c.get("sms"):
            notes.append(f"{c['sms']['encoding']}, {c['sms']['fragments']} fragment(s)")
        rows.append(
            (
                c["channel"],
                c["valid"],
                c["invalid"],
                c["duplicate"],
                c["units"],
                c["estimated_cost"],
                "; ".join(notes),
            )
        )
    columns = ("channel", "valid", "invalid", "duplicate", "units", "cost", "notes")
    out.print(table(columns, rows, title=f"Presend: {data['recipients']} recipients"))
    if data["not_visible"]:
        refused = ", ".join(f"{r['kind']}:{r['id']}" for r in data["not_visible"])
        out.print(f"[red]not yours or missing, would be refused:[/] {refused}")
    for c in data["channels"]:
        for problem in c["invalid_recipients"][:10]:
            out.print(f"  {c['channel']}: {problem['kind']} {problem['id']}: {problem['reason']}")


def _delivering_channels(settings: Settings, wanted: Sequence[str]) -> dict[str, Channel]:
    if "telegram" in wanted and settings.sandbox:
        raise UsageError(
            "--deliver: in sandbox mode (no TELEGRAM_BOT_TOKEN) the sandbox Bot API runs inside "
            "`herald run`; start the service instead"
        )
    endpoint = telegram_endpoint(settings) if "telegram" in wanted else None
    return build_channels(settings, telegram=endpoint, only=wanted)


async def _wait(
    context: HeraldContext,
    out: Console,
    labels: dict[int, str],
    channels: Sequence[str],
    args: argparse.Namespace,
) -> dict[int, dict[str, int]]:
    dispatcher: Dispatcher | None = None
    if args.deliver:
        dispatcher = build_dispatcher(
            context.settings,
            context.sessions,
            _delivering_channels(context.settings, channels),
            context.clock,
            recipient_kinds=context.recipient_kinds,
        )
        await dispatcher.start()
    try:
        return await follow(
            context.sessions,
            Console(stderr=True) if args.json else out,
            labels,
            idle_timeout=None if args.deliver else args.idle_timeout,
            on_idle=lambda: (
                ": is `herald run` up? The broadcast stays queued for the service (or retry "
                "with --wait --deliver)"
            ),
        )
    finally:
        if dispatcher is not None:
            await dispatcher.stop()
