"""Webhook mode: Telegram POSTs updates to a route on Herald's own aiohttp server.

Every request must carry ``X-Telegram-Bot-Api-Secret-Token`` equal to the configured secret
(compared in constant time); anything else gets 403 and is not processed. Malformed JSON gets
400; while the bot is not running the answer is 503 so that Telegram retries later.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from aiohttp import web
from telegram import Bot, Update, WebhookInfo
from telegram.ext import Application

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
MAX_UPDATE_BYTES = 1024 * 1024  # a Telegram update is a few kilobytes


class WebhookReceiver:
    """The aiohttp view that turns authenticated POSTs into updates on PTB's queue."""

    def __init__(self, application: Application[Any, Any, Any, Any, Any, Any], secret: str):
        if not secret:
            raise ValueError("the webhook needs a secret token")
        self._application = application
        self._secret = secret.encode()

    async def handle(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            log.warning("webhook request without the right secret token refused")
            return web.Response(status=403, text="forbidden")
        if not self._application.running:
            return web.Response(status=503, text="not running yet")
        if request.content_length is not None and request.content_length > MAX_UPDATE_BYTES:
            return web.Response(status=413, text="update too large")
        try:
            data = json.loads(await request.read())
            if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
                raise ValueError("an update is a JSON object with an integer update_id")
            update = Update.de_json(data, self._application.bot)
        except (ValueError, TypeError, KeyError, AttributeError):  # what de_json raises
            return web.Response(status=400, text="malformed update")
        await self._application.update_queue.put(update)
        return web.Response(status=200)


def add_webhook_route(
    app: web.Application,
    path: str,
    application: Application[Any, Any, Any, Any, Any, Any],
    secret: str,
) -> None:
    """Route ``POST path`` to the bot; call before the aiohttp runner is set up."""
    app.router.add_post(path, WebhookReceiver(application, secret).handle)


async def register_webhook(
    bot: Bot,
    url: str,
    secret: str,
    *,
    allowed_updates: list[str] | None,
    drop_pending_updates: bool,
) -> None:
    """Tell the Bot API where to POST updates, with the secret it must send back."""
    await bot.set_webhook(
        url,
        secret_token=secret,
        allowed_updates=allowed_updates if allowed_updates is not None else Update.ALL_TYPES,
        drop_pending_updates=drop_pending_updates,
    )
    log.info("webhook set to %s", url)


def describe_webhook(info: WebhookInfo) -> str:
    """A few human lines for ``herald webhook info``."""
    lines = [
        f"url: {info.url or '(none: polling)'}",
        f"pending updates: {info.pending_update_count}",
    ]
    if info.allowed_updates:
        lines.append(f"allowed updates: {', '.join(info.allowed_updates)}")
    if info.max_connections:
        lines.append(f"max connections: {info.max_connections}")
    if info.last_error_message:
        lines.append(f"last error: {info.last_error_message} at {info.last_error_date}")
    return "\n".join(lines)
