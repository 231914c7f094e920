"""Composition of the outbound side: channels from settings, the dispatcher and the composer."""

from __future__ import annotations

from telegram import Bot
from telegram.request import HTTPXRequest

from bot.context import HeraldContext, TelegramEndpoint
from bot.settings import Settings
from channels.base import Channel
from channels.composer import Composer, ComposerConfig
from channels.dispatcher import Dispatcher, DispatcherConfig
from channels.rate_limit import TelegramRateLimiter
from channels.storage_channel import SandboxChannel, StorageChannel
from channels.telegram_channel import TelegramChannel


def build_limiter(settings: Settings) -> TelegramRateLimiter:
    rate = (
        settings.telegram_paid_rate_per_second
        if settings.telegram_paid_broadcast
        else settings.telegram_rate_per_second
    )
    return TelegramRateLimiter(rate)


def telegram_bot(endpoint: TelegramEndpoint, pool_size: int) -> Bot:
    """The broadcast channel's own Bot: its own HTTP pool, apart from the handlers' one."""
    request = HTTPXRequest(
        connection_pool_size=pool_size, read_timeout=15.0, write_timeout=15.0, pool_timeout=30.0
    )
    return Bot(
        endpoint.token,
        base_url=endpoint.base_url,
        base_file_url=endpoint.base_file_url,
        request=request,
    )


async def build_channels(
    settings: Settings, endpoint: TelegramEndpoint, limiter: TelegramRateLimiter
) -> dict[str, Channel]:
    bot = telegram_bot(endpoint, settings.dispatch_concurrency)
    await bot.initialize()
    channels: dict[str, Channel] = {
        "telegram": TelegramChannel(
            bot,
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
