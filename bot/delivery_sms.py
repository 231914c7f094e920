"""Composition of the SMS side: the Skebby gateway and channel from settings.

The runner builds one gateway (None without SKEBBY_USERNAME) and hands it to the SMS channel and
to the delivery-report job (bot/jobs.py), so both share one Skebby login. The dispatcher closes
the channel, which closes the gateway.
"""

from __future__ import annotations

from bot.settings import Settings
from channels.base import Channel
from channels.skebby_channel import SkebbyChannel
from channels.skebby_gateway import SkebbyGateway
from channels.storage_channel import SandboxChannel


def build_skebby_gateway(settings: Settings, *, timeout: float = 15.0) -> SkebbyGateway | None:
    """The Skebby client, or None when SKEBBY_USERNAME is not set (sandbox)."""
    if not settings.skebby_username or settings.skebby_password is None:
        return None
    return SkebbyGateway(
        settings.skebby_base_url,
        settings.skebby_username,
        settings.skebby_password,
        auth=settings.skebby_auth.value,
        timeout=timeout,
    )


def build_sms_channel(settings: Settings, gateway: SkebbyGateway | None) -> Channel:
    """The real Skebby channel, or the recording sandbox channel without credentials."""
    if gateway is None:
        return SandboxChannel("sms", "SKEBBY_USERNAME")
    return SkebbyChannel(
        gateway,
        message_type=settings.skebby_message_type,
        sender=settings.skebby_sender,
        max_fragments=settings.skebby_max_fragments,
        truncate=settings.skebby_truncate,
        batch_size=settings.skebby_batch_size,
    )
