"""Composition of the outbound side: channels from settings, the dispatcher and the composer."""

from __future__ import annotations

from bot.context import HeraldContext, TelegramEndpoint
from bot.settings import Settings
from channels.base import Channel
from channels.composer import Composer, ComposerConfig
from channels.dispatcher import Dispatcher, DispatcherConfig
from channels.rate_limit import TelegramRateLimiter
from channels.storage_channel import SandboxChannel, StorageChannel
from channels.telegram_api import BotApiClient
from channels.telegram_channel import TelegramChannel


def telegram_client(endpoint: TelegramEndpoint, pool_size: int) -> BotApiClient:
    """The broadcast channel's own Bot API client: its own pool, apart from the handlers' Bot."""
    return BotApiClient(endpoint.token, endpoint.base_url, pool_size=pool_size)


async def build_channels(
    settings: Settings, endpoint: TelegramEndpoint, limiter: TelegramRateLimiter
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
        "email": SandboxChannel("email", "SMTP_HOST"),
        "sms": SandboxChannel("sms", "SKEBBY_USERNAME"),
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
    )


def build_composer(context: HeraldContext, dispatcher: Dispatcher) -> Composer:
    return Composer(
        context.sessions,
        context.recipient_kinds,
        composer_config(context.settings),
        context.clock,
        on_enqueued=dispatcher.wake,
    )
