"""``herald recipients preferences show|set``: the channels a recipient accepts.

The same statements and owner rules as the admin API's /recipients/{kind}/{id}/preferences; a
change is recorded in the audit log as the CLI's (``--as``).
"""

from __future__ import annotations

import argparse

from bot.cli.common import (
    Subcommands,
    UsageError,
    actor,
    add_command,
    console,
    herald_database,
    print_json,
    recipient_kind,
    table,
)
from bot.settings import Settings
from persistence.audit import Actor
from persistence.common_queries import NotFoundError
from persistence.models import MessageTypology, PreferenceSource
from persistence.preferences import (
    PREFERENCE_CHANNELS,
    Preference,
    PreferenceChoice,
    list_preferences,
    set_channel,
)
from persistence.recipient_queries import get_recipient
from persistence.typology_queries import find_typology


def add_parser(actions: Subcommands) -> None:
    parser = actions.add_parser(
        "preferences",
        help="the channels a recipient accepts (in general or per message typology)",
        description="The channels a recipient accepts, in general or per message typology.",
        epilog="examples:\n  herald recipients preferences show 1\n"
        "  herald recipients preferences set 1 --channel email --refuse",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="preferences_action", required=True, metavar="ACTION")
    show = add_command(
        commands,
        "show",
        help="a recipient's channel choices (no choice: accepted)",
        example="herald recipients preferences show 1 --kind customer --json",
        handler=_show,
        kind=True,
        acting=True,
        json_output=True,
    )
    show.add_argument("id", type=int)
    change = add_command(
        commands,
        "set",
        help="accept or refuse a channel for a recipient, in general or for one typology",
        example=[
            "herald recipients preferences set 1 --channel email --refuse",
            "herald recipients preferences set 1 --channel email --accept --typology Invoices",
        ],
        handler=_set,
        kind=True,
        acting=True,
        json_output=True,
    )
    change.add_argument("id", type=int)
    change.add_argument("--channel", required=True, choices=PREFERENCE_CHANNELS)
    choice = change.add_mutually_exclusive_group(required=True)
    choice.add_argument("--accept", action="store_true", help="the recipient accepts it")
    choice.add_argument("--refuse", action="store_true", help="the recipient refuses it")
    change.add_argument(
        "--typology", help="only for this message typology (name or id); default: all"
    )


def _json(choice: Preference) -> dict[str, object]:
    return {
        "channel": choice.channel,
        "typology_id": choice.typology_id,
        "typology_name": choice.typology_name,
        "accepted": choice.accepted,
        "source": choice.source,
        "updated_at": choice.updated_at.isoformat(),
    }


def _print(kind: str, rid: int, choices: list[Preference], as_json: bool) -> None:
    if as_json:
        print_json({"kind": kind, "recipient_id": rid, "preferences": [_json(c) for c in choices]})
        return
    rows = [
        (
            c.channel,
            c.typology_name or "all typologies",
            "accepts" if c.accepted else "refuses",
            c.source,
        )
        for c in choices
    ]
    title = f"{kind} {rid}: " + ("every channel accepted" if not rows else "channel choices")
    console().print(table(("channel", "typology", "choice", "set by"), rows, title=title))


async def _show(settings: Settings, args: argparse.Namespace) -> None:
    async with herald_database(settings) as context:
        kind = recipient_kind(context, args.kind)
        user = await actor(context, args.as_user)
        async with context.sessions() as session:
            await get_recipient(session, kind, user, args.id)
            choices = await list_preferences(session, kind.name, args.id)
    _print(kind.name, args.id, choices, args.json)


async def _set(settings: Settings, args: argparse.Namespace) -> None:
    async with herald_database(settings) as context:
        kind = recipient_kind(context, args.kind)
        user = await actor(context, args.as_user)
        async with context.sessions.begin() as session:
            await get_recipient(session, kind, user, args.id)
            typology_id = None
            if args.typology is not None:
                try:
                    typology_id = (await find_typology(session, MessageTypology, args.typology)).id
                except NotFoundError:
                    raise UsageError(f"--typology: no message typology {args.typology!r}") from None
            changed = await set_channel(
                session,
                kind,
                args.id,
                PreferenceChoice(args.channel, typology_id, bool(args.accept)),
                source=PreferenceSource.STAFF,
                actor=Actor.cli(user),
                via="cli",
            )
            choices = await list_preferences(session, kind.name, args.id)
    if not args.json:
        print("changed" if changed else "unchanged: already so")
    _print(kind.name, args.id, choices, args.json)
