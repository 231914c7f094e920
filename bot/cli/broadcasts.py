"""``herald broadcasts list|show|cancel|recall``: a send as one object, as the API's
/api/v1/broadcasts shows it (the same queries, owner rules and answers)."""

from __future__ import annotations

import argparse
from typing import Any

from admin_api.schemas_broadcasts import BroadcastStatus
from admin_api.views_broadcasts import broadcast_out
from bot.cli.common import (
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
)
from bot.settings import Settings
from channels.clock import utc_now
from channels.composition import CHANNELS
from persistence import outbox
from persistence.audit import Actor
from persistence.broadcast_queries import (
    BroadcastFilter,
    BroadcastView,
    get_broadcast,
    list_broadcasts,
)
from persistence.common_queries import ConflictError
from persistence.recall import start_recall


def add_parsers(commands: Subcommands) -> None:
    actions = add_group(commands, "broadcasts", help="sends as one object: every channel at once")
    listing = add_command(
        actions,
        "list",
        help="broadcasts, newest first, filtered like the API's GET /broadcasts",
        example=["herald broadcasts list --status sending", "herald broadcasts list --json"],
        handler=_list,
        acting=True,
        json_output=True,
    )
    listing.add_argument("--status", choices=[s.value for s in BroadcastStatus])
    listing.add_argument("--channel", choices=CHANNELS, help="that used this channel")
    listing.add_argument("--typology-id", type=int, help="of this message typology")
    listing.add_argument("--sender-id", type=int, help="sent by this user id")
    listing.add_argument("--since", type=aware_datetime, help="created at or after (ISO 8601)")
    listing.add_argument("--until", type=aware_datetime, help="created before (ISO 8601)")
    add_paging(listing)
    for name, help_text, handler in (
        ("show", "a broadcast: every channel's live counters, and its recall", _show),
        ("cancel", "cancel every channel's remaining deliveries at once", _cancel),
        (
            "recall",
            "cancel what is pending and delete every Telegram message already delivered",
            _recall,
        ),
    ):
        parser = add_command(
            actions,
            name,
            help=help_text,
            example=f"herald broadcasts {name} 6f1c2a4e-0b7d-4e8a-9c55-2f0d4c3b1a90",
            handler=handler,
            acting=True,
            json_output=True,
        )
        parser.add_argument("id", metavar="BROADCAST_ID")


def broadcast_json(view: BroadcastView) -> dict[str, Any]:
    out: dict[str, Any] = broadcast_out(view).model_dump(mode="json")
    return out


async def _list(settings: Settings, args: argparse.Namespace) -> None:
    wanted = page_request(args)
    filters = BroadcastFilter(
        status=args.status,
        channel=args.channel,
        typology_id=args.typology_id,
        sender_id=args.sender_id,
        created_from=args.since,
        created_to=args.until,
    )
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        async with context.sessions() as session:
            page = await list_broadcasts(
                session,
                context.recipient_kinds,
                user,
                filters,
                wanted,
            )
            items = [broadcast_json(view) for view in page.items]
    if args.json:
        print_json({"items": items, "next_offset": page.next_offset})
        return
    rows = [
        (
            b["id"],
            b["created_at"],
            b["status"],
            ",".join(b["channels"]),
            counts(b["counters"]),
        )
        for b in items
    ]
    out = console()
    out.print(table(("id", "created", "status", "channels", "deliveries"), rows))
    if page.next_offset is not None:
        out.print(f"more: add --offset {page.next_offset}")


def _print(view: dict[str, Any]) -> None:
    out = console()
    out.print(f"broadcast {view['id']}: {view['status']}, by {view['sender_name'] or '-'}")
    if view["send_at"]:
        out.print(f"send at: {view['send_at']}")
    rows = [
        (m["message_id"], m["channel"], m["status"], counts(m["counters"]))
        for m in view["messages"]
    ]
    rows += [
        (r["message_id"], "telegram (recall)", r["status"], counts(r["counters"]))
        for r in view["recalls"]
    ]
    out.print(table(("message", "channel", "status", "deliveries"), rows))


async def _show(settings: Settings, args: argparse.Namespace) -> None:
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        async with context.sessions() as session:
            view = broadcast_json(
                await get_broadcast(session, context.recipient_kinds, user, args.id)
            )
    if args.json:
        print_json(view)
    else:
        _print(view)


async def _cancel(settings: Settings, args: argparse.Namespace) -> None:
    """As the API's cancel; the running service stops at its next step."""
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        async with context.sessions.begin() as session:
            view = await get_broadcast(session, context.recipient_kinds, user, args.id)
            open_ids = [
                v.message.id
                for v in view.channels
                if v.message.status in outbox.OPEN_MESSAGE_STATUSES
            ]
            if not open_ids:
                raise ConflictError("every delivery of this broadcast is already final")
            cancelled = 0
            for message_id in open_ids:
                cancelled += await outbox.cancel_message(
                    session, message_id, utc_now(), Actor.cli(user)
                )
        async with context.sessions() as session:
            after = broadcast_json(
                await get_broadcast(session, context.recipient_kinds, user, args.id)
            )
    if args.json:
        print_json({"cancelled": cancelled, "broadcast": after})
    else:
        print(f"broadcast {args.id}: {cancelled} deliveries cancelled")


async def _recall(settings: Settings, args: argparse.Namespace) -> None:
    """As the API's recall: the running service deletes the Telegram messages."""
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        now = utc_now()
        async with context.sessions.begin() as session:
            view = await get_broadcast(session, context.recipient_kinds, user, args.id)
            cancelled = 0
            for channel in view.channels:
                if channel.message.status in outbox.OPEN_MESSAGE_STATUSES:
                    cancelled += await outbox.cancel_message(session, channel.message.id, now)
            started = await start_recall(
                session,
                [v.message for v in view.channels],
                user,
                now,
                Actor.cli(user),
                cancelled=cancelled,
            )
        async with context.sessions() as session:
            after = broadcast_json(
                await get_broadcast(session, context.recipient_kinds, user, args.id)
            )
    if args.json:
        print_json(
            {
                "cancelled": started.cancelled,
                "to_delete": started.to_delete,
                "in_flight": started.in_flight,
                "broadcast": after,
            }
        )
    else:
        flying = f", {started.in_flight} more once delivered" if started.in_flight else ""
        print(
            f"broadcast {args.id}: {started.cancelled} deliveries cancelled, "
            f"{started.to_delete} Telegram messages to delete{flying} (the service deletes "
            f"them; follow with: herald broadcasts show {args.id})"
        )
