"""``herald recipients add|list|show|update|delete`` (``import`` and ``preferences`` in their own
modules).

The same queries, checks and owner rules as the admin API's /api/v1/recipients/{kind}: a user who
is not a superuser sees and changes only the recipients they own (``--as``).
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import ValidationError

from admin_api.recipient_input import AddressError, normalize_addresses
from admin_api.schemas_recipients import RecipientCreate, RecipientPatch
from admin_api.views_recipients import recipient_out
from bot.cli import recipient_preferences, recipients_import
from bot.cli.common import (
    CliError,
    Subcommands,
    UsageError,
    actor,
    add_command,
    add_group,
    add_paging,
    console,
    herald_database,
    page_request,
    print_json,
    recipient_kind,
    table,
    validation_message,
    yes_no,
)
from bot.context import HeraldContext
from bot.settings import Settings
from persistence.audit import Actor
from persistence.common_queries import NotFoundError
from persistence.models import User
from persistence.recipient_kinds import RecipientKind
from persistence.recipient_queries import (
    RecipientFilter,
    create_recipient,
    delete_recipient,
    get_recipient,
    list_recipients,
    update_recipient,
)
from persistence.typology_queries import find_typology

CHANNEL_COLUMNS = {"telegram": "telegram_chat_id", "email": "email", "sms": "sms"}
# option dest → recipient field, for add and update
TEXT_OPTIONS = {
    "name": "name",
    "phone": "sms",
    "email": "email",
    "vat_number": "vat_number",
    "fiscal_code": "fiscal_code",
    "external_id": "external_id",
    "note": "note",
}


def add_parsers(commands: Subcommands) -> None:
    actions = add_group(commands, "recipients", help="the people and companies Herald reaches")
    _add_add(actions)
    _add_list(actions)
    show = add_command(
        actions,
        "show",
        help="one recipient with every field",
        example="herald recipients show 1 --kind customer",
        handler=_show,
        kind=True,
        acting=True,
        json_output=True,
    )
    show.add_argument("id", type=int)
    _add_update(actions)
    delete = add_command(
        actions,
        "delete",
        help="delete recipients (their message history stays)",
        example="herald recipients delete 4 5 --kind external_subject",
        handler=_delete,
        kind=True,
        acting=True,
        json_output=True,
    )
    delete.add_argument("ids", type=int, nargs="+", metavar="ID")
    recipients_import.add_parser(actions)
    recipient_preferences.add_parser(actions)


def _add_fields(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    clears = "" if creating else " ('' clears it)"
    parser.add_argument("--name", required=creating, help="name" if creating else "new name")
    parser.add_argument("--phone", help=f"mobile number, e.g. +393331234567{clears}")
    parser.add_argument("--email", help=f"email address{clears}")
    parser.add_argument("--vat-number", help=f"VAT number{clears}")
    parser.add_argument("--fiscal-code", help=f"fiscal code{clears}")
    parser.add_argument("--external-id", help=f"your own code for it, unique per owner{clears}")
    parser.add_argument("--note", help="free text")
    parser.add_argument("--typology", help=f"typology of this kind, by name or id{clears}")
    parser.add_argument(
        "--related-customer",
        metavar="ID",
        help=f"external subjects: the id of the customer it acts for{clears}",
    )


def _add_add(actions: Subcommands) -> None:
    parser = add_command(
        actions,
        "add",
        help="add a recipient (people register with the bot against its phone number)",
        example='herald recipients add --name "Ada Lovelace" --phone +393331234567',
        handler=_add,
        kind=True,
        acting=True,
        json_output=True,
    )
    _add_fields(parser, creating=True)


def _add_list(actions: Subcommands) -> None:
    parser = add_command(
        actions,
        "list",
        help="recipients of one kind, filtered like the API's GET /recipients/{kind}",
        example=[
            "herald recipients list --has telegram --search rossi",
            "herald recipients list --kind external_subject --typology Accountants --json",
        ],
        handler=_list,
        kind=True,
        acting=True,
        json_output=True,
    )
    parser.add_argument("--search", help="name contains (case-insensitive)")
    parser.add_argument("--typology", help="of this typology (name or id)")
    for name in ("has", "lacks"):
        parser.add_argument(
            f"--{name}",
            action="append",
            default=[],
            choices=sorted(CHANNEL_COLUMNS),
            help=f"only recipients that {'have' if name == 'has' else 'lack'} this address "
            "(repeatable)",
        )
    parser.add_argument("--blocked", type=yes_no, metavar="yes|no", help="blocked the bot")
    parser.add_argument("--opted-out", type=yes_no, metavar="yes|no", help="sent /stop")
    parser.add_argument("--owner-id", type=int, help="owned by this user id")
    add_paging(parser)


def _add_update(actions: Subcommands) -> None:
    parser = add_command(
        actions,
        "update",
        help="change the fields given; the phone number is normalised again",
        example="herald recipients update 1 --email ada@example.org --typology ''",
        handler=_update,
        kind=True,
        acting=True,
        json_output=True,
    )
    parser.add_argument("id", type=int)
    parser.add_argument("--opted-out", type=yes_no, metavar="yes|no", help="as if /stop was sent")
    parser.add_argument("--blocked", type=yes_no, metavar="yes|no", help="blocked the bot")
    _add_fields(parser, creating=False)


# --- helpers -----------------------------------------------------------------------------------


def recipient_json(kind: RecipientKind, record: Any) -> dict[str, Any]:
    """A recipient exactly as the API renders it."""
    out: dict[str, Any] = recipient_out(kind, record).model_dump(mode="json")
    return out


def _option(field: str) -> str:
    names = {v: k for k, v in TEXT_OPTIONS.items()} | {
        "telegram_opted_out": "opted_out",
        "telegram_blocked": "blocked",
        "related_customer_id": "related_customer",
    }
    return "--" + names.get(field, field).replace("_", "-")


def _values(
    args: argparse.Namespace, settings: Settings, schema: type[RecipientCreate | RecipientPatch]
) -> dict[str, Any]:
    """The options given, checked by the API's own schema and normalised as the API does."""
    given: dict[str, Any] = {
        field: getattr(args, dest)
        for dest, field in TEXT_OPTIONS.items()
        if getattr(args, dest) is not None
    }
    if schema is RecipientPatch:
        for field in ("vat_number", "fiscal_code", "sms", "email", "external_id"):
            if given.get(field) == "":
                given[field] = None  # '' clears an optional field
        for dest, field in (("opted_out", "telegram_opted_out"), ("blocked", "telegram_blocked")):
            if getattr(args, dest) is not None:
                given[field] = getattr(args, dest)
    related = getattr(args, "related_customer", None)
    if related is not None:
        if related == "" and schema is RecipientPatch:
            given["related_customer_id"] = None
        elif related.isdigit():
            given["related_customer_id"] = int(related)
        else:
            raise UsageError("--related-customer: a customer id (a whole number)")
    try:
        body = schema.model_validate(given)
        values = normalize_addresses(
            body.model_dump(include=body.model_fields_set), settings.default_phone_region
        )
    except ValidationError as exc:
        raise UsageError(validation_message(exc, _option)) from None
    except AddressError as exc:
        raise UsageError(f"{_option(exc.field)}: {exc.message}") from None
    return values


