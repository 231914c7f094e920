"""The database outage as the API sees it: one log line when it starts, one when it is over.

While the database is unreachable every route that needs it answers 503 (the error map in
``admin_api.errors`` writes the answer); this middleware counts those answers for /metrics and
keeps the log to one WARNING per outage instead of a traceback per request. The first successful
answer of a route that reads the database ends the outage.
"""

from __future__ import annotations

import logging

from aiohttp import web

from admin_api.context import API_CONTEXT
from admin_api.errors import Handler
from admin_api.routing import operation_of
from persistence.availability import OutageLog, database_unavailable

log = logging.getLogger(__name__)

DATABASE_OUTAGE = web.AppKey("database_outage", OutageLog)


def outage_log(retry_after: int) -> OutageLog:
    return OutageLog(
        log,
        "database",
        consequence=f"the API answers 503 (Retry-After: {retry_after} s) until it is back",
        counted="requests answered 503",
    )


def database_failed(app: web.Application, exc: BaseException) -> bool:
    """Record ``exc`` when it means the database is unreachable; True if it does."""
    cause = database_unavailable(exc)
    if cause is None:
        return False
    app[API_CONTEXT].metrics.database_unavailable("api")
    app[DATABASE_OUTAGE].failed(cause)
    return True


@web.middleware
async def outage_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except Exception as exc:
        database_failed(request.app, exc)
        raise  # the error middleware answers
    outage = request.app[DATABASE_OUTAGE]
    if outage.down and 200 <= response.status < 300:
        operation = operation_of(request)
        if operation is not None and operation.database:
            outage.recovered()
    return response
