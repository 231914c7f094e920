"""Composition of the outbound side: channels from settings, the dispatcher and the composer."""

from __future__ import annotations

from bot.context import HeraldContext, TelegramEndpoint
from bot.delivery_sms import build_sms_channel
from bot.settings import Settings
from channels.base import Channel
from channels.composer import Composer
from channels.composition import ComposerConfig
from channels.dispatcher import Dispatcher, DispatcherConfig
from channels.skebby_gateway import SkebbyGateway
from channels.smtp_channel import EmailChannel, SmtpConfig
from channels.storage_channel import StorageChannel
from channels.telegram_channel import TelegramChannel
from channels.telegram_client import BotApiClient
from channels.telegram_rate_limit import TelegramRateLimiter


def telegram_client(endpoint: TelegramEndpoint, pool_size: int) -> BotApiClient:
    """The broadcast channel's own Bot API client: its own pool, apart from the handlers' Bot."""
    return BotApiClient(endpoint.token, endpoint.base_url, pool_size=pool_size)


def email_channel(settings: Settings) -> EmailChannel:
    """SMTP when SMTP_HOST is set; otherwise the channel records without sending (sandbox)."""
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
    return EmailChannel(config, attachments_root=settings.data_dir / "attachments")


async def build_channels(
    settings: Settings,
    endpoint: TelegramEndpoint,
    limiter: TelegramRateLimiter,
    skebby: SkebbyGateway | None = None,
) -> dict[str, Channel]:
    client = telegram_client(endpoint, settings.dispatch_concurrency)
    channels: dict[str, Channel] = {
        "telegram": TelegramChannel(
            client,
            limiter,
            parse_mode=settings.telegram_parse_mode,
            paid_broadcast=settings.telegram_paid_broadcast,
        ),
        "storage": StorageChannel(),
        "email": email_channel(settings),
        "sms": build_sms_channel(settings, skebby),
    }
    return channels


def dispatcher_config(settings: Settings) -> DispatcherConfig:
    return DispatcherConfig(
        batch_size=settings.dispatch_batch_size,
        max_attempts=settings.dispatch_max_attempts,
        lease_seconds=settings.dispatch_lease_seconds,
        backoff_base_seconds=settings.dispatch_backoff_base_seconds,
        backoff_max_seconds=settings.dispatch_backoff_max_seconds,
        concurrency=settings.dispatch_concurrency,
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
        attachments_root=settings.data_dir / "attachments",
        max_attachment_bytes=settings.max_attachment_bytes,
    )


def build_dispatcher(context: HeraldContext, channels: dict[str, Channel]) -> Dispatcher:
    return Dispatcher(
        context.sessions,
        channels,
        context.recipient_kinds,
        dispatcher_config(context.settings),
        context.clock,
        attachments_root=context.settings.data_dir / "attachments",
        metrics=context.metrics,
    )


def build_composer(context: HeraldContext, dispatcher: Dispatcher) -> Composer:
    return Composer(
        context.sessions,
        context.recipient_kinds,
        composer_config(context.settings),
        context.clock,
        on_enqueued=dispatcher.wake,
    )
