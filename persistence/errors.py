"""Recognising "the database is not there" among the errors a statement can raise.

Everything that talks to the database (the API, the dispatcher, the jobs, the CLI) treats an
unreachable database as a passing condition — a 503, a back-off, one log line — and every other
error as a bug. This is the one place that tells the two apart.
"""

from __future__ import annotations

import asyncio
import socket

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# PostgreSQL SQLSTATE classes and codes that mean the server cannot serve us right now.
_UNAVAILABLE_SQLSTATES = frozenset(
    {
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down, recovering)
        "53300",  # too_many_connections
        "08000",  # connection_exception
        "08001",  # sqlclient_unable_to_establish_sqlconnection
        "08003",  # connection_does_not_exist
        "08004",  # sqlserver_rejected_establishment_of_sqlconnection
        "08006",  # connection_failure
    }
)


def database_unavailable(exc: BaseException) -> str | None:
    """A short cause ("connection refused", "the server is shutting down"...) when ``exc`` says
    the database cannot be reached or is not answering; None for any other error."""
    for error in _chain(exc):
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, ConnectionError):  # reset, aborted, broken pipe, lost mid-query
            return "connection lost"
        if isinstance(error, socket.gaierror):
            return "host name not found"
        if isinstance(error, TimeoutError | asyncio.TimeoutError | PoolTimeoutError):
            return "timed out"
        if isinstance(error, OSError) and error.errno is not None:
            return error.strerror or "network error"
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate in _UNAVAILABLE_SQLSTATES:
            return "the server is not accepting connections"
        name = type(error).__name__
        if name in {"ConnectionDoesNotExistError", "ConnectionFailureError"}:
            return "connection lost"
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return "connection lost"
        if isinstance(error, OperationalError | InterfaceError):
            text = str(error.orig if error.orig is not None else error).lower()
            if "unable to open database file" in text or "disk i/o error" in text:
                return "the database file cannot be opened"
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` with its causes and contexts and SQLAlchemy's wrapped driver error, each once."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or any(error is s for s in seen) or len(seen) > 16:
            continue
        seen.append(error)
        pending.extend([getattr(error, "orig", None), error.__cause__, error.__context__])
    return seen
