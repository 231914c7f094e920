"""``herald templates list|show|create|update|delete``: saved message templates, as the API's
/api/v1/templates (the same queries, owner rules, versions and audit log).

``update`` writes the next version whenever it changes the content; ``show --version N`` reads
an earlier one. A broadcast uses one with ``herald broadcast --template NAME|ID``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from admin_api.views_templates import template_out
from bot.cli.broadcast import button_rows
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
    table,
)
from bot.context import HeraldContext
from bot.settings import Settings
from channels.clock import utc_now
from channels.composition import CHANNELS
from channels.templates import PER_CHANNEL, check_content, normalised
from persistence import audit
from persistence.audit import Actor, AuditAction
from persistence.models import MessageTypology
from persistence.template_queries import (
    TemplateFilter,
    create_template,
    delete_template,
    find_template,
    get_template,
    list_templates,
    update_template,
)
from persistence.typology_queries import find_typology


def _content_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--subject", help="the subject (an email needs one)")
    text = parser.add_mutually_exclusive_group(required=required)
    text.add_argument("--body", help="the text")
    text.add_argument("--body-file", type=Path, help="read the text from this UTF-8 file")
    parser.add_argument("--html-file", type=Path, help="the email's HTML part, from this file")
    parser.add_argument("--format", choices=("text", "markdown", "html"))
    parser.add_argument(
        "--button",
        action="append",
        default=[],
        metavar="'LABEL URL | LABEL URL'",
        help="a row of URL buttons (repeatable), as for herald broadcast",
    )
    parser.add_argument(
        "--channel-body",
        action="append",
        default=[],
        metavar="CHANNEL=TEXT",
        help="a channel's own text instead of the shared one, e.g. sms='Closed Friday'",
    )
    parser.add_argument("--typology", help="the message typology (name or id)")


def add_parsers(commands: Subcommands) -> None:
    actions = add_group(commands, "templates", help="saved message templates, with versions")
    listing = add_command(
        actions,
        "list",
        help="your templates (a superuser's: all), by name",
        example=["herald templates list", "herald templates list --search closed --json"],
        handler=_list,
        acting=True,
        json_output=True,
    )
    listing.add_argument("--search", help="part of the name")
    listing.add_argument("--typology", help="of this message typology (name or id)")
    add_paging(listing)
    show = add_command(
        actions,
        "show",
        help="a template's content (the current version, or --version N) and its versions",
        example=["herald templates show 'Office closed'", "herald templates show 3 --version 1"],
        handler=_show,
        acting=True,
        json_output=True,
    )
    show.add_argument("template", metavar="NAME|ID")
    show.add_argument("--version", type=int)
    create = add_command(
        actions,
        "create",
        help="save a new template (version 1)",
        example=[
            "herald templates create 'Office closed' --subject 'Office closed' "
            "--body 'The office is closed on Friday.' --channel-body sms='Closed on Friday'"
        ],
        handler=_create,
        acting=True,
        json_output=True,
    )
    create.add_argument("name")
    _content_options(create, required=True)
    update = add_command(
        actions,
        "update",
        help="rename it, or change its content (which makes the next version)",
        example=["herald templates update 'Office closed' --body 'Closed all week.'"],
        handler=_update,
        acting=True,
        json_output=True,
    )
    update.add_argument("template", metavar="NAME|ID")
    update.add_argument("--name", help="a new name")
    _content_options(update, required=False)
    delete = add_command(
        actions,
        "delete",
        help="delete a template and its versions (what was sent from it stays)",
        example="herald templates delete 'Office closed'",
        handler=_delete,
        acting=True,
        json_output=True,
    )
    delete.add_argument("template", metavar="NAME|ID")


def _read(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{option} {path}: not UTF-8 text") from None


def _given_content(args: argparse.Namespace) -> dict[str, Any]:
    """The content fields the options give (only those)."""
    given: dict[str, Any] = {}
    if args.subject is not None:
        given["subject"] = args.subject
    if args.body is not None:
        given["body"] = args.body
    elif args.body_file is not None:
        given["body"] = _read(args.body_file, "--body-file")
    if args.html_file is not None:
        given["body_html"] = _read(args.html_file, "--html-file")
    if args.format is not None:
        given["format"] = args.format
    if args.button:
        given["buttons"] = button_rows(args.button)
    if args.channel_body:
        per_channel: dict[str, dict[str, Any]] = {}
        for value in args.channel_body:
            channel, sep, text = value.partition("=")
            if not sep or channel not in CHANNELS or not text.strip():
                raise UsageError(
                    f"--channel-body {value!r}: write CHANNEL=TEXT, CHANNEL one of "
                    f"{', '.join(CHANNELS)}"
                )
            per_channel[channel] = {"body": text}
        given[PER_CHANNEL] = per_channel
    return given


async def _typology_id(context: HeraldContext, value: str) -> int:
    async with context.sessions() as session:
        try:
            return int((await find_typology(session, MessageTypology, value)).id)
        except LookupError:
            raise CliError(f"--typology: no message typology {value!r}") from None


def _json(view: Any) -> dict[str, Any]:
    out: dict[str, Any] = template_out(view).model_dump(mode="json")
    return out


def _print(data: dict[str, Any]) -> None:
    out = console()
    out.print(
        f"template {data['id']} {data['name']!r}: version {data['version']} of "
        f"{data['current_version']} ({data['format']})"
    )
    if data["subject"]:
        out.print(f"subject: {data['subject']}")
    out.print(data["body"], markup=False)
    for channel, own in data["per_channel"].items():
        out.print(f"{channel}: {own.get('body') or '(shared text)'}", markup=False)
    if data["versions"]:
        rows = [(v["version"], v["created_at"], v["created_by"]) for v in data["versions"]]
        out.print(table(("version", "created", "by user"), rows))


async def _list(settings: Settings, args: argparse.Namespace) -> None:
    wanted = page_request(args)
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        typology = await _typology_id(context, args.typology) if args.typology else None
        async with context.sessions() as session:
            page = await list_templates(
                session,
                user,
                TemplateFilter(search=args.search, typology_id=typology),
                wanted,
            )
            items = [
                template_out(v, with_versions=False).model_dump(mode="json") for v in page.items
            ]
    if args.json:
        print_json({"items": items, "next_offset": page.next_offset})
        return
    rows = [(t["id"], t["name"], t["current_version"], t["updated_at"]) for t in items]
    out = console()
    out.print(table(("id", "name", "version", "updated"), rows))
    if page.next_offset is not None:
        out.print(f"more: add --offset {page.next_offset}")


async def _show(settings: Settings, args: argparse.Namespace) -> None:
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        async with context.sessions() as session:
            template = await find_template(session, user, args.template)
            data = _json(await get_template(session, user, template.id, args.version))
    if args.json:
        print_json(data)
    else:
        _print(data)


async def _create(settings: Settings, args: argparse.Namespace) -> None:
    content = normalised(_given_content(args))
    check_content(content)
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        typology = await _typology_id(context, args.typology) if args.typology else None
        async with context.sessions.begin() as session:
            view = await create_template(
                session,
                user,
                name=args.name,
                typology_id=typology,
                content=content,
                now=utc_now(),
            )
            await audit.record(
                session,
                Actor.cli(user),
                AuditAction.TEMPLATE_CREATED,
                "template",
                [view.template.id],
                {"name": view.template.name, "version": 1},
            )
            data = _json(view)
    if args.json:
        print_json(data)
    else:
        print(f"template {data['id']} {data['name']!r} saved (version 1)")


async def _update(settings: Settings, args: argparse.Namespace) -> None:
    given = _given_content(args)
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        values: dict[str, Any] = {}
        if args.name is not None:
            values["name"] = args.name
        if args.typology is not None:
            values["typology_id"] = await _typology_id(context, args.typology)
        if not values and not given:
            raise UsageError("nothing to change: give --name, --typology or a content option")
        async with context.sessions.begin() as session:
            template = await find_template(session, user, args.template)
            content = None
            if given:
                current = await get_template(session, user, template.id)
                content = normalised({**normalised(current.content), **given})
                check_content(content)
            view = await update_template(
                session, user, template.id, values, content=content, now=utc_now()
            )
            await audit.record(
                session,
                Actor.cli(user),
                AuditAction.TEMPLATE_UPDATED,
                "template",
                [template.id],
                {
                    "fields": sorted({*values, *(["content"] if content else [])}),
                    "version": view.template.current_version,
                },
            )
            data = _json(view)
    if args.json:
        print_json(data)
    else:
        print(f"template {data['id']} {data['name']!r}: version {data['current_version']}")


async def _delete(settings: Settings, args: argparse.Namespace) -> None:
    async with herald_database(settings) as context:
        user = await actor(context, args.as_user)
        async with context.sessions.begin() as session:
            template = await find_template(session, user, args.template)
            await delete_template(session, user, template.id)
            await audit.record(
                session,
                Actor.cli(user),
                AuditAction.TEMPLATE_DELETED,
                "template",
                [template.id],
                {},
            )
    if args.json:
        print_json({"deleted": True, "id": template.id})
    else:
        print(f"template {template.id} deleted")
