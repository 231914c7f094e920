"""Operations: liveness, readiness, Prometheus metrics, Skebby account status, the OpenAPI doc.

``/healthz``, ``/readyz``, ``/metrics`` and ``/api/v1/openapi.json`` are public, as probes and
scrapers expect; they reveal no message, recipient or account data.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from admin_api.context import API_CONTEXT, ApiContext, NotReadyError, ReadinessCheck
from admin_api.errors import ApiError
from admin_api.metrics import CONTENT_TYPE
from admin_api.outage import DATABASE_OUTAGE, database_failed
from admin_api.routing import Operation as Op
from admin_api.routing import Response, context, render, render_json
from channels.skebby_gateway import SkebbyException
from persistence.availability import OutageLog
from persistence.outbox import queue_depth

log = logging.getLogger(__name__)

OPENAPI_DOCUMENT = web.AppKey("openapi_document", dict[str, Any])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, bool]
    reasons: dict[str, str] = Field(
        default_factory=dict, description="Why a check is not ready, when Herald knows."
    )
    breakers: dict[str, str] = Field(
        default_factory=dict,
        description="Per channel: closed (sending), open (provider down, paused) or half_open "
        "(probing). An open breaker does not make the process unready: the API still works.",
    )
    role: str | None = Field(None, description="all, web or worker.")
    leads: list[str] = Field(
        default_factory=list, description="The leaderships this process holds now."
    )


async def healthz(_request: web.Request) -> web.Response:
    """The process is up and serving HTTP."""
    return render(Health(status="ok"))


def _database_check(app: web.Application) -> ReadinessCheck:
    async def check() -> bool:
        try:
            async with app[API_CONTEXT].sessions() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:
            if database_failed(app, exc):  # logged once per outage, not once per probe
                return False
            raise
        app[DATABASE_OUTAGE].recovered()
        return True

    return check


async def _run_check(
    name: str, check: ReadinessCheck, limit: float, outage: OutageLog | None = None
) -> tuple[bool, str | None]:
    try:
        async with asyncio.timeout(limit):
            return bool(await check()), None
    except NotReadyError as exc:
        return False, str(exc)
    except TimeoutError:
        if outage is not None:
            outage.failed(f"no answer within {limit:.1f} s")
        else:
            log.warning("readiness check %s timed out after %.1fs", name, limit)
        return False, f"no answer within {limit:g}s"
    except (OSError, SQLAlchemyError, aiohttp.ClientError, SkebbyException, RuntimeError) as exc:
        log.warning("readiness check %s failed: %s", name, exc)
    return False, None


async def run_checks(app: web.Application) -> tuple[dict[str, bool], dict[str, str]]:
    """Every readiness check (the database first), at once, each within the timeout: whether
    each passed, and why not when Herald knows."""
    ctx = app[API_CONTEXT]
    checks = {"database": _database_check(app), **ctx.readiness_checks}
    names = list(checks)
    outage = app[DATABASE_OUTAGE]
    results = await asyncio.gather(
        *(
            _run_check(n, checks[n], ctx.readiness_timeout, outage if n == "database" else None)
            for n in names
        )
    )
    outcome = {name: ok for name, (ok, _) in zip(names, results, strict=True)}
    reasons = {name: why for name, (_, why) in zip(names, results, strict=True) if why}
    return outcome, reasons


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and every configured component is up (else 503)."""
    ctx = context(request)
    outcome, reasons = await run_checks(request.app)
    ready = all(outcome.values())
    breakers = dict(ctx.breaker_states()) if ctx.breaker_states is not None else {}
    process = dict(ctx.process()) if ctx.process is not None else {}
    body = Readiness(
        status="ready" if ready else "unready",
        checks=outcome,
        reasons=reasons,
        breakers=breakers,
        role=process.get("role"),
        leads=list(process.get("leads", [])),
    )
    return render(body, 200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format: deliveries, send latency, updates, HTTP requests, queue depth."""
    ctx = context(request)
    depth: dict[str, int] | None
    try:
        async with ctx.sessions() as session:
            depth = await queue_depth(session)
    except (OSError, SQLAlchemyError) as exc:
        if not database_failed(request.app, exc):
            log.warning("metrics: queue depth unavailable: %s", exc)
        depth = None
    else:
        request.app[DATABASE_OUTAGE].recovered()
    return web.Response(
        body=ctx.metrics.render(depth),
        headers={"Content-Type": CONTENT_TYPE},
    )


async def read_skebby_status(ctx: ApiContext) -> dict[str, Any]:
    """Skebby's own account status; ApiError 503 when not configured, 502 when it fails."""
    if ctx.skebby_status is None:
        raise ApiError(503, "not_configured", "Skebby is not configured (SKEBBY_USERNAME)")
    try:
        return await ctx.skebby_status()
    except (SkebbyException, aiohttp.ClientError, TimeoutError) as exc:
        raise ApiError(502, "upstream_error", f"Skebby did not answer: {exc}") from None


async def skebby_status(request: web.Request) -> web.Response:
    """Skebby credits and account status (superusers)."""
    return render_json(await read_skebby_status(context(request)))


async def openapi_document(request: web.Request) -> web.Response:
    """This document."""
    return render_json(request.app[OPENAPI_DOCUMENT])


def operations() -> list[Op]:
    return [
        Op(
            "GET",
            "/healthz",
            healthz,
            "Liveness",
            "operations",
            {200: Response("Up.", Health)},
            public=True,
            database=False,
        ),
        Op(
            "GET",
            "/readyz",
            readyz,
            "Readiness",
            "operations",
            {
                200: Response("Ready.", Readiness),
                503: Response("Not ready: the failing checks are false.", Readiness),
            },
            public=True,
            database=False,  # the database is one of its checks
        ),
        Op(
            "GET",
            "/metrics",
            metrics,
            "Prometheus metrics",
            "operations",
            {
                200: Response(
                    "Text exposition format 0.0.4.",
                    content_type="text/plain",
                    schema={"type": "string"},
                )
            },
            public=True,
            database=False,  # without the database only the queue depth is missing
        ),
        Op(
            "GET",
            "/api/v1/skebby/status",
            skebby_status,
            "Skebby credits and account status",
            "operations",
            {200: Response("As Skebby reports it.", schema={"type": "object"})},
            superuser=True,
            errors=(502, 503),
        ),
        Op(
            "GET",
            "/api/v1/openapi.json",
            openapi_document,
            "This OpenAPI document",
            "operations",
            {200: Response("OpenAPI 3.1.", schema={"type": "object"})},
            public=True,
            database=False,
        ),
    ]
