"""What the admin API needs from the composition root, handed over through ``web.AppKey``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from channels.composer import Composer
from channels.metrics import Metrics
from persistence.database import SessionFactory
from persistence.recipient_kinds import RecipientKindRegistry

ReadinessCheck = Callable[[], Awaitable[bool]]
SkebbyStatus = Callable[[], Awaitable[dict[str, Any]]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ApiContext:
    sessions: SessionFactory
    recipient_kinds: RecipientKindRegistry
    composer: Composer
    cancel: Callable[[int], Awaitable[int]]  # the dispatcher's cancel(message_id)
    max_request_bytes: int
    max_attachment_bytes: int
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], datetime] = _utc_now
    # Named checks for /readyz ("bot", "telegram", "smtp", "skebby"...); "database" is built in.
    readiness_checks: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    readiness_timeout: float = 2.0
    skebby_status: SkebbyStatus | None = None
    default_phone_region: str = "IT"
    # A verified API key is trusted for this long before it is checked again (revocation delay).
    auth_cache_seconds: float = 5.0
    # While the database is unreachable every route answers 503 with this Retry-After.
    database_retry_after_seconds: int = 5


API_CONTEXT = web.AppKey("api_context", ApiContext)
