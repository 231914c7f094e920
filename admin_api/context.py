"""What the admin API needs from the composition root, handed over through ``web.AppKey``."""

from __future__ import annotations

import secrets
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


@dataclass(frozen=True)
class ConsoleConfig:
    """The web console's settings (``admin_api/console``)."""

    # 32 bytes that encrypt the session cookies; a fresh key means every session ends.
    secret_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    session_idle_seconds: float = 30 * 60
    session_max_seconds: float = 12 * 3600
    default_timezone: str = "UTC"
    # Failed logins allowed per username, and ten times as many per address, in the window.
    login_attempts: int = 5
    login_window_seconds: float = 15 * 60
    # How often a watched broadcast's counters are read for its live progress (SSE).
    progress_interval: float = 0.5
    # Where "Check" keeps a composed message (and its files) until it is sent.
    draft_ttl_seconds: float = 2 * 3600
    max_drafts: int = 200


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
    console: ConsoleConfig = field(default_factory=ConsoleConfig)


API_CONTEXT = web.AppKey("api_context", ApiContext)
