"""The Telegram channel: texts (split, never truncated), photos and documents, to linked chats.

It has its own Bot API client (its own connection pool) and draws on the per-token budget shared
with the conversation handlers, whose replies go first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from channels import rich_text
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
from channels.composition import BUTTONS_EXTRA_KEY, FORMAT_EXTRA_KEY, REPLY_EXTRA_KEY
from channels.personalise import MissingDataError, Renderer, TemplateError
from channels.telegram_client import BotApiClient, BotApiError, BotApiUnavailableError
from channels.telegram_rate_limit import TelegramRateLimiter
from channels.telegram_text import render_messages
from persistence.recall import RECALL_EXTRA_KEY, parse_recall_address

PHOTO_LIMIT = 10 * 1024 * 1024  # Telegram's limit for sendPhoto; larger images go as documents


@dataclass(frozen=True)
class TelegramContent:
    """A message as Telegram gets it: the texts (split), their parse mode and the URL buttons,
    which go on the last message sent (the last text, or the last attachment)."""

    texts: list[str]
    parse_mode: str | None
    reply_markup: dict[str, Any] | None


def telegram_content(message: OutgoingMessage, parse_mode: str | None) -> TelegramContent:
    """Plain text is rendered in the configured ``parse_mode`` as always; a Markdown or HTML
    body becomes Telegram HTML (:mod:`channels.rich_text`). Raises ``MarkupError`` for a body
    that is not valid in its format."""
    fmt = rich_text.format_from(message.extra.get(FORMAT_EXTRA_KEY))
    markup = rich_text.inline_keyboard(
        rich_text.buttons_from_json(message.extra.get(BUTTONS_EXTRA_KEY))
    )
    if not (message.body.strip() or message.subject.strip()):
        return TelegramContent([], parse_mode, markup)
    if fmt is rich_text.Format.TEXT:
        return TelegramContent(
            render_messages(message.subject, message.body, parse_mode), parse_mode, markup
        )
    return TelegramContent(
        rich_text.telegram_messages(message.subject, message.body, fmt), "HTML", markup
    )


class TelegramChannel:
    name = "telegram"
    max_batch = 1
    sandboxed = False

    def __init__(
        self,
        client: BotApiClient,
        limiter: TelegramRateLimiter,
        *,
        parse_mode: str | None = "HTML",
        paid_broadcast: bool = False,
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._parse_mode = parse_mode
        self._paid = paid_broadcast
        self._rendered: tuple[int, TelegramContent] | None = None
        self._renderer = Renderer()

    async def send(
        self, message: OutgoingMessage, deliveries: Sequence[Delivery]
    ) -> list[DeliveryResult]:
        return [await self._deliver(message, delivery) for delivery in deliveries]

    async def probe(
        self, message: OutgoingMessage, deliveries: Sequence[Delivery]
    ) -> list[DeliveryResult] | None:
        return None  # Telegram cannot tell whether a message was delivered before a crash

    @property
    def client(self) -> BotApiClient:
        return self._client

    async def close(self) -> None:
        await self._client.close()

    def _refused(self, delivery: Delivery, exc: BotApiError) -> DeliveryResult:
        if exc.code == 429:
            seconds = exc.retry_after or 1.0
            self._limiter.pause(seconds)
            return DeliveryResult(
                delivery.id,
                Outcome.RETRY,
                f"Telegram asked to wait {seconds:g}s",
                retry_after=seconds,
                counts_as_attempt=False,
            )
        error = classify_api_error(exc)
        return DeliveryResult(
            delivery.id,
            error.outcome,
            error.detail,
            provider_failed=isinstance(error, TransientDeliveryError) and error.provider_failed,
        )

    async def _recall(self, delivery: Delivery) -> DeliveryResult:
        """Delete the Telegram messages of a delivered row (a recall); not billed."""
        try:
            chat_id, message_ids = parse_recall_address(delivery.address)
        except ValueError:
            return DeliveryResult(delivery.id, Outcome.INVALID, "no Telegram message to delete")
        already_gone = 0
        try:
            for message_id in message_ids:
                async with self._limiter.sending(chat_id):
                    try:
                        await self._client.delete_message(chat_id, message_id)
                    except BotApiError as exc:
                        # Deleted by the person already: the recall's aim is met for this one.
                        if exc.code != 400 or "not found" not in exc.description.lower():
                            raise
                        already_gone += 1
        except BotApiError as exc:
            return self._refused(delivery, exc)
        except BotApiUnavailableError as exc:
            return DeliveryResult(delivery.id, Outcome.RETRY, str(exc), provider_failed=True)
        if not already_gone:
            detail = "deleted from the chat"
        elif already_gone == len(message_ids):
            detail = "already deleted from the chat"
        else:
            detail = f"deleted from the chat ({already_gone} of {len(message_ids)} already gone)"
        return DeliveryResult(delivery.id, Outcome.SUCCESS, detail)

    async def _deliver(self, message: OutgoingMessage, delivery: Delivery) -> DeliveryResult:
        if message.extra.get(RECALL_EXTRA_KEY):
            return await self._recall(delivery)
        try:
            chat_id = int(delivery.address)
        except ValueError:
            return DeliveryResult(
                delivery.id, Outcome.INVALID, f"not a chat id: {delivery.address}"
            )
        moved_to: int | None = None
        try:
            content = (
                self._content(message)
                if delivery.params is None
                else self._personal_content(message, delivery.params)
            )
        except rich_text.MarkupError as exc:
            return DeliveryResult(delivery.id, Outcome.FAILED, f"invalid markup: {exc}")
        except (MissingDataError, TemplateError) as exc:
            return DeliveryResult(delivery.id, Outcome.FAILED, f"not personalised: {exc}")
        try:
            try:
                ids = await self._send_all(chat_id, message, content)
            except BotApiError as exc:
                if exc.migrate_to_chat_id is None:
                    raise
                moved_to = exc.migrate_to_chat_id  # the group became a supergroup: follow once
                ids = await self._send_all(moved_to, message, content)
        except BotApiError as exc:
            return self._refused(delivery, exc)
        except BotApiUnavailableError as exc:
            return DeliveryResult(delivery.id, Outcome.RETRY, str(exc), provider_failed=True)
        detail = f"delivered in {len(ids)} message(s)"
        if moved_to is not None:
            detail += f" to migrated chat {moved_to}"
        return DeliveryResult(
            delivery.id,
            Outcome.SUCCESS,
            detail,
            provider_id=",".join(str(i) for i in ids)[:64],
            sent_number=len(ids),
            new_address=str(moved_to) if moved_to is not None else None,
        )

    async def _send_all(
        self, chat_id: int, message: OutgoingMessage, content: TelegramContent
    ) -> list[int]:
        # An answer to one person (the console's answer box) goes ahead of broadcasts, as the
        # bot's own replies do.
        priority = bool(message.extra.get(REPLY_EXTRA_KEY))
        ids: list[int] = []
        last = len(content.texts) + len(message.attachments) - 1
        for index, part in enumerate(content.texts):
            async with self._limiter.sending(chat_id, priority=priority):
                ids.append(
                    await self._client.send_message(
                        chat_id,
                        part,
                        parse_mode=content.parse_mode,
                        paid=self._paid,
                        reply_markup=content.reply_markup if index == last else None,
                    )
                )
        for index, attachment in enumerate(message.attachments, start=len(content.texts)):
            markup = content.reply_markup if index == last else None
            async with self._limiter.sending(chat_id, priority=priority):
                ids.append(await self._send_file(chat_id, attachment, markup))
        return ids

    def _content(self, message: OutgoingMessage) -> TelegramContent:
        """The message rendered and split once, then reused for every recipient."""
        cached = self._rendered
        if cached is None or cached[0] != message.id:
            cached = self._rendered = (message.id, telegram_content(message, self._parse_mode))
        return cached[1]

    def _personal_content(
        self, message: OutgoingMessage, params: dict[str, Any]
    ) -> TelegramContent:
        """The message rendered for one recipient of a personalised broadcast."""
        fmt = rich_text.format_from(message.extra.get(FORMAT_EXTRA_KEY))
        markup = rich_text.inline_keyboard(
            rich_text.buttons_from_json(message.extra.get(BUTTONS_EXTRA_KEY))
        )
        if not (message.body.strip() or message.subject.strip()):
            return TelegramContent([], self._parse_mode, markup)
        texts, mode = self._renderer.telegram(
            message.subject, message.body, fmt, params, self._parse_mode
        )
        return TelegramContent(texts, mode, markup)

    async def _send_file(
        self, chat_id: int, attachment: StoredAttachment, reply_markup: dict[str, Any] | None
    ) -> int:
        return await self._client.send_file(
            chat_id,
            attachment.path,
            as_photo=attachment.is_image and attachment.size <= PHOTO_LIMIT,
            file_name=attachment.file_name,
            content_type=attachment.content_type,
            paid=self._paid,
            reply_markup=reply_markup,
        )


def classify_api_error(exc: BotApiError) -> TransientDeliveryError | PermanentDeliveryError:
    """What the dispatcher should do about a Bot API error (429 is handled by the caller)."""
    text = exc.description
    lowered = text.lower()
    if exc.code == 403:
        if "blocked" in lowered or "deactivated" in lowered:
            return RecipientBlockedError(text)
        return PermanentDeliveryError(text)
    if exc.code == 400:
        if "chat not found" in lowered or "user not found" in lowered:
            return InvalidAddressError(text)
        return PermanentDeliveryError(text)
    if exc.code in (401, 404):
        # Our configuration, not the recipient: keep the delivery until the token is fixed.
        return TransientDeliveryError(
            f"the bot token was refused by Telegram ({exc.code})", provider_failed=True
        )
    return TransientDeliveryError(
        f"Telegram error {exc.code}: {text}", provider_failed=exc.code >= 500
    )
