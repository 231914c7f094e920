"""The Telegram channel: texts (split, never truncated), photos and documents, to linked chats.

It has its own ``telegram.Bot`` (its own HTTP pool) and draws on the per-token budget shared with
the conversation handlers, with the handlers' replies first.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from datetime import timedelta

from telegram import Bot
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.warnings import PTBDeprecationWarning

from channels.base import (
    Delivery,
    DeliveryResult,
    InvalidAddressError,
    Outcome,
    OutgoingMessage,
    PermanentDeliveryError,
    RecipientBlockedError,
    StoredAttachment,
    TransientDeliveryError,
)
from channels.rate_limit import TelegramRateLimiter
from channels.telegram_text import render_text, split_text

log = logging.getLogger(__name__)

CAPTION_LIMIT = 1024


class TelegramChannel:
    name = "telegram"
    max_batch = 1
    sandboxed = False

    def __init__(
        self,
        bot: Bot,
        limiter: TelegramRateLimiter,
        *,
        parse_mode: str | None = "HTML",
        paid_broadcast: bool = False,
    ) -> None:
        self._bot = bot
        self._limiter = limiter
        self._parse_mode = parse_mode
        self._paid = paid_broadcast

    async def send(
        self, message: OutgoingMessage, deliveries: Sequence[Delivery]
    ) -> list[DeliveryResult]:
        return [await self._deliver(message, delivery) for delivery in deliveries]

    async def probe(
        self, message: OutgoingMessage, deliveries: Sequence[Delivery]
    ) -> list[DeliveryResult] | None:
        return None  # Telegram cannot tell whether a message was delivered before a crash

    async def close(self) -> None:
        await self._bot.shutdown()

    async def _deliver(self, message: OutgoingMessage, delivery: Delivery) -> DeliveryResult:
        try:
            chat_id = int(delivery.address)
        except ValueError:
            return DeliveryResult(
                delivery.id, Outcome.INVALID, f"not a chat id: {delivery.address}"
            )
        try:
            try:
                ids = await self._send_all(chat_id, message)
                moved_to = None
            except ChatMigrated as migrated:  # follow the group's new id, once
                moved_to = int(migrated.new_chat_id)
                ids = await self._send_all(moved_to, message)
        except RetryAfter as exc:
            seconds = _retry_after_seconds(exc)
            self._limiter.pause(seconds)
            return DeliveryResult(
                delivery.id,
                Outcome.RETRY,
                f"Telegram asked to wait {seconds:g}s",
                retry_after=seconds,
                counts_as_attempt=False,
            )
        except (TelegramError, OSError) as exc:
            error = _classify(exc)
            return DeliveryResult(
                delivery.id,
                error.outcome,
                error.detail,
                retry_after=getattr(error, "retry_after", None),
            )
        return DeliveryResult(
            delivery.id,
            Outcome.SUCCESS,
            f"delivered in {len(ids)} message(s)"
            + (f" to migrated chat {moved_to}" if moved_to else ""),
            provider_id=",".join(str(i) for i in ids)[:64],
            sent_number=len(ids),
            new_address=str(moved_to) if moved_to is not None else None,
        )

    async def _send_all(self, chat_id: int, message: OutgoingMessage) -> list[int]:
        text = render_text(message.subject, message.body, self._parse_mode)
        ids: list[int] = []
        for part in split_text(text):
            await self._limiter.acquire(chat_id)
            sent = await self._bot.send_message(
                chat_id, part, parse_mode=self._parse_mode, allow_paid_broadcast=self._paid or None
            )
            ids.append(sent.message_id)
        for attachment in message.attachments:
            await self._limiter.acquire(chat_id)
            ids.append(await self._send_file(chat_id, attachment))
        return ids

    async def _send_file(self, chat_id: int, attachment: StoredAttachment) -> int:
        with attachment.path.open("rb") as handle:
            if attachment.is_image and attachment.size <= 10 * 1024 * 1024:
                sent = await self._bot.send_photo(
                    chat_id,
                    handle,
                    filename=attachment.file_name,
                    allow_paid_broadcast=self._paid or None,
                )
            else:
                sent = await self._bot.send_document(
                    chat_id,
                    handle,
                    filename=attachment.file_name,
                    allow_paid_broadcast=self._paid or None,
                )
        return sent.message_id


def _retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that the attribute becomes a timedelta
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: object = exc.retry_after
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)  # type: ignore[arg-type]


def _classify(exc: Exception) -> TransientDeliveryError | PermanentDeliveryError:
    """Map python-telegram-bot's errors to what the dispatcher should do about them."""
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, Forbidden):
        if "blocked" in lowered or "deactivated" in lowered:
            return RecipientBlockedError(text)
        return PermanentDeliveryError(text)
    if isinstance(exc, BadRequest):
        if "chat not found" in lowered or "user not found" in lowered:
            return InvalidAddressError(text)
        return PermanentDeliveryError(text)
    if isinstance(exc, InvalidToken):
        # Our configuration, not the recipient: keep the delivery until the token is fixed.
        return TransientDeliveryError("the bot token was refused by Telegram")
    if isinstance(exc, TimedOut | NetworkError | OSError):
        return TransientDeliveryError(text or type(exc).__name__)
    return TransientDeliveryError(f"{type(exc).__name__}: {text}")
