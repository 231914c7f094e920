"""Webhook mode: Telegram POSTs updates to a route on Herald's own aiohttp server.

Every request must carry ``X-Telegram-Bot-Api-Secret-Token`` equal to the configured secret
(compared in constant time); anything else gets 403 and is not processed. Malformed JSON gets
400. A good update is stored in the database's webhook inbox (``persistence/update_inbox.py``)
and Telegram gets its 200 only after the commit, so any process may receive webhooks and an
update is never lost with the process that received it; the Telegram leader handles stored
updates in order (``bot/update_consumer.py``). While the database is unreachable the answer is
503, so Telegram delivers the update again later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable

from aiohttp import web
from telegram import Bot, Update, WebhookInfo

from persistence import update_inbox
from persistence.availability import database_unavailable
from persistence.database import SessionFactory

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
MAX_UPDATE_BYTES = 1024 * 1024  # a Telegram update is a few kilobytes


def bot_key(token: str) -> str:
    """Which bot an update belongs to, without keeping the token in the database."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


class WebhookReceiver:
    """The aiohttp view that turns authenticated POSTs into stored updates."""

    def __init__(
        self,
        sessions: SessionFactory,
        bot: str,
        secret: str,
        consumer_here: Callable[[], bool] = lambda: False,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        if not secret:
            raise ValueError("the webhook needs a secret token")
        self._sessions = sessions
        self._bot = bot
        self._secret = secret.encode()
        self._consumer_here = consumer_here
        self._on_stored = on_stored

    async def handle(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            log.warning("webhook request without the right secret token refused")
            return web.Response(status=403, text="forbidden")
        if request.content_length is not None and request.content_length > MAX_UPDATE_BYTES:
            return web.Response(status=413, text="update too large")
        try:
            raw = await request.content.read(MAX_UPDATE_BYTES + 1)
            if len(raw) > MAX_UPDATE_BYTES:
                return web.Response(status=413, text="update too large")
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="malformed update")
        update_id = data.get("update_id") if isinstance(data, dict) else None
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            return web.Response(status=400, text="malformed update")
        try:
            # Another process's consumer is woken by a NOTIFY; this one's directly (if a
            # leadership moves meanwhile, the new consumer's periodic look finds the update).
            announce = not self._consumer_here()
            await update_inbox.store(self._sessions, self._bot, update_id, data, announce=announce)
        except Exception as exc:
            cause = database_unavailable(exc)
            if cause is None:
                raise
            return web.Response(status=503, text=f"database unreachable: {cause}")
        self._on_stored()
        return web.Response(status=200)


def add_webhook_route(app: web.Application, path: str, receiver: WebhookReceiver) -> None:
    """Route ``POST path`` to the inbox; call before the aiohttp runner is set up."""
    app.router.add_post(path, receiver.handle)


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
