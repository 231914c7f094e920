"""What /readyz checks and what /api/v1/skebby/status reports, built from the running parts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import aiosmtplib

from admin_api.context import NotReadyError, ReadinessCheck, SkebbyStatus
from bot.polling import CONFLICT, PollingErrors
from bot.telegram_side import TelegramSide
from channels.skebby_gateway import SkebbyException, SkebbyGateway
from channels.smtp_channel import EmailChannel, SmtpConfig
from channels.telegram_client import BotApiClient, BotApiError, BotApiUnavailableError


def readiness_checks(
    telegram_side: Callable[[], TelegramSide | None],
    leads_telegram: Callable[[], bool],
    telegram: BotApiClient,
    email: EmailChannel,
    skebby: SkebbyGateway | None,
    polling: PollingErrors | None = None,
    *,
    delivers: bool = True,
) -> Mapping[str, ReadinessCheck]:
    """One check per part that can be down; sandboxed channels have nothing to check.

    Only the Telegram leader talks to Telegram: in any other process the bot and Bot API checks
    pass as "standing by". The leader's bot is not ready while another process polls with the
    same token (it gets no updates).
    """

    async def bot() -> bool:
        if not leads_telegram():
            return True
        if polling is not None and not polling.receiving:
            raise NotReadyError(CONFLICT)
        side = telegram_side()
        return side is not None and side.running

    async def telegram_api() -> bool:
        if not leads_telegram():
            return True
        try:
            await telegram.get_me()
        except (BotApiError, BotApiUnavailableError):
            return False
        return True

    checks: dict[str, ReadinessCheck] = {}
    if delivers:
        checks.update({"bot": bot, "telegram": telegram_api})
        if email.config is not None:
            checks["smtp"] = _smtp_check(email.config)
        if skebby is not None:
            checks["skebby"] = _skebby_check(skebby)
    return checks


def _smtp_check(config: SmtpConfig) -> ReadinessCheck:
    async def smtp() -> bool:
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.ssl,
            start_tls=config.starttls,
            timeout=config.timeout,
        )
        try:
            await client.connect()
            await client.noop()
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            return False
        return True

    return smtp


def _skebby_check(gateway: SkebbyGateway) -> ReadinessCheck:
    async def skebby() -> bool:
        try:
            await gateway.user_status(get_money=False)
        except SkebbyException:
            return False
        return True

    return skebby


def skebby_status(gateway: SkebbyGateway | None) -> SkebbyStatus | None:
    if gateway is None:
        return None

    async def status() -> dict[str, Any]:
        return dataclasses.asdict(await gateway.user_status())

    return status
