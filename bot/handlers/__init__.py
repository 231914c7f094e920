"""Herald's bot handlers: the access gate, the registration conversation, and the rest."""

from __future__ import annotations

import logging
from typing import Any

from telegram import BotCommand, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ChatMemberHandler,
    CommandHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.handlers.context import HeraldApplication, HeraldCallbackContext
from bot.handlers.gate import AccessGate
from bot.handlers.inbound import (
    help_command,
    inbound_text,
    membership_changed,
    not_text,
    stop_command,
    unknown_command,
)
from bot.handlers.link import link_command
from bot.handlers.registration import PRIVATE_MESSAGES, cancel, registration_conversation
from bot.texts import BOT_COMMANDS, LANGUAGES, Texts

log = logging.getLogger(__name__)

GATE_GROUP = -1


def install_handlers(application: HeraldApplication) -> None:
    """Add every handler; must run before ``initialize()`` (persistent conversations load then)."""
    settings = application.herald.settings
    registration = registration_conversation(settings.conversation_timeout_seconds)
    application.add_handler(TypeHandler(Update, AccessGate(registration)), group=GATE_GROUP)
    private = filters.ChatType.PRIVATE
    application.add_handlers(
        [
            registration,
            CommandHandler("help", help_command, filters=private),
            CommandHandler("stop", stop_command, filters=private),
            CommandHandler("cancel", cancel, filters=private),
            CommandHandler("link", link_command, filters=private),
            MessageHandler(PRIVATE_MESSAGES & filters.TEXT & ~filters.COMMAND, inbound_text),
            MessageHandler(PRIVATE_MESSAGES & filters.COMMAND, unknown_command),
            MessageHandler(PRIVATE_MESSAGES, not_text),
            ChatMemberHandler(membership_changed, ChatMemberHandler.MY_CHAT_MEMBER),
        ]
    )
    application.add_error_handler(log_error)


async def publish_commands(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """The bot's command menu in every language we speak (``post_init``).

    The menu is cosmetic: when Telegram refuses it, one warning says so and the bot starts.
    """
    if not isinstance(application, HeraldApplication):
        raise TypeError("publish_commands needs a HeraldApplication")
    default = application.herald.settings.default_language
    failed: list[str] = []
    reason = ""
    for language in (None, *LANGUAGES):
        texts = Texts(language or default)
        commands = [BotCommand(name, texts(f"cmd_{name}")) for name in BOT_COMMANDS]
        try:
            await application.bot.set_my_commands(commands, language_code=language)
        except TelegramError as exc:
            failed.append(language or "default")
            reason = str(exc)
    if failed:
        log.warning(
            "could not publish the bot's command menu (%s): %s; the bot works without it",
            ", ".join(failed),
            reason,
        )


async def log_error(update: object, context: HeraldCallbackContext) -> None:
    """Log a failed update without its content (it may hold personal data)."""
    update_id = update.update_id if isinstance(update, Update) else None
    log.error("handling update %s failed", update_id, exc_info=context.error)


__all__ = ["HeraldApplication", "HeraldCallbackContext", "install_handlers", "publish_commands"]
