"""``herald webhooks list|create|delete|events``: delivery-status webhooks, as the API has them.

Each command acts as ``--as`` (the default ``cli`` superuser): a user sees and changes only
their own endpoints, the same rule as the API's.
"""

from __future__ import annotations

import argparse
import secrets

from admin_api.views_webhooks import event_out, webhook_out
from bot.cli.common import (
    CliError,
    Subcommands,
    UsageError,
    actor,
    add_command,
    add_group,
    console,
    herald_database,
    print_json,
    table,
    when,
)
from bot.delivery import webhook_policy
from bot.settings import Settings
from channels.webhook_urls import UnsafeUrlError, check_url
from persistence import webhook_queries as sql
from persistence.audit import Actor

MAX_LIMIT = 500


def add_parsers(commands: Subcommands) -> None:
    actions = add_group(commands, "webhooks", help="delivery-status webhooks (your endpoints)")
    add_command(
        actions,
        "list",
        help="your webhook endpoints",
        example="herald webhooks list --as alice",
        handler=_list,
        acting=True,
        json_output=True,
    )
    create = add_command(
        actions,
        "create",
        help="register an endpoint (the secret is printed once)",
        example=(
            "herald webhooks create --url https://example.org/herald "
            "--event delivery.failed --event message.received"
        ),
        handler=_create,
        acting=True,
        json_output=True,
    )
    create.add_argument("--url", required=True, help="https (http to loopback in sandbox mode)")
    create.add_argument(
        "--event",
        dest="events",
        action="append",
        required=True,
        choices=list(sql.EVENT_TYPES),
        help="an event it wants (repeat for more)",
    )
    create.add_argument("--secret", help="16-255 characters; generated when left out")
    create.add_argument("--description", default="")
    delete = add_command(
        actions,
        "delete",
        help="delete an endpoint with its events",
        example="herald webhooks delete 3",
        handler=_delete,
        acting=True,
    )
    delete.add_argument("id", type=int)
    events = add_command(
        actions,
        "events",
        help="an endpoint's newest events and every attempt",
        example="herald webhooks events 3 --limit 20",
        handler=_events,
        acting=True,
        json_output=True,
    )
    events.add_argument("id", type=int)
    events.add_argument("--limit", type=int, default=20, help=f"at most (1-{MAX_LIMIT}; 20)")


async def _list(settings: Settings, args: argparse.Namespace) -> None:
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        async with context.sessions() as session:
            rows = [webhook_out(e) for e in await sql.list_endpoints(session, user.id)]
    if args.json:
        print_json({"items": [r.model_dump(mode="json") for r in rows]})
        return
    cells = [
        (r.id, r.url, ", ".join(r.events), "yes" if r.active else "no", when(r.created_at))
        for r in rows
    ]
    console().print(table(("id", "url", "events", "active", "created"), cells, title="webhooks"))


async def _create(settings: Settings, args: argparse.Namespace) -> None:
    secret = args.secret or secrets.token_urlsafe(32)
    if not 16 <= len(secret) <= 255 or not secret.isprintable() or " " in secret:
        raise UsageError("--secret: 16-255 printable characters without spaces")
    try:
        url = await check_url(args.url, webhook_policy(settings))
    except UnsafeUrlError as exc:
        raise UsageError(f"--url: {exc}") from None
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        async with context.sessions.begin() as session:
            endpoint = await sql.create_endpoint(
                session,
                owner_id=user.id,
                url=url,
                events=args.events,
                secret=secret,
                description=args.description,
                actor=Actor.cli(user),
            )
            out = webhook_out(endpoint)
    if args.json:
        print_json({**out.model_dump(mode="json"), "secret": secret})
        return
    console().print(f"webhook {out.id} created for {', '.join(out.events)}")
    console().print(f"secret (shown this once): {secret}", markup=False, highlight=False)


async def _delete(settings: Settings, args: argparse.Namespace) -> None:
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        async with context.sessions.begin() as session:
            found = await sql.delete_endpoint(session, user.id, args.id, actor=Actor.cli(user))
    if not found:
        raise CliError(f"webhook {args.id} not found")
    console().print(f"webhook {args.id} deleted")


async def _events(settings: Settings, args: argparse.Namespace) -> None:
    if not 1 <= args.limit <= MAX_LIMIT:
        raise UsageError(f"--limit: between 1 and {MAX_LIMIT}")
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        async with context.sessions() as session:
            if await sql.get_endpoint(session, user.id, args.id) is None:
                raise CliError(f"webhook {args.id} not found")
            views = await sql.recent_events(session, args.id, limit=args.limit)
    items = [event_out(v) for v in views]
    if args.json:
        print_json({"items": [i.model_dump(mode="json") for i in items]})
        return
    cells = [
        (
            e.id[:8],
            e.type,
            e.status.value,
            e.attempts,
            when(e.created_at),
            "; ".join(
                f"{a.status_code or '-'} {a.error or ''} {a.duration_ms} ms".strip()
                for a in e.attempt_log[-3:]
            ),
        )
        for e in items
    ]
    columns = ("event", "type", "status", "tries", "created", "last attempts")
    console().print(table(columns, cells, title=f"webhook {args.id} events"))
