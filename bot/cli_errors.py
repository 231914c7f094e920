"""Why a command failed, in one line: what ``herald`` prints instead of a traceback.

``report(exc, settings)`` classifies an exception (a setting, the database, the Bot API, a port,
a file), writes ``herald: <one line>`` on stderr with every secret redacted, and returns the exit
code: 2 for what the user must fix in the configuration or the command line, 1 for what failed
around it (a server that does not answer, an unexpected error). The traceback of an unexpected
error is logged at DEBUG only (``LOG_LEVEL=DEBUG`` shows it).
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import sys
from collections.abc import Sequence
from typing import NamedTuple

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from telegram.error import InvalidToken, NetworkError, TelegramError

from bot.logging_setup import Redactor
from bot.settings import ConfigurationError, Settings
from persistence.availability import database_unavailable
from persistence.migrate import SchemaOutOfDateError

log = logging.getLogger("herald")

USAGE = 2  # fix the configuration or the command line
FAILED = 1  # something around Herald failed (or Herald itself)


class StartupError(Exception):
    """Start-up cannot go on; the message is one line naming the setting (``PORT: ...``)."""


class Failure(NamedTuple):
    message: str
    exit_code: int


def report(
    exc: BaseException,
    settings: Settings | None,
    *,
    usage_errors: Sequence[type[BaseException]] = (),
) -> int:
    """Print why the command failed as one redacted line on stderr; the exit code."""
    failure = describe(exc, settings, usage_errors=usage_errors)
    redact = Redactor(settings.secrets() if settings is not None else [])
    line = " ".join(redact(failure.message).split())  # one line, whatever the cause said
    print(f"herald: {line}", file=sys.stderr)  # noqa: T201 - the CLI's one line
    return failure.exit_code


def describe(
    exc: BaseException,
    settings: Settings | None,
    *,
    usage_errors: Sequence[type[BaseException]] = (),
) -> Failure:
    if isinstance(exc, ConfigurationError):
        return Failure(f"configuration error: {exc}", USAGE)
    if isinstance(exc, (StartupError, SchemaOutOfDateError, *usage_errors)):
        return Failure(str(exc), USAGE)
    if isinstance(exc, TelegramError):
        return _telegram(exc, settings)
    database = _database(exc, settings)
    if database is not None:
        return database
    if isinstance(exc, OSError):
        return _os_error(exc)
    log.debug("unexpected error", exc_info=exc)
    return Failure(
        f"unexpected error: {type(exc).__name__}: {exc} (LOG_LEVEL=DEBUG shows the traceback)",
        FAILED,
    )


def _telegram(exc: TelegramError, settings: Settings | None) -> Failure:
    base_url = settings.telegram_api_base_url if settings is not None else "the Bot API"
    if isinstance(exc, InvalidToken):
        return Failure(
            "Telegram refused TELEGRAM_BOT_TOKEN (wrong or revoked; @BotFather shows the "
            "current one)",
            USAGE,
        )
    if isinstance(exc, NetworkError):  # TimedOut included
        return Failure(
            f"the Telegram Bot API at {base_url} (TELEGRAM_API_BASE_URL) is unreachable: "
            f"{_network_cause(exc)}",
            FAILED,
        )
    return Failure(f"Telegram answered: {exc.message}", FAILED)


def _network_cause(exc: BaseException) -> str:
    """The operating system's reason ("Connection refused") under a wrapped network error."""
    seen: BaseException | None = exc
    while seen is not None:
        os_error = getattr(seen, "os_error", None)  # aiohttp's ClientConnectorError
        if isinstance(seen, OSError) or isinstance(os_error, OSError):
            error = os_error if isinstance(os_error, OSError) else seen
            assert isinstance(error, OSError)
            if error.strerror:
                return error.strerror
        if isinstance(seen, TimeoutError):
            return "no answer in time"
        seen = seen.__cause__ or seen.__context__
    return exc.message if isinstance(exc, TelegramError) else str(exc)


def _where(settings: Settings | None) -> str:
    if settings is None:
        return "the database"
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        return "the database"
    if url.get_backend_name() == "sqlite":
        return f"the SQLite file {url.database}"
    return f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}"


def _sqlite_path(settings: Settings | None) -> str | None:
    try:
        url = make_url(settings.database_url) if settings is not None else None
    except ArgumentError:
        return None
    return url.database if url is not None and url.get_backend_name() == "sqlite" else None


def _database(exc: BaseException, settings: Settings | None) -> Failure | None:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    cause = orig.__cause__ if orig is not None and orig.__cause__ is not None else orig
    where = _where(settings)
    sqlite_path = _sqlite_path(settings)
    # Creating the SQLite file's directory failed (the engine makes it).
    if isinstance(exc, OSError) and sqlite_path and sqlite_path.startswith(str(exc.filename)):
        return Failure(
            f"DATABASE_URL: cannot create {exc.filename} for the SQLite file: {exc.strerror}",
            USAGE,
        )
    if isinstance(cause, asyncpg.InvalidCatalogNameError):
        name = make_url(settings.database_url).database if settings is not None else "?"
        return Failure(
            f'DATABASE_URL: the database "{name}" does not exist on {where.split(" at ")[-1]}; '
            f"create it (createdb {name}), then run `herald db upgrade`",
            USAGE,
        )
    if isinstance(
        cause, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError
    ):
        return Failure(f"DATABASE_URL: {where} refused the login: {cause}", USAGE)
    if isinstance(cause, asyncpg.UndefinedTableError) or (
        isinstance(cause, sqlite3.OperationalError) and "no such table" in str(cause)
    ):
        return Failure(
            f"{where} has no Herald schema (or an incomplete one): run `herald db upgrade`",
            USAGE,
        )
    reason = database_unavailable(exc)
    if reason is not None:
        return Failure(f"DATABASE_URL: {where} is unreachable: {reason}", FAILED)
    return None


def _os_error(exc: OSError) -> Failure:
    if exc.errno == errno.EADDRINUSE:
        return Failure(f"an address Herald listens on is already in use: {exc.strerror}", USAGE)
    if exc.filename is not None:
        return Failure(f"{exc.filename}: {exc.strerror}", FAILED)
    return Failure(f"{type(exc).__name__}: {exc.strerror or exc}", FAILED)
