"""Composition of the outbound side: channels from settings, the dispatcher and the composer.

The one way to build them: the runner, the CLI, the tests' harnesses and the benchmarks call
these builders with what each needs (settings, a session factory, a clock and, for Telegram, the
endpoint and the shared budget), so a setting means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from bot.console_setup import unsubscribe_secret
from bot.context import TelegramEndpoint, telegram_limiter
from bot.delivery_sms import build_sms_channel
from bot.settings import Settings
from channels.base import Channel
from channels.breaker import BreakerConfig
from channels.clock import Clock
from channels.composer import Composer
from channels.composition import ComposerConfig
from channels.dispatcher import Dispatcher, DispatcherConfig, DispatchObserver
from channels.skebby_gateway import SkebbyGateway
from channels.smtp_channel import EmailChannel, SmtpConfig
from channels.storage_channel import StorageChannel
from channels.telegram_channel import TelegramChannel
from channels.telegram_client import BotApiClient
from channels.telegram_rate_limit import TelegramRateLimiter
from channels.unsubscribe import UnsubscribeLinks
from channels.webhook_channel import WebhookConfig, WebhookSender
from channels.webhook_urls import UrlPolicy
from persistence.database import SessionFactory
from persistence.recipient_kinds import RecipientKindRegistry, default_registry

CHANNEL_NAMES = ("telegram", "email", "sms", "storage")


def telegram_client(endpoint: TelegramEndpoint, pool_size: int) -> BotApiClient:
    """The broadcast channel's own Bot API client: its own pool, apart from the handlers' Bot."""
    return BotApiClient(endpoint.token, endpoint.base_url, pool_size=pool_size)


def public_base_url(settings: Settings, port: int | None = None) -> str:
    """PUBLIC_BASE_URL, or this process's own address (``port``: the one it really listens on)."""
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    host = settings.http_host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a comparison, not a bind
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port if port is not None else settings.port}"


def unsubscribe_links(settings: Settings, port: int | None = None) -> UnsubscribeLinks:
    """The signer of the unsubscribe links in emails, under UNSUBSCRIBE_SECRET."""
    return UnsubscribeLinks(
        unsubscribe_secret(settings),
        public_base_url(settings, port),
        language=settings.default_language,
    )


def email_channel(settings: Settings, unsubscribe: UnsubscribeLinks | None = None) -> EmailChannel:
    """SMTP when SMTP_HOST is set; otherwise the channel records without sending (sandbox).
    Every email carries an unsubscribe link (``unsubscribe``, by default from the settings)."""
    if not settings.smtp_host:
        return EmailChannel(None)
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    config = SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=password,
        starttls=settings.smtp_starttls,
        ssl=settings.smtp_ssl,
        timeout=settings.smtp_timeout,
        sender=settings.email_from,
    )
    return EmailChannel(
        config,
        attachments_root=settings.attachments_dir,
        unsubscribe=unsubscribe or unsubscribe_links(settings),
    )


def build_channels(
    settings: Settings,
    *,
    telegram: TelegramEndpoint | None,
    limiter: TelegramRateLimiter | None = None,
    skebby: SkebbyGateway | None = None,
    only: Collection[str] = CHANNEL_NAMES,
    unsubscribe: UnsubscribeLinks | None = None,
) -> dict[str, Channel]:
    """The channels named in ``only``; Telegram needs its endpoint (and the shared budget)."""
    channels: dict[str, Channel] = {}
    if "telegram" in only:
        if telegram is None:
            raise ValueError("the telegram channel needs the Bot API endpoint")
        channels["telegram"] = TelegramChannel(
            telegram_client(telegram, settings.dispatch_concurrency),
            limiter or telegram_limiter(settings),
            parse_mode=settings.telegram_parse_mode,
            paid_broadcast=settings.telegram_paid_broadcast,
        )
    if "storage" in only:
        channels["storage"] = StorageChannel()
    if "email" in only:
        channels["email"] = email_channel(settings, unsubscribe)
    if "sms" in only:
        channels["sms"] = build_sms_channel(settings, skebby)
    return channels


def dispatcher_config(settings: Settings) -> DispatcherConfig:
    return DispatcherConfig(
        batch_size=settings.dispatch_batch_size,
        max_attempts=settings.dispatch_max_attempts,
        lease_seconds=settings.dispatch_lease_seconds,
        backoff_base_seconds=settings.dispatch_backoff_base_seconds,
        backoff_max_seconds=settings.dispatch_backoff_max_seconds,
        concurrency=settings.dispatch_concurrency,
        deadlines={name: settings.delivery_deadline(name) for name in CHANNEL_NAMES},
        breaker=BreakerConfig(
            window_seconds=settings.breaker_window_seconds,
            min_failures=settings.breaker_min_failures,
            open_seconds=settings.breaker_open_seconds,
            max_open_seconds=max(settings.breaker_max_open_seconds, settings.breaker_open_seconds),
        ),
    )


def composer_config(settings: Settings) -> ComposerConfig:
    return ComposerConfig(
        default_region=settings.default_phone_region,
        costs={
            "telegram": settings.cost_telegram,
            "email": settings.cost_email,
            "sms": settings.cost_sms,
            "storage": settings.cost_storage,
        },
        sms_max_fragments=settings.skebby_max_fragments,
        telegram_parse_mode=settings.telegram_parse_mode,
        typology_required=settings.message_typology_required,
        attachments_root=settings.attachments_dir,
        max_attachment_bytes=settings.max_attachment_bytes,
    )


def build_dispatcher(
    settings: Settings,
    sessions: SessionFactory,
    channels: Mapping[str, Channel],
    clock: Clock,
    *,
    recipient_kinds: RecipientKindRegistry | None = None,
    observer: DispatchObserver | None = None,
) -> Dispatcher:
    return Dispatcher(
        sessions,
        channels,
        recipient_kinds or default_registry(),
        dispatcher_config(settings),
        clock,
        attachments_root=settings.attachments_dir,
        observer=observer,
    )


def build_composer(
    settings: Settings,
    sessions: SessionFactory,
    clock: Clock,
    *,
    recipient_kinds: RecipientKindRegistry | None = None,
    on_enqueued: Callable[[], None] = lambda: None,
) -> Composer:
    return Composer(
        sessions,
        recipient_kinds or default_registry(),
        composer_config(settings),
        clock,
        on_enqueued=on_enqueued,
    )


def webhook_policy(settings: Settings) -> UrlPolicy:
    """Which webhook URLs may be called: loopback (and plain http to it) only in sandbox mode."""
    return UrlPolicy(allow_loopback=settings.sandbox)


def webhook_config(settings: Settings) -> WebhookConfig:
    return WebhookConfig(
        timeout_seconds=settings.webhook_timeout_seconds,
        max_attempts=settings.webhook_max_attempts,
        backoff_base_seconds=settings.webhook_backoff_base_seconds,
        backoff_max_seconds=max(
            settings.webhook_backoff_max_seconds, settings.webhook_backoff_base_seconds
        ),
        per_endpoint_concurrency=settings.webhook_concurrency_per_endpoint,
        concurrency=max(settings.webhook_concurrency, settings.webhook_concurrency_per_endpoint),
        max_response_bytes=settings.webhook_max_response_bytes,
        policy=webhook_policy(settings),
    )


def build_webhook_sender(
    settings: Settings, sessions: SessionFactory, clock: Clock
) -> WebhookSender:
    """The sender of delivery-status webhooks (a loop of its own beside the dispatcher)."""
    return WebhookSender(sessions, webhook_config(settings), clock)
