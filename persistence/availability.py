"""Is the database unreachable? One narrow answer for the API, the CLI and the workers.

"Unreachable" means the database could not be talked to at all: the connection was refused,
reset or lost, connecting timed out, PostgreSQL is shutting down or starting up, SQLAlchemy
invalidated the connection, or SQLite cannot open its file. Everything else (a constraint, a
missing table, a bug) is not an outage and must not be answered as one.

:class:`OutageLog` turns a stream of failures into one log line when an outage starts and one when
it ends, so a loop or a busy API never writes a traceback per attempt.
"""

from __future__ import annotations

import errno
import logging
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
from sqlalchemy import exc as sa_exc

# Raised by the server when it is going away or not yet there (SQLSTATE classes 08 and 57P0x).
_POSTGRES_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
)
_UNREACHABLE_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}
_DATABASE_MODULES = ("asyncpg", "aiosqlite", "sqlite3", "sqlalchemy")
_SQLITE_UNAVAILABLE = ("unable to open database file", "disk i/o error")


def database_unavailable(exc: BaseException) -> str | None:
    """A short cause ("connection refused") when ``exc`` means the database is unreachable."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cause = _direct_cause(current)
        if cause is not None:
            return cause
        orig = getattr(current, "orig", None)
        nxt = orig if isinstance(orig, BaseException) and id(orig) not in seen else None
        current = nxt or current.__cause__ or current.__context__
    return None


def _direct_cause(exc: BaseException) -> str | None:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return "connection lost"
    if isinstance(exc, sa_exc.TimeoutError):  # the pool: every connection busy or hanging
        return "timed out waiting for a connection"
    if isinstance(exc, _POSTGRES_UNAVAILABLE):
        return str(exc).strip() or type(exc).__name__
    if isinstance(exc, sqlite3.OperationalError) and str(exc).lower() in _SQLITE_UNAVAILABLE:
        return str(exc)
    if isinstance(exc, OSError | TimeoutError) and _raised_by_database_code(exc):
        return _os_cause(exc)
    return None


def _os_cause(exc: OSError | TimeoutError) -> str | None:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, ConnectionError):  # aborted, broken pipe
        return "connection lost"
    if isinstance(exc, TimeoutError):
        return "timed out connecting"
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve"
    if exc.errno in _UNREACHABLE_ERRNOS:
        return "host unreachable"
    return None


def _raised_by_database_code(exc: BaseException) -> bool:
    """Network errors count only when the database driver or SQLAlchemy raised them."""
    tb = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in _DATABASE_MODULES:
            return True
        tb = tb.tb_next
    return False


@dataclass
class OutageLog:
    """One WARNING when an outage starts (with its cause), one INFO when it is over."""

    logger: logging.Logger
    what: str = "database"
    consequence: str = ""  # what happens meanwhile, e.g. "answering 503"
    counted: str = "failed attempts"  # what ``failures`` counts, for the recovery line
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    since: float | None = None
    failures: int = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, cause: str) -> bool:
        """Count a failure; True (and one log line) when it starts a new outage."""
        self.failures += 1
        if self.since is not None:
            return False
        self.since = self.clock()
        tail = f"; {self.consequence}" if self.consequence else ""
        self.logger.warning("%s unreachable: %s%s", self.what, cause, tail)
        return True

    def recovered(self) -> bool:
        """The resource answered; True (and one log line) when that ends an outage."""
        if self.since is None:
            return False
        self.logger.warning(
            "%s reachable again after %.1f s (%d %s)",
            self.what,
            self.clock() - self.since,
            self.failures,
            self.counted,
        )
        self.since = None
        self.failures = 0
        return True
