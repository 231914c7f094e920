"""``herald recipients import FILE.csv``: the API's CSV import, from a terminal or a script."""

from __future__ import annotations

import argparse
from pathlib import Path

from admin_api.recipient_input import csv_columns_help, parse_csv
from admin_api.schemas_recipients import ImportReportOut
from admin_api.views_recipients import import_match, import_report
from bot.cli.common import (
    CliError,
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
from persistence.recipient_import import import_recipients

DESCRIPTION = f"""\
Create or update recipients from a CSV file with a header row, as the API's
POST /api/v1/recipients/{{kind}}/import does. The delimiter is found from the header (; as
Italian spreadsheets write it, , or tab); a UTF-8 byte order mark is skipped; the file must be
UTF-8. Importing the same file again updates instead of duplicating: rows are matched on
--match (default: external_id when the file has that column); a row with an id updates that
record. Every row is reported with its line number: created, updated, unchanged or rejected
with the reason. The exit code is 1 when any row was rejected.

columns:
{csv_columns_help()}"""


def add_parser(actions: Subcommands) -> None:
    parser = add_command(
        actions,
        "import",
        help="create or update recipients from a CSV file (; , or tab)",
        description=DESCRIPTION,
        example=[
            "herald recipients import customers.csv",
            "herald recipients import people.csv --kind external_subject --match phone "
            "--all-or-nothing --json",
        ],
        handler=_import,
        kind=True,
        acting=True,
        json_output=True,
    )
    parser.add_argument("file", type=Path)
    parser.add_argument(
        "--match",
        choices=("external_id", "phone", "email"),
        help="update the record with the same value in this column instead of adding one",
    )
    parser.add_argument(
        "--all-or-nothing", action="store_true", help="write nothing if any row is rejected"
    )


async def _import(settings: Settings, args: argparse.Namespace) -> None:
    try:
        raw = args.file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    parsed = parse_csv(raw, settings.default_phone_region)
    match = import_match(args.match, parsed)
    async with herald_database(settings) as context:
        kind = recipient_kind(context, args.kind)
        user = await actor(context, args.as_user)
        async with context.sessions.begin() as session:
            report = await import_recipients(
                session,
                kind,
                user,
                parsed.rows,
                all_or_nothing=args.all_or_nothing,
                match=match,
                actor=Actor.cli(user),
            )
            if not report.applied:
                await session.rollback()
    out = import_report(parsed, report)
    if args.json:
        print_json(out.model_dump(mode="json"))
    else:
        _print(out)
    if report.rejected:
        written = "nothing written (--all-or-nothing)" if not report.applied else "the rest written"
        raise CliError(f"{report.rejected} row(s) rejected; {written}", reported=args.json)


def _print(report: ImportReportOut) -> None:
    out = console()
    delimiter = "tab" if report.delimiter == "\t" else repr(report.delimiter)
    out.print(
        f"created {report.created}, updated {report.updated}, unchanged {report.unchanged}, "
        f"rejected {report.rejected} (matched on {report.match}, delimiter {delimiter})"
        + ("" if report.applied else ": nothing written")
    )
    if report.ignored_columns:
        out.print(f"ignored columns: {', '.join(report.ignored_columns)}")
    shown = [
        (
            row.line,
            row.status,
            row.id or "",
            ", ".join(row.changed) or "; ".join(f"{e.field}: {e.message}" for e in row.errors),
        )
        for row in report.rows
        if row.status != "unchanged"
    ]
    if shown:
        out.print(table(("line", "status", "id", "changed / why rejected"), shown))
