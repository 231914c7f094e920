"""What linked people do: /help, /stop, writing to the office (stored and echoed), blocking."""

from __future__ import annotations

from telegram import ChatMember, ChatMemberUpdated, ReplyKeyboardRemove, Update
from telegram.constants import ChatType

from bot.handlers.context import HeraldCallbackContext
from persistence.registration import InboundText, opt_out, set_blocked, store_inbound


async def help_command(update: Update, context: HeraldCallbackContext) -> None:
    """/help: the commands, in the person's language."""
    if update.effective_message is not None:
        await update.effective_message.reply_text(context.texts(update)("help"))


async def stop_command(update: Update, context: HeraldCallbackContext) -> None:
    """/stop: opt out of this chat (the records stay, marked opted out) and say how to return."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return
    herald = context.herald
    await opt_out(herald.sessions, herald.recipient_kinds, chat.id)
    context.linked = []
    await message.reply_text(context.texts(update)("stopped"), reply_markup=ReplyKeyboardRemove())


async def inbound_text(update: Update, context: HeraldCallbackContext) -> None:
    """A text from a linked person: store it as a received message, then echo it back."""
    message, chat, user = update.effective_message, update.effective_chat, update.effective_user
    if message is None or message.text is None or chat is None or user is None:
        return
    linked = await context.linked_for(chat.id)
    if not linked:  # the gate lets only linked people here; be safe if it is ever bypassed
        await message.reply_text(context.texts(update)("not_registered"))
        return
    inbound = InboundText(
        chat_id=chat.id,
        telegram_message_id=message.message_id,
        text=message.text,
        sender_name=user.full_name,
        received_at=message.date,
    )
    await store_inbound(context.herald.sessions, inbound, linked)
    # The echo is the hot path of a busy bot: ask for the raw answer, since nothing here reads
    # the Message that reply_text would build from it.
    await context.bot.do_api_request(
        "sendMessage",
        api_kwargs={"chat_id": chat.id, "text": context.texts(update)("echo", text=message.text)},
    )


async def unknown_command(update: Update, context: HeraldCallbackContext) -> None:
    if update.effective_message is not None:
        await update.effective_message.reply_text(context.texts(update)("unknown_command"))


async def not_text(update: Update, context: HeraldCallbackContext) -> None:
    """Photos, stickers and the like: only text reaches the office."""
    if update.effective_message is not None:
        await update.effective_message.reply_text(context.texts(update)("only_text"))


def _blocked_change(member: ChatMemberUpdated) -> bool | None:
    """True when the person blocked the bot, False when they unblocked it, else None."""
    old, new = member.old_chat_member.status, member.new_chat_member.status
    if new == ChatMember.BANNED:
        return True
    if old == ChatMember.BANNED and new == ChatMember.MEMBER:
        return False
    return None


async def membership_changed(update: Update, context: HeraldCallbackContext) -> None:
    """my_chat_member in a private chat: mark (or clear) the linked records as blocked."""
    member = update.my_chat_member
    if member is None or member.chat.type != ChatType.PRIVATE:
        return
    blocked = _blocked_change(member)
    if blocked is not None:
        herald = context.herald
        await set_blocked(herald.sessions, herald.recipient_kinds, member.chat.id, blocked)
