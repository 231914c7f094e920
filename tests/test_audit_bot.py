"""The audit log and the bot: what a person asks the bot for (linking their number, /stop,
/start again) is recorded as done by the bot, naming the records it changed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.runner import Service
from persistence.models import AuditEvent
from sandbox.telegram_simulator import TelegramSimulator
from tests.bot_support import Person, add_customer, add_subject, running_service
from tests.conftest import Database

PHONE = "+393331234567"


@pytest.fixture
async def sim() -> AsyncIterator[TelegramSimulator]:
    async with TelegramSimulator(token="4242:test-token-for-herald") as simulator:
        yield simulator


@pytest.fixture
async def service(db: Database, sim: TelegramSimulator) -> AsyncIterator[Service]:
    async with running_service(db, sim, "polling") as running:
        yield running


async def test_linking_stop_and_start_are_recorded_as_the_persons_choice(
    service: Service, db: Database, sim: TelegramSimulator
) -> None:
    """Each change the person makes is one row per recipient kind, by the bot, with its ids."""
    customer = await add_customer(db, "Ada", PHONE)
    subject = await add_subject(db, "Studio Ada", PHONE)
    ada = Person(sim, 601, "Ada")
    await ada.say("/start")
    await ada.share_contact(PHONE)
    await ada.say("/stop")
    await ada.say("/start")
    async with db.sessions() as session:
        events = list((await session.execute(select(AuditEvent).order_by(AuditEvent.id))).scalars())
    assert [(e.detail["telegram"], e.subject_kind, e.subject_ids) for e in events] == [
        ("linked", "customer", f",{customer},"),
        ("linked", "external_subject", f",{subject},"),
        ("stopped", "customer", f",{customer},"),
        ("stopped", "external_subject", f",{subject},"),
        ("started", "customer", f",{customer},"),
        ("started", "external_subject", f",{subject},"),
    ]
    assert {(e.action, e.actor_kind, e.actor_label, e.actor_id) for e in events} == {
        ("preferences.changed", "bot", "bot", None)
    }
