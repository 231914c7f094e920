"""The persistent phone-number conversation: /start, share the contact, get linked.

A contact card is accepted only when it is the sender's own (``contact.user_id``); the number is
normalised to E.164 and matched exactly against every recipient kind.
"""

from __future__ import annotations

from telegram import KeyboardButton, ReplyKeyboardMarkup, ReplyKeyboardRemove, Update
from telegram.ext import (
    BaseHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.handlers.context import HeraldCallbackContext
from bot.texts import Texts
from persistence.phones import normalize_phone
from persistence.registration import LinkedRecipient, link_phone, opt_in, set_blocked

CONVERSATION_NAME = "registration"
WAITING_CONTACT = "waiting_contact"  # stored in the database: keep it stable
END = ConversationHandler.END

PRIVATE_MESSAGES = filters.UpdateType.MESSAGE & filters.ChatType.PRIVATE


def contact_keyboard(texts: Texts) -> ReplyKeyboardMarkup:
    button = KeyboardButton(texts("share_button"), request_contact=True)
    return ReplyKeyboardMarkup([[button]], one_time_keyboard=True, resize_keyboard=True)


def names_of(linked: list[LinkedRecipient]) -> str:
    return ", ".join(dict.fromkeys(record.name for record in linked))


async def start(update: Update, context: HeraldCallbackContext) -> object:
    """/start: greet a linked person by name, or ask an unlinked one for their number."""
    message, chat, user = update.effective_message, update.effective_chat, update.effective_user
    if message is None or chat is None or user is None:
        return END
    texts = context.texts(update)
    herald = context.herald
    linked = await context.linked_for(chat.id)
    if linked:
        await set_blocked(herald.sessions, herald.recipient_kinds, chat.id, blocked=False)
        await message.reply_text(
            texts("start_linked", names=names_of(linked)), reply_markup=ReplyKeyboardRemove()
        )
        return END
    back = await opt_in(herald.sessions, herald.recipient_kinds, chat.id)
    if back:  # /start after /stop: subscribed again, no need to share the number again
        context.linked = back
        await message.reply_text(
            texts("resubscribed", names=names_of(back)), reply_markup=ReplyKeyboardRemove()
        )
        return END
    await message.reply_text(
        texts("start_unlinked", first_name=user.first_name), reply_markup=contact_keyboard(texts)
    )
    return WAITING_CONTACT


async def contact_received(update: Update, context: HeraldCallbackContext) -> object:
    """A contact card: the sender's own number links every record that has it."""
    message, chat, user = update.effective_message, update.effective_chat, update.effective_user
    if message is None or message.contact is None or chat is None or user is None:
        return None
    texts = context.texts(update)
    if message.contact.user_id != user.id:
        await message.reply_text(texts("not_your_contact"), reply_markup=contact_keyboard(texts))
        return WAITING_CONTACT
    herald = context.herald
    settings = herald.settings
    raw = message.contact.phone_number
    phone = normalize_phone(raw, settings.default_phone_region)
    if phone is None:
        text = texts("number_invalid", phone=raw, support=settings.support_contact)
        await message.reply_text(text, reply_markup=ReplyKeyboardRemove())
        return END
    linked = await link_phone(herald.sessions, herald.recipient_kinds, phone, chat.id)
    if not linked:
        text = texts("number_unknown", phone=phone, support=settings.support_contact)
        await message.reply_text(text, reply_markup=ReplyKeyboardRemove())
        return END
    context.linked = linked
    await message.reply_text(
        texts("linked_now", names=names_of(linked)), reply_markup=ReplyKeyboardRemove()
    )
    return END


async def need_contact(update: Update, context: HeraldCallbackContext) -> object:
    """Anything but a contact while we wait for one: explain and show the button again."""
    if update.effective_message is not None:
        texts = context.texts(update)
        await update.effective_message.reply_text(
            texts("need_contact"), reply_markup=contact_keyboard(texts)
        )
    return WAITING_CONTACT


async def cancel(update: Update, context: HeraldCallbackContext) -> object:
    """/cancel: leave the registration and take the keyboard away."""
    if update.effective_message is not None:
        await update.effective_message.reply_text(
            context.texts(update)("cancelled"), reply_markup=ReplyKeyboardRemove()
        )
    return END


async def timed_out(update: object, context: HeraldCallbackContext) -> None:
    """The conversation timed out: say so and take the keyboard away."""
    if isinstance(update, Update) and update.effective_chat is not None:
        await context.bot.send_message(
            update.effective_chat.id,
            context.texts(update)("timed_out"),
            reply_markup=ReplyKeyboardRemove(),
        )


def registration_conversation(
    timeout_seconds: float,
) -> ConversationHandler[HeraldCallbackContext]:
    contact = MessageHandler(PRIVATE_MESSAGES & filters.CONTACT, contact_received)
    start_command = CommandHandler("start", start, filters=filters.ChatType.PRIVATE)
    waiting: list[BaseHandler[Update, HeraldCallbackContext, object]] = [
        contact,
        MessageHandler(PRIVATE_MESSAGES & ~filters.COMMAND, need_contact),
    ]
    return ConversationHandler(
        entry_points=[start_command, contact],
        states={
            WAITING_CONTACT: waiting,
            ConversationHandler.TIMEOUT: [TypeHandler(Update, timed_out)],
        },
        fallbacks=[
            CommandHandler("cancel", cancel, filters=filters.ChatType.PRIVATE),
            start_command,
        ],
        allow_reentry=True,
        conversation_timeout=timeout_seconds,
        name=CONVERSATION_NAME,
        persistent=True,
    )
