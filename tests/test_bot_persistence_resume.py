"""Database persistence under a real PTB Application: a second process resumes the first's state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)

from persistence.bot_persistence import DatabasePersistence
from persistence.models import BotConversation, BotUserData
from sandbox.telegram_simulator import TelegramSimulator
from tests.bot_support import Person
from tests.conftest import Database

ASKED, CONFIRM = "asked", "confirm"
Context = ContextTypes.DEFAULT_TYPE


async def begin(update: Update, context: Context) -> str:
    assert context.user_data is not None and update.effective_message is not None
    context.user_data["started"] = {"step": 1, 7: ("int", "key")}
    await update.effective_message.reply_text("What is your favourite number?")
    return ASKED


async def answer(update: Update, context: Context) -> str:
    assert context.user_data is not None and update.effective_message is not None
    started = context.user_data.get("started")
    context.user_data["answer"] = update.effective_message.text
    await update.effective_message.reply_text(f"state={ASKED} started={started!r}")
    return CONFIRM


def build(db: Database, sim: TelegramSimulator) -> Application[Any, Any, Any, Any, Any, Any]:
    application = (
        ApplicationBuilder()
        .token(sim.token)
        .base_url(sim.base_url)
        .base_file_url(sim.base_file_url)
        .persistence(DatabasePersistence(db.sessions, update_interval=60))
        .build()
    )
    application.add_handler(
        ConversationHandler(
            entry_points=[CommandHandler("begin", begin)],
            states={ASKED: [MessageHandler(filters.TEXT & ~filters.COMMAND, answer)], CONFIRM: []},
            fallbacks=[],
            name="proof",
            persistent=True,
        )
    )
    return application


@pytest.fixture
async def sim() -> AsyncIterator[TelegramSimulator]:
    async with TelegramSimulator(token="4646:persistence-proof") as simulator:
        yield simulator


async def _run_once(
    application: Application[Any, Any, Any, Any, Any, Any], person: Person, text: str
) -> str:
    await application.initialize()
    await application.start()
    assert application.updater is not None
    await application.updater.start_polling(poll_interval=0)
    try:
        return (await person.say(text)).text or ""
    finally:
        await application.updater.stop()
        await application.stop()
        await application.shutdown()  # the last persistence write happens here


async def test_a_second_application_resumes_the_conversation_and_user_data(
    db: Database, sim: TelegramSimulator
) -> None:
    """After a restart the bot remembers where I was in the conversation and what I said."""
    person = Person(sim, 901, "Pia")
    assert "favourite number" in await _run_once(build(db, sim), person, "/begin")
    async with db.sessions() as session:
        conversation = (await session.scalars(select(BotConversation))).one()
    assert conversation.name == "proof" and "[901,901]" in conversation.key

    second = build(db, sim)
    reply = await _run_once(second, person, "42")
    assert reply == "state=asked started={'step': 1, 7: ('int', 'key')}"
    assert second.user_data[901]["answer"] == "42"
    async with db.sessions() as session:
        stored = (await session.scalars(select(BotUserData))).one()
        conversation = (await session.scalars(select(BotConversation))).one()
    assert stored.user_id == 901
    assert conversation.state == {"state": CONFIRM}