async def _typology(context: HeraldContext, kind: RecipientKind, reference: str | None) -> Any:
    if reference is None or not reference.strip():
        return None
    async with context.sessions() as session:
        return (await find_typology(session, kind.typology_model, reference)).id


def _label(record: Any) -> str:
    return f"{record.name}, {record.sms or record.email or 'no address'}"


def _telegram(r: dict[str, Any]) -> str:
    if r["telegram_chat_id"] is None:
        return "-"
    state = "opted out" if r["telegram_opted_out"] else "blocked" if r["telegram_blocked"] else ""
    return f"{r['telegram_chat_id']}{f' ({state})' if state else ''}"


# --- commands ----------------------------------------------------------------------------------


async def _add(settings: Settings, args: argparse.Namespace) -> None:
    values = _values(args, settings, RecipientCreate)
    async with herald_database(settings) as context:
        kind = recipient_kind(context, args.kind)
        user = await actor(context, args.as_user)
        values["typology_id"] = await _typology(context, kind, args.typology)
        async with context.sessions.begin() as session:
            record = await create_recipient(session, kind, user, values, actor=Actor.cli(user))
            out = recipient_json(kind, record)
    if args.json:
        print_json(out)
    else:
        print(f"added {kind.name} {out['id']}: {_label(record)}")


