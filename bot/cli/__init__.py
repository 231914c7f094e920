"""The ``herald`` command line: one module per noun, one ``main()``.

``main()`` is the only place where an exception becomes an exit code and a message: 0 when the
command did everything it says, 1 when something was rejected or not found, 2 for usage and
configuration errors (see ``bot.cli.common``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from admin_api.errors import ApiError
from bot import cli_errors, event_loop
from bot.cli import (
    audit,
    broadcast,
    broadcasts,
    keys,
    messages,
    recipients,
    service,
    templates,
    typologies,
    users,
    webhooks,
)
from bot.cli.common import CliError, UsageError, print_json, validation_message
from bot.logging_setup import Redactor, configure_logging
from bot.sandbox_mode import SandboxBusyError
from bot.settings import ConfigurationError, load_settings
from channels.composition import CompositionError, IdempotencyConflictError
from persistence.common_queries import ConflictError, InvalidFieldError, NotFoundError
from persistence.migrate import SchemaOutOfDateError

log = logging.getLogger("herald")

COMMAND_MODULES = (
    service,
    recipients,
    typologies,
    broadcast,
    broadcasts,
    templates,
    messages,
    keys,
    users,
    audit,
    webhooks,
)

EXAMPLES = """\
first steps (after `make run`, in a second terminal):
  .venv/bin/herald recipients add --name "Ada Lovelace" --phone +393331234567
  .venv/bin/herald chat
  .venv/bin/herald broadcast --channel telegram --to customer:1 --body "Hello" --wait

`herald COMMAND --help` shows each command's options and an example."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herald",
        description="Herald: Telegram-first notification service.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parsers(commands)
    return parser


def failure(exc: BaseException) -> tuple[int, str] | None:
    """The exit code and one-line message for an exception a command may end with."""
    if isinstance(exc, UsageError | ConfigurationError | SchemaOutOfDateError | SandboxBusyError):
        return 2, str(exc)
    if isinstance(exc, ValidationError):
        return 2, validation_message(exc)
    if isinstance(exc, NotFoundError):
        return 1, f"{exc} not found"
    if isinstance(exc, CompositionError | InvalidFieldError):
        return 1, f"{exc.field}: {exc.message}"
    if isinstance(exc, CliError | ConflictError | IdempotencyConflictError):
        return 1, str(exc)
    if isinstance(exc, ApiError):
        return 1, exc.message
    return None  # the rest (Telegram, the database, ports, files, bugs): bot.cli_errors


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error argparse has explained (2)
        return exc.code if isinstance(exc.code, int) else 2
    as_json = bool(getattr(args, "json", False))
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        return _fail(2, f"configuration error: {exc}", as_json, Redactor([]))
    configure_logging(settings.log_level, settings.secrets())
    redact = Redactor(settings.secrets())
    try:
        event_loop.run(args.handler(settings, args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`herald ... | head`): nothing to say
        return 1
    except Exception as exc:  # every failure: one redacted line and an exit code, no traceback
        known = failure(exc)
        if known is None:
            described = cli_errors.describe(exc, settings)
            known = described.exit_code, described.message
        return _fail(*known, as_json and not getattr(exc, "reported", False), redact)
    return 0


def _fail(code: int, message: str, as_json: bool, redact: Redactor) -> int:
    line = " ".join(redact(message).split())  # one line, whatever the cause said
    if as_json:
        print_json({"error": {"message": line, "exit_code": code}})
    print(f"herald: {line}", file=sys.stderr)
    return code


__all__ = ["build_parser", "configure_logging", "failure", "main"]
