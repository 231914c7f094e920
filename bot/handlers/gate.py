"""The access gate (the seed's ``check_user``), in handler group -1.

People who are not linked may use /start, /help, /cancel and whatever the registration
conversation handles; anything else gets one explanation ("not registered", or "you opted out,
send /start" after a /stop) and goes no further, even when that explanation cannot be sent.
Updates without a message (membership changes, callback queries, edits) never crash it.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, ConversationHandler

from bot.handlers.context import HeraldCallbackContext
from persistence.registration import has_opted_out

log = logging.getLogger(__name__)

# /link is for Herald's own users (their test sends), who are not recipients.
OPEN_COMMANDS = frozenset({"start", "help", "cancel", "link"})
MAX_CALLBACK_ANSWER = 200


def command_of(update: Update) -> str | None:
    """``/start@herald_bot args`` → ``start``; None when the update is not a command."""
    message = update.message
    text = message.text if message is not None else None
    if not text or not text.startswith("/"):
        return None
    return text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if len(text) > 1 else None


class AccessGate:
    def __init__(self, registration: ConversationHandler[HeraldCallbackContext]) -> None:
        self._registration = registration

    async def __call__(self, update: Update, context: HeraldCallbackContext) -> None:
        if update.my_chat_member is not None:
            return  # blocked/unblocked: always recorded
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None or chat.type != ChatType.PRIVATE:
            raise ApplicationHandlerStop  # groups, channels, inline queries: not for this bot
        context.linked = None  # always look it up afresh for a new update
        if await context.linked_for(chat.id) or self._allowed(update):
            return
        try:
            await self._explain(update, context, chat.id)
        except TelegramError as exc:  # the update stops here all the same
            log.warning("could not tell chat %s why it was turned away: %s", chat.id, exc)
        raise ApplicationHandlerStop

    def _allowed(self, update: Update) -> bool:
        if command_of(update) in OPEN_COMMANDS:
            return True
        return self._registration.check_update(update) is not None

    @staticmethod
    async def _explain(update: Update, context: HeraldCallbackContext, chat_id: int) -> None:
        herald = context.herald
        stopped = await has_opted_out(herald.sessions, herald.recipient_kinds, chat_id)
        text = context.texts(update)("opted_out" if stopped else "not_registered")
        if update.message is not None:
            await update.message.reply_text(text)
        elif update.callback_query is not None:
            await update.callback_query.answer(text[:MAX_CALLBACK_ANSWER])
