"""``/link CODE``: a Herald user links their own Telegram chat (where their "send me a test"
messages go) with the one-time code the console or ``herald users link-code`` shows them."""

from __future__ import annotations

from telegram import Update

from bot.handlers.context import HeraldCallbackContext
from persistence import audit
from persistence.audit import Actor, AuditAction
from persistence.user_addresses import use_link_code


async def link_command(update: Update, context: HeraldCallbackContext) -> None:
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return
    texts = context.texts(update)
    code = (context.args or [""])[0] if context.args is not None else ""
    if not code:
        await message.reply_text(texts("link_usage"))
        return
    herald = context.herald
    async with herald.sessions.begin() as session:
        user = await use_link_code(session, code, chat.id, herald.clock())
        if user is not None:
            await audit.record(
                session, Actor.bot(), AuditAction.TELEGRAM_LINKED, "user", [user.id], {}
            )
            username = user.username
    if user is None:
        await message.reply_text(texts("link_invalid"))
        return
    await message.reply_text(texts("linked", username=username))
