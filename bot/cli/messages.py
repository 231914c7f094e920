"""``herald messages list|show|cancel``: broadcasts and received messages, with live counters.

The same queries and owner rules as the API's /api/v1/messages: a user who is not a superuser
sees the messages they sent and what their own recipients wrote in; anything else is "not found".
"""

from __future__ import annotations

import argparse
from typing import Any

from admin_api.schemas_messages import DeliveryOut
from admin_api.views_messages import message_out
from bot.cli.common import (
    CliError,
    Subcommands,
    actor,
    add_command,
    add_group,
    add_paging,
    aware_datetime,
    console,
    counts,
    herald_database,
    page_request,
    print_json,
    table,
    when,
)
from bot.settings import Settings
from channels.clock import utc_now
from channels.composition import CHANNELS
from persistence import outbox
from persistence.audit import Actor
from persistence.common_queries import NotFoundError, PageRequest
from persistence.message_queries import (
    MessageFilter,
    MessageView,
    get_message,
    list_deliveries,
    list_messages,
    visible_message,
)
from persistence.models import DeliveryStatus, Direction, MessageStatus


def add_parsers(commands: Subcommands) -> None:
    actions = add_group(commands, "messages", help="sent and received messages")
    _add_list(actions)
    show = add_command(
        actions,
        "show",
        help="a message with its live counters and its first deliveries",
        example=["herald messages show 12", "herald messages show 12 --deliveries 100 --json"],
        handler=_show,
        acting=True,
        json_output=True,
    )
    show.add_argument("id", type=int)
    show.add_argument("--deliveries", type=int, default=20, help="how many deliveries to list")
    show.add_argument(
        "--status", choices=[s.value for s in DeliveryStatus], help="only deliveries in this status"
    )
    cancel = add_command(
        actions,
        "cancel",
        help="stop messages now: deliveries not yet handed to a provider are cancelled",
        example="herald messages cancel 12 13",
        handler=_cancel,
        acting=True,
        json_output=True,
    )
    cancel.add_argument("ids", type=int, nargs="+", metavar="ID")


def _add_list(actions: Subcommands) -> None:
    parser = add_command(
        actions,
        "list",
        help="messages, newest first, filtered like the API's GET /messages",
        example=[
            "herald messages list --channel telegram --status queued",
            "herald messages list --direction received --since 2026-12-01T00:00Z --json",
        ],
        handler=_list,
        acting=True,
        json_output=True,
    )
    parser.add_argument("--channel", choices=CHANNELS)
    parser.add_argument("--status", choices=[s.value for s in MessageStatus])
    parser.add_argument("--direction", choices=[d.value for d in Direction])
    parser.add_argument("--typology-id", type=int, help="of this message typology")
    parser.add_argument("--sender-id", type=int, help="sent by this user id")
    parser.add_argument("--since", type=aware_datetime, help="created at or after (ISO 8601)")
    parser.add_argument("--until", type=aware_datetime, help="created before (ISO 8601)")
    add_paging(parser)


def message_json(view: MessageView) -> dict[str, Any]:
    """A message exactly as the API renders it."""
    out: dict[str, Any] = message_out(view).model_dump(mode="json")
    return out


async def _list(settings: Settings, args: argparse.Namespace) -> None:
    wanted = page_request(args)
    filters = MessageFilter(
        channel=args.channel,
        status=args.status,
        typology_id=args.typology_id,
        direction=args.direction,
        created_from=args.since,
        created_to=args.until,
        sender_id=args.sender_id,
    )
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        async with context.sessions() as session:
            page = await list_messages(
                session,
                context.recipient_kinds,
                user,
                filters,
                wanted,
            )
    items = [message_json(view) for view in page.items]
    if args.json:
        print_json({"items": items, "next_offset": page.next_offset})
        return
    rows = [
        (
            m["id"],
            when(page.items[i].message.created_at),
            m["channel"],
            m["direction"],
            m["status"],
            (m["subject"] or m["body"])[:40],
            counts(m["counters"]),
        )
        for i, m in enumerate(items)
    ]
    columns = ("id", "created", "channel", "direction", "status", "subject / body", "deliveries")
    out = console()
    out.print(table(columns, rows, title=f"{len(rows)} message(s)"))
    if page.next_offset is not None:
        out.print(f"more: add --offset {page.next_offset}")


async def _show(settings: Settings, args: argparse.Namespace) -> None:
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        async with context.sessions() as session:
            view = await get_message(session, context.recipient_kinds, user, args.id)
            deliveries = await list_deliveries(
                session,
                context.recipient_kinds,
                user,
                args.id,
                status=args.status,
                page=PageRequest(limit=max(args.deliveries, 1), offset=0),
            )
    shown = [
        DeliveryOut.model_validate(d, from_attributes=True).model_dump(mode="json")
        for d in deliveries.items
    ][: max(args.deliveries, 0)]
    if args.json:
        print_json({**message_json(view), "deliveries": shown})
        return
    m = view.message
    out = console()
    out.print(f"[bold]message {m.id}[/] {m.direction} on {m.channel}: {m.status}")
    out.print(f"from {m.sender_name or '-'} at {when(m.created_at)}")
    if m.send_at:
        out.print(f"send at: {when(m.send_at)}")
    if m.subject:
        out.print(f"subject: {m.subject}")
    out.print(f"body: {m.body[:500]}")
    for attachment in view.attachments:
        out.print(f"attachment: {attachment.file_name} ({attachment.size} bytes)")
    out.print(f"deliveries ({m.total}): {counts(view.counters)}")
    if shown:
        rows = [
            (
                d["id"],
                f"{d['recipient_kind']}:{d['recipient_id']}",
                d["address"],
                d["status"],
                d["attempts"],
                d["last_error"] or d["status_detail"],
            )
            for d in shown
        ]
        out.print(table(("id", "recipient", "address", "status", "attempts", "detail"), rows))


async def _cancel(settings: Settings, args: argparse.Namespace) -> None:
    """As the API's POST /messages/{id}/cancel; the running service stops at its next step."""
    results: list[dict[str, Any]] = []
    refused: list[str] = []
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        for message_id in dict.fromkeys(args.ids):
            async with context.sessions.begin() as session:
                try:
                    message = await visible_message(
                        session, context.recipient_kinds, user, message_id
                    )
                except NotFoundError:
                    refused.append(f"message {message_id} not found")
                    continue
                if message.direction == Direction.RECEIVED:
                    refused.append(f"message {message_id} was received: it cannot be cancelled")
                    continue
                if message.status in (MessageStatus.DONE, MessageStatus.CANCELLED):
                    refused.append(f"message {message_id} is already {message.status}")
                    continue
                cancelled = await outbox.cancel_message(
                    session, message_id, utc_now(), Actor.cli(user)
                )
            results.append({"message_id": message_id, "cancelled": cancelled})
    if args.json:
        print_json({"cancelled": results, "refused": refused})
    else:
        for result in results:
            print(f"message {result['message_id']}: {result['cancelled']} deliveries cancelled")
    if refused:
        raise CliError("; ".join(refused), reported=args.json)