async def _list(settings: Settings, args: argparse.Namespace) -> None:
    requested = page_request(args)
    wanted = {name: True for name in args.has} | {name: False for name in args.lacks}
    async with herald_database(settings) as context:
        kind = recipient_kind(context, args.kind)
        user = await actor(context, args.as_user)
        filters = RecipientFilter(
            typology_id=await _typology(context, kind, args.typology),
            search=args.search,
            has_telegram=wanted.get("telegram"),
            has_email=wanted.get("email"),
            has_sms=wanted.get("sms"),
            blocked=args.blocked,
            opted_out=args.opted_out,
            owner_id=args.owner_id,
        )
        async with context.sessions() as session:
            page = await list_recipients(session, kind, user, filters, requested)
            items = [recipient_json(kind, r) for r in page.items]
    if args.json:
        print_json({"items": items, "next_offset": page.next_offset})
        return
    rows = [
        (r["id"], r["name"], r["sms"], r["email"], _telegram(r), r["typology_id"], r["external_id"])
        for r in items
    ]
    columns = ("id", "name", "sms", "email", "telegram", "typology", "external id")
    out = console()
    out.print(table(columns, rows, title=f"{kind.label} recipients: {len(rows)}"))
    if page.next_offset is not None:
        out.print(f"more: add --offset {page.next_offset}")


async def _show(settings: Settings, args: argparse.Namespace) -> None:
    async with herald_database(settings) as context:
        kind = recipient_kind(context, args.kind)
        user = await actor(context, args.as_user)
        async with context.sessions() as session:
            out = recipient_json(kind, await get_recipient(session, kind, user, args.id))
    if args.json:
        print_json(out)
        return
    rows = [(name, "-" if value is None else value) for name, value in out.items()]
    console().print(table(("field", "value"), rows, title=f"{kind.name} {args.id}"))


async def _update(settings: Settings, args: argparse.Namespace) -> None:
    values = _values(args, settings, RecipientPatch)
    async with herald_database(settings) as context:
        kind = recipient_kind(context, args.kind)
        user = await actor(context, args.as_user)
        if args.typology is not None:
            values["typology_id"] = await _typology(context, kind, args.typology)
        if not values:
            raise UsageError("nothing to change: give at least one option (see --help)")
        async with context.sessions.begin() as session:
            record = await update_recipient(
                session, kind, user, args.id, values, actor=Actor.cli(user)
            )
            out = recipient_json(kind, record)
    if args.json:
        print_json(out)
    else:
        print(f"updated {kind.name} {args.id}: {', '.join(sorted(values))}")


async def _delete(settings: Settings, args: argparse.Namespace) -> None:
    deleted: list[int] = []
    missing: list[int] = []
    async with herald_database(settings) as context:
        kind = recipient_kind(context, args.kind)
        user: User = await actor(context, args.as_user)
        async with context.sessions.begin() as session:
            for rid in dict.fromkeys(args.ids):
                try:
                    await delete_recipient(session, kind, user, rid, actor=Actor.cli(user))
                except NotFoundError:
                    missing.append(rid)
                else:
                    deleted.append(rid)
    if args.json:
        print_json({"deleted": deleted, "not_found": missing})
    elif deleted:
        print(f"deleted {kind.name} {', '.join(map(str, deleted))} (their messages stay)")
    if missing:
        listed = ", ".join(f"{kind.name} {rid}" for rid in missing)
        raise CliError(f"{listed} not found", reported=args.json)
