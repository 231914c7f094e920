"""State survives a restart: a registration begun before it completes after it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.handlers.registration import CONVERSATION_NAME, WAITING_CONTACT
from bot.runner import Service
from persistence.models import BotConversation, Customer
from sandbox.telegram_simulator import TelegramSimulator
from tests.bot_support import (
    MODES,
    Person,
    add_customer,
    recipient_state,
    removes_keyboard,
    service_settings,
)
from tests.conftest import Database

PHONE = "+393471112233"


@pytest.fixture
async def sim() -> AsyncIterator[TelegramSimulator]:
    async with TelegramSimulator(token="4343:restart-test-token") as simulator:
        yield simulator


@pytest.mark.parametrize("mode", MODES)
async def test_registration_started_before_a_restart_completes_after_it(
    mode: str, db: Database, sim: TelegramSimulator
) -> None:
    """I tap /start, the service restarts, I share my number: I am registered."""
    customer = await add_customer(db, "Ivo", PHONE)
    ivo = Person(sim, 601, "Ivo")
    settings = service_settings(db, sim, mode)

    first = Service(settings)
    await first.start()
    try:
        await ivo.say("/start")
    finally:
        await first.stop()  # PTB's shutdown() writes the conversation state
    async with db.sessions() as session:
        stored = (await session.scalars(select(BotConversation))).one()
    assert stored.name == CONVERSATION_NAME
    assert stored.state == {"state": WAITING_CONTACT}

    second = Service(settings)
    await second.start()
    try:
        typed = await ivo.say("347 111 2233")  # still in the conversation: asked for the button
        assert "tap the button" in (typed.text or "")
        done = await ivo.share_contact(PHONE.removeprefix("+"))
    finally:
        await second.stop()
    assert "registered as Ivo" in (done.text or "")
    assert removes_keyboard(done)
    assert (await recipient_state(db, Customer, customer))["chat_id"] == 601
    async with db.sessions() as session:
        assert list(await session.scalars(select(BotConversation))) == []
