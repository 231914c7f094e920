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
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from admin_api.context import ApiContext, ReadinessCheck
from admin_api.errors import ApiError
from admin_api.routing import Operation as Op
from admin_api.routing import Response, context, render, render_json
from channels.metrics import CONTENT_TYPE
from channels.skebby_gateway import SkebbyException
from persistence.outbox import queue_depth

log = logging.getLogger(__name__)

OPENAPI_DOCUMENT = web.AppKey("openapi_document", dict[str, Any])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, bool]


async def healthz(_request: web.Request) -> web.Response:
    """The process is up and serving HTTP."""
    return render(Health(status="ok"))


def _database_check(ctx: ApiContext) -> ReadinessCheck:
    async def check() -> bool:
        async with ctx.sessions() as session:
            await session.execute(text("SELECT 1"))
        return True

    return check


async def _run_check(name: str, check: ReadinessCheck, limit: float) -> bool:
    try:
        async with asyncio.timeout(limit):
            return bool(await check())
    except TimeoutError:
        log.warning("readiness check %s timed out after %.1fs", name, limit)
    except (OSError, SQLAlchemyError, aiohttp.ClientError, SkebbyException, RuntimeError) as exc:
        log.warning("readiness check %s failed: %s", name, exc)
    return False


async def run_checks(ctx: ApiContext) -> dict[str, bool]:
    """Every readiness check (the database first), at once, each within the timeout."""
    checks = {"database": _database_check(ctx), **ctx.readiness_checks}
    names = list(checks)
    results = await asyncio.gather(
        *(_run_check(n, checks[n], ctx.readiness_timeout) for n in names)
    )
    return dict(zip(names, results, strict=True))


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and every configured component is up (else 503)."""
    outcome = await run_checks(context(request))
    ready = all(outcome.values())
    return render(
        Readiness(status="ready" if ready else "unready", checks=outcome), 200 if ready else 503
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format: deliveries, send latency, updates, HTTP requests, queue depth."""
    ctx = context(request)
    depth: dict[str, int] | None
    try:
        async with ctx.sessions() as session:
            depth = await queue_depth(session)
    except (OSError, SQLAlchemyError) as exc:
        log.warning("metrics: queue depth unavailable: %s", exc)
        depth = None
    return web.Response(
        body=ctx.metrics.render(depth).encode(),
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
        ),
    ]
