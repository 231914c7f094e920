"""``herald typologies list|create|delete``: recipient typologies (per kind) and message ones.

As in the API, anyone may list them and only a superuser creates or deletes them. Deleting a
typology keeps its recipients and messages, with no typology.
"""

from __future__ import annotations

import argparse
from typing import Any

from admin_api.schemas_recipients import TypologyIn
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
from bot.context import HeraldContext
from bot.settings import Settings
from persistence.common_queries import NotFoundError, PageRequest
from persistence.models import MessageTypology, User
from persistence.typology_queries import (
    create_typology,
    delete_typology,
    find_typology,
    list_typologies,
)

MESSAGE = "message"
SCOPE_HELP = "customer, external_subject (recipient typologies) or message"


def add_parsers(commands: Subcommands) -> None:
    actions = add_group(commands, "typologies", help="typologies of recipients and of messages")
    listing = add_command(
        actions,
        "list",
        help="typologies of one kind (or of every kind and of messages)",
        example=["herald typologies list", "herald typologies list customer --json"],
        handler=_list,
        acting=True,
        json_output=True,
    )
    listing.add_argument("scope", nargs="?", help=SCOPE_HELP + " (default: all)")
    listing.add_argument("--search", help="name contains")
    create = add_command(
        actions,
        "create",
        help="create a typology (superuser)",
        example=[
            'herald typologies create customer "Retail" --description "Shops and kiosks"',
            'herald typologies create message "Invoices"',
        ],
        handler=_create,
        acting=True,
        json_output=True,
    )
    create.add_argument("scope", help=SCOPE_HELP)
    create.add_argument("name")
    create.add_argument("--description", default="")
    delete = add_command(
        actions,
        "delete",
        help="delete typologies (superuser); their recipients and messages stay",
        example="herald typologies delete customer Retail",
        handler=_delete,
        acting=True,
        json_output=True,
    )
    delete.add_argument("scope", help=SCOPE_HELP)
    delete.add_argument("typologies", nargs="+", metavar="NAME_OR_ID")


def _models(context: HeraldContext, scope: str | None) -> dict[str, type[Any]]:
    models: dict[str, type[Any]] = {k.name: k.typology_model for k in context.recipient_kinds}
    models[MESSAGE] = MessageTypology
    if scope is None:
        return models
    if scope not in models:
        raise UsageError(f"unknown typology scope {scope!r}; use {', '.join(models)}")
    return {scope: models[scope]}


def _superuser(user: User) -> None:
    if not user.is_superuser:
        raise CliError(f"only a superuser may do this, and {user.username!r} is not one")


def typology_json(scope: str, record: Any) -> dict[str, Any]:
    return {
        "scope": scope,
        "id": record.id,
        "name": record.name,
        "description": record.description,
        "created_at": record.created_at,
    }


async def _list(settings: Settings, args: argparse.Namespace) -> None:
    found: list[dict[str, Any]] = []
    async with herald_database(settings) as context:
        await actor(context, args.as_user)
        async with context.sessions() as session:
            for scope, model in _models(context, args.scope).items():
                page = await list_typologies(session, model, args.search, PageRequest(1000, 0))
                found += [typology_json(scope, t) for t in page.items]
    if args.json:
        print_json({"typologies": found})
        return
    rows = [
        (t["scope"], t["id"], t["name"], t["description"], when(t["created_at"])) for t in found
    ]
    columns = ("of", "id", "name", "description", "created")
    console().print(table(columns, rows, title=f"{len(rows)} typologies"))


async def _create(settings: Settings, args: argparse.Namespace) -> None:
    async with herald_database(settings) as context:
        [(scope, model)] = _models(context, args.scope).items()
        _superuser(await actor(context, args.as_user))
        values = TypologyIn(name=args.name, description=args.description).model_dump()
        async with context.sessions.begin() as session:
            out = typology_json(scope, await create_typology(session, model, values))
    if args.json:
        print_json(out)
    else:
        print(f"created {scope} typology {out['id']}: {out['name']}")


async def _delete(settings: Settings, args: argparse.Namespace) -> None:
    deleted: list[dict[str, Any]] = []
    missing: list[str] = []
    async with herald_database(settings) as context:
        [(scope, model)] = _models(context, args.scope).items()
        _superuser(await actor(context, args.as_user))
        async with context.sessions.begin() as session:
            for reference in args.typologies:
                try:
                    record = await find_typology(session, model, reference)
                except NotFoundError:
                    missing.append(reference)
                    continue
                deleted.append({"id": record.id, "name": record.name})
                await delete_typology(session, model, record.id)
    if args.json:
        print_json({"scope": scope, "deleted": deleted, "not_found": missing})
    for item in deleted if not args.json else []:
        print(f"deleted {scope} typology {item['id']}: {item['name']}")
    if missing:
        raise CliError(f"{scope} typology {', '.join(missing)} not found", reported=args.json)
