"""API keys: ``herald create-api-key`` (or ``keys create``), ``keys list`` and ``keys revoke``.

A revocation takes effect at once in every running service: on PostgreSQL the revoke's commit
notifies them (LISTEN/NOTIFY) and they forget the key; on SQLite the service never caches keys.
"""

from __future__ import annotations

import argparse
from typing import Any

from bot.cli.common import (
    CliError,
    Subcommands,
    actor,
    add_command,
    add_group,
    console,
    herald_database,
    print_json,
    table,
    when,
)
from bot.settings import Settings
from channels.clock import utc_now
from persistence.api_keys import KEY_PREFIX, find_key, issue_api_key, list_keys, revoke_key
from persistence.audit import Actor
from persistence.common_queries import NotFoundError
from persistence.models import ApiKey


def add_parsers(commands: Subcommands) -> None:
    _add_create(commands, "create-api-key")
    actions = add_group(commands, "keys", help="admin API keys: create, list, revoke")
    _add_create(actions, "create")
    listing = add_command(
        actions,
        "list",
        help="the API keys you may see (a superuser sees everyone's)",
        example=["herald keys list", "herald keys list --active --json"],
        handler=_list,
        acting=True,
        json_output=True,
    )
    listing.add_argument("--active", action="store_true", help="leave out revoked keys")
    revoke = add_command(
        actions,
        "revoke",
        help="revoke keys (by id or by the prefix `keys list` shows); effective at once",
        example=["herald keys revoke 3", "herald keys revoke hk_Ab12Cd34"],
        handler=_revoke,
        acting=True,
        json_output=True,
    )
    revoke.add_argument("keys", nargs="+", metavar="KEY", help="a key's id or prefix")


def _add_create(commands: Subcommands, name: str) -> None:
    parser = add_command(
        commands,
        name,
        help="create an admin API key (shown once, stored hashed)",
        example=f"herald {'keys create' if name == 'create' else name} alice --superuser "
        '--name "nightly import"',
        handler=_create,
        json_output=True,
    )
    parser.add_argument("username", help="the user the key belongs to (created if missing)")
    parser.add_argument("--superuser", action="store_true", help="the user sees everything")
    parser.add_argument("--name", default="", help="a label for the key, e.g. the script using it")


def key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "prefix": KEY_PREFIX + key.prefix,
        "name": key.name,
        "user": key.user.username,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "revoked_at": key.revoked_at,
    }


async def _create(settings: Settings, args: argparse.Namespace) -> None:
    async with herald_database(settings) as context, context.sessions.begin() as session:
        issued = await issue_api_key(
            session, args.username, superuser=args.superuser, name=args.name, actor=Actor.cli(None)
        )
    role = "superuser" if issued.user.is_superuser else "user"
    if args.json:
        print_json({"user": issued.user.username, "role": role, "key": issued.key})
        return
    print(f"API key for {issued.user.username} ({role}); it is shown only this once:")
    print(issued.key)


async def _list(settings: Settings, args: argparse.Namespace) -> None:
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        async with context.sessions() as session:
            keys = [k for k in await list_keys(session, user) if not (args.active and k.revoked_at)]
            found = [key_json(k) for k in keys]
    if args.json:
        print_json({"keys": found})
        return
    rows = [
        (
            k["id"],
            k["prefix"],
            k["name"],
            k["user"],
            when(k["created_at"]),
            when(k["last_used_at"]),
            when(k["revoked_at"]) if k["revoked_at"] else "active",
        )
        for k in found
    ]
    columns = ("id", "prefix", "name", "user", "created", "last used", "revoked")
    console().print(table(columns, rows, title=f"{len(rows)} API key(s)"))


async def _revoke(settings: Settings, args: argparse.Namespace) -> None:
    revoked: list[dict[str, Any]] = []
    missing: list[str] = []
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        async with context.sessions.begin() as session:
            for reference in args.keys:
                try:
                    found = await find_key(session, user, reference)
                except NotFoundError:
                    missing.append(reference)
                    continue
                row = await revoke_key(session, user, found.id, utc_now(), actor=Actor.cli(user))
                revoked.append(key_json(row))
    if args.json:
        print_json({"revoked": revoked, "not_found": missing})
    else:
        for key in revoked:
            print(f"revoked API key {key['id']} ({key['prefix']}, {key['user']})")
    if missing:
        raise CliError(f"API key {', '.join(missing)} not found", reported=args.json)
