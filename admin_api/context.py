"""What the admin API needs from the composition root, handed over through ``web.AppKey``."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from admin_api.key_cache import KeyCache
from admin_api.metrics import Metrics
from channels.clock import Clock, utc_now
from channels.composer import Composer
from channels.unsubscribe import UnsubscribeLinks
from channels.webhook_urls import Resolve, UrlPolicy, system_resolve
from persistence.audit import Actor
from persistence.database import SessionFactory
from persistence.recipient_kinds import RecipientKindRegistry

ReadinessCheck = Callable[[], Awaitable[bool]]


class NotReadyError(Exception):
    """A readiness check's answer with the reason, which /readyz shows (write no secrets)."""


SkebbyStatus = Callable[[], Awaitable[dict[str, Any]]]


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
    cancel: Callable[
        [int, Actor | None], Awaitable[int]
    ]  # the dispatcher's cancel(message_id, actor)
    max_request_bytes: int
    max_attachment_bytes: int
    metrics: Metrics = field(default_factory=Metrics)
    clock: Clock = utc_now
    # Named checks for /readyz ("bot", "telegram", "smtp", "skebby"...); "database" is built in.
    readiness_checks: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    readiness_timeout: float = 2.0
    skebby_status: SkebbyStatus | None = None
    # Each channel's circuit breaker state ("closed", "open", "half_open"), for /readyz.
    breaker_states: Callable[[], Mapping[str, str]] | None = None
    # This process's role and the leaderships it holds, for /readyz.
    process: Callable[[], Mapping[str, Any]] | None = None
    default_phone_region: str = "IT"
    # Verified API keys, remembered while revocations can be heard (none by default).
    key_cache: KeyCache = field(default_factory=KeyCache)
    # While the database is unreachable every route answers 503 with this Retry-After.
    database_retry_after_seconds: int = 5
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    # Reads the tokens of the unsubscribe links (the email channel signs them with the same).
    unsubscribe: UnsubscribeLinks | None = None
    # Which webhook URLs may be registered (loopback only in sandbox mode), how hosts resolve,
    # and how to tell this process's webhook sender that an event (a test ping) is due.
    webhook_policy: UrlPolicy = field(default_factory=UrlPolicy)
    webhook_resolve: Resolve = system_resolve
    wake_webhooks: Callable[[], None] = lambda: None


API_CONTEXT = web.AppKey("api_context", ApiContext)
