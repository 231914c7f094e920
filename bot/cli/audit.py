"""``herald audit list``: the audit log, newest first, filtered like the API's GET /audit.

Reading it takes a superuser (the default ``cli`` user is one); ``--as`` someone else is refused.
"""

from __future__ import annotations

import argparse
from typing import Any

from admin_api.views_audit import event_out
from bot.cli.common import (
    CliError,
    Subcommands,
    actor,
    add_command,
    add_group,
    add_paging,
    aware_datetime,
    console,
    herald_database,
    page_request,
    print_json,
    table,
    when,
)
from bot.settings import Settings
from persistence.audit import ActorKind, AuditAction, AuditFilter, list_events


def add_parsers(commands: Subcommands) -> None:
    actions = add_group(commands, "audit", help="the audit log: who did what, when, from where")
    parser = add_command(
        actions,
        "list",
        help="audit events, newest first (superusers)",
        example=[
            "herald audit list --action recipient.deleted --since 2026-12-01T00:00Z",
            "herald audit list --actor alice --subject customer:12 --json",
        ],
        handler=_list,
        acting=True,
        json_output=True,
    )
    parser.add_argument("--action", choices=[a.value for a in AuditAction])
    parser.add_argument("--actor", help="a username (bot: the Telegram bot) or an API key prefix")
    parser.add_argument("--actor-kind", choices=[k.value for k in ActorKind])
    parser.add_argument(
        "--subject", metavar="KIND[:ID]", help="events about a kind of record, or one record"
    )
    parser.add_argument("--since", type=aware_datetime, help="at or after (ISO 8601)")
    parser.add_argument("--until", type=aware_datetime, help="before (ISO 8601)")
    add_paging(parser)


def _filters(args: argparse.Namespace) -> AuditFilter:
    kind, _, subject_id = (args.subject or "").partition(":")
    return AuditFilter(
        action=args.action,
        actor=args.actor,
        actor_kind=args.actor_kind,
        subject_kind=kind or None,
        subject_id=subject_id or None,
        since=args.since,
        until=args.until,
    )


def _subject(event: dict[str, Any]) -> str:
    ids = event["subject_ids"]
    shown = ",".join(ids[:5]) + (f" (+{len(ids) - 5})" if len(ids) > 5 else "")
    return f"{event['subject_kind']} {shown}".strip()


async def _list(settings: Settings, args: argparse.Namespace) -> None:
    wanted = page_request(args)
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        if not user.is_superuser:
            raise CliError(f"{user.username} is not a superuser: only a superuser reads the log")
        async with context.sessions() as session:
            page = await list_events(session, _filters(args), wanted)
    items = [event_out(event).model_dump(mode="json") for event in page.items]
    if args.json:
        print_json({"items": items, "next_offset": page.next_offset})
        return
    rows = [
        (
            e["id"],
            when(page.items[i].occurred_at),
            f"{e['actor_kind']}:{e['actor_label']}",
            e["action"],
            _subject(e),
            e["remote_addr"] or "-",
        )
        for i, e in enumerate(items)
    ]
    out = console()
    out.print(table(("id", "when", "who", "action", "subject", "from"), rows, title="audit log"))
    if page.next_offset is not None:
        out.print(f"more: add --offset {page.next_offset}")
