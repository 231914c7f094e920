"""What every ``herald`` command shares: the two failure kinds, the help with an example, the
``--json`` and ``--as`` options, and the one way a command opens the database.

Exit codes (decided in ``bot.cli.main`` alone): 0 when the command did all it says, 1 when
something was rejected or not found (:class:`CliError` and the domain errors), 2 for usage and
configuration errors (:class:`UsageError`, argparse, settings, an unmigrated database).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from bot.context import HeraldContext
from bot.settings import Settings
from persistence.api_keys import get_or_create_user
from persistence.common_queries import PageRequest
from persistence.migrate import ensure_schema_current
from persistence.models import User
from persistence.recipient_kinds import RecipientKind

if TYPE_CHECKING:  # argparse's class is generic only for type checkers
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subcommands = argparse._SubParsersAction
Handler = Callable[[Settings, argparse.Namespace], Awaitable[None]]

DEFAULT_ACTOR = "cli"


class UsageError(Exception):
    """The command line cannot be carried out as written (exit code 2); the message says why."""


class CliError(Exception):
    """Something was rejected or not found (exit code 1); the message says what.

    ``reported``: the command already printed its result (with ``--json``, the JSON document
    that says what failed), so only the one-line message on stderr is left to write.
    """

    def __init__(self, message: str, *, reported: bool = False) -> None:
        super().__init__(message)
        self.reported = reported


# --- parsers -----------------------------------------------------------------------------------


def add_command(
    commands: Subcommands,
    name: str,
    *,
    help: str,
    example: str | Sequence[str],
    description: str | None = None,
    handler: Handler | None = None,
    kind: bool = False,
    acting: bool = False,
    json_output: bool = False,
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with an example (or a few), with the shared options
    asked for: ``--kind`` (a recipient kind), ``--as`` (``acting``), ``--json``."""
    examples = [example] if isinstance(example, str) else list(example)
    epilog = "example" + ("s" if len(examples) > 1 else "") + ":\n"
    epilog += "\n".join(f"  {line}" for line in examples)
    parser = commands.add_parser(
        name,
        help=help,
        description=description or help[0].upper() + help[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if handler is not None:
        parser.set_defaults(handler=handler)
    if kind:
        add_kind(parser)
    if acting:
        add_actor(parser)
    if json_output:
        add_json(parser)
    return parser


def add_group(commands: Subcommands, name: str, *, help: str) -> Subcommands:
    """A noun with actions (``herald recipients list``...)."""
    parser = commands.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog=f"example:\n  herald {name} ACTION --help   (each action's options and examples)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser.add_subparsers(dest=f"{name}_action", required=True, metavar="ACTION")


def add_actor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as",
        dest="as_user",
        default=DEFAULT_ACTOR,
        metavar="USERNAME",
        help=f"act as this user, with their rights (default: superuser {DEFAULT_ACTOR!r}, "
        "created if missing)",
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def add_kind(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind", default="customer", help="recipient kind: customer (default), external_subject"
    )


# --- the database --------------------------------------------------------------------------------


@asynccontextmanager
async def herald_database(settings: Settings) -> AsyncIterator[HeraldContext]:
    """The one way a command reaches the database: engine opened, schema checked, closed after.

    An unmigrated database therefore always ends the command with the `herald db upgrade` hint.
    """
    context = HeraldContext.from_settings(settings)
    try:
        await ensure_schema_current(context.engine)
        yield context
    finally:
        await context.close()


async def actor(context: HeraldContext, username: str) -> User:
    """The user a command acts as (``--as``); the default ``cli`` superuser is created once."""
    async with context.sessions.begin() as session:
        if username == DEFAULT_ACTOR:
            user: User | None = await get_or_create_user(session, username, superuser=True)
        else:
            user = (await session.execute(select(User).where(User.username == username))).scalar()
        if user is None or not user.is_active:
            raise CliError(f"no active user named {username!r}")
        session.expunge(user)
    return user


def recipient_kind(context: HeraldContext, name: str) -> RecipientKind:
    if name not in context.recipient_kinds:
        known = ", ".join(context.recipient_kinds.names())
        raise UsageError(f"--kind: unknown kind {name!r}; known: {known}")
    return context.recipient_kinds.get(name)


# --- paging ------------------------------------------------------------------------------------

MAX_PAGE = 1000


def add_paging(parser: argparse.ArgumentParser) -> None:
    """``--limit`` and ``--offset`` of a listing."""
    parser.add_argument("--limit", type=int, default=50, help=f"at most (1-{MAX_PAGE}; 50)")
    parser.add_argument("--offset", type=int, default=0)


def page_request(args: argparse.Namespace) -> PageRequest:
    """The page ``--limit`` and ``--offset`` ask for (a usage error when out of range)."""
    if not 1 <= args.limit <= MAX_PAGE or args.offset < 0:
        raise UsageError(f"--limit: between 1 and {MAX_PAGE}; --offset: 0 or more")
    return PageRequest(args.limit, args.offset)


def counts(counters: dict[str, int]) -> str:
    """Counters as ``status=n`` words, the empty ones left out."""
    return " ".join(f"{status}={n}" for status, n in sorted(counters.items()) if n) or "-"


# --- output ------------------------------------------------------------------------------------


def console() -> Console:
    """Where human output goes; rich drops colours and animation when it is not a terminal."""
    return Console(highlight=False)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=_json_default)
    sys.stdout.write("\n")
    sys.stdout.flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> Table:
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*("" if cell is None else str(cell) for cell in row))
    return out


def when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def yes_no(value: str) -> bool:
    """An option value that is yes or no (also true/false, 1/0)."""
    lowered = value.strip().lower()
    if lowered in ("yes", "y", "true", "1"):
        return True
    if lowered in ("no", "n", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"{value!r}: write yes or no")


def aware_datetime(value: str) -> datetime:
    """An ISO 8601 time with its offset (argparse names the option when this refuses it)."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 time, e.g. 2026-12-01T09:00+01:00"
        ) from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} has no timezone: write it with an offset, e.g. {value}+01:00 or {value}Z"
        )
    return parsed


def validation_message(exc: ValidationError, option: Callable[[str], str] = lambda f: f) -> str:
    """A pydantic error as one line naming the option (``option`` maps a field to its name)."""
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error.get("loc", ())) or "value"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{option(field)}: {message}"
