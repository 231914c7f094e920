"""The bot end to end: the real Service, polling and webhook, against the Telegram simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.runner import Service
from persistence.models import (
    Customer,
    DeliveryStatus,
    Direction,
    ExternalSubject,
    Message,
    MessageCounter,
    MessageRecipient,
    MessageStatus,
)
from sandbox.telegram_simulator import TelegramSimulator
from tests.bot_support import (
    MODES,
    Person,
    add_customer,
    add_subject,
    has_contact_button,
    recipient_state,
    removes_keyboard,
    running_service,
    wait_until,
)
from tests.conftest import Database

PHONE = "+393331234567"


@pytest.fixture
async def sim() -> AsyncIterator[TelegramSimulator]:
    async with TelegramSimulator(token="4242:test-token-for-herald") as simulator:
        yield simulator


@pytest.fixture(params=MODES)
async def service(
    request: pytest.FixtureRequest, db: Database, sim: TelegramSimulator
) -> AsyncIterator[Service]:
    async with running_service(db, sim, request.param) as running:
        yield running


async def test_known_number_links_every_matching_record_across_kinds(
    service: Service, db: Database, sim: TelegramSimulator
) -> None:
    """Sharing my number links me as customer and as external subject, and only exact matches."""
    customer = await add_customer(db, "Ada Rossi", PHONE)
    subject = await add_subject(db, "Studio Rossi", PHONE)
    lookalike = await add_customer(db, "Suffix Match", "+13331234567")
    ada = Person(sim, 501, "Ada")

    greeting = await ada.say("/start")
    assert "share your phone number" in (greeting.text or "")
    assert has_contact_button(greeting)

    linked = await ada.share_contact(PHONE.removeprefix("+"))  # Telegram omits the "+"
    assert "Ada Rossi" in (linked.text or "") and "Studio Rossi" in (linked.text or "")
    assert removes_keyboard(linked)
    for model, record in ((Customer, customer), (ExternalSubject, subject)):
        state = await recipient_state(db, model, record)
        assert state == {"chat_id": 501, "opted_out": False, "blocked": False}
    assert (await recipient_state(db, Customer, lookalike))["chat_id"] is None

    again = await ada.say("/start")
    assert (again.text or "").startswith("Hello Ada Rossi, Studio Rossi!")
    assert not has_contact_button(again)


async def test_unknown_number_says_who_to_contact_and_ends(
    service: Service, db: Database, sim: TelegramSimulator
) -> None:
    """An unknown number gets the support contact, and the registration is over."""
    await add_customer(db, "Someone", "+393339999999")
    bob = Person(sim, 502, "Bob")
    await bob.say("/start")
    answer = await bob.share_contact("393331234567")
    assert "+393331234567 is not in our records" in (answer.text or "")
    assert "the Herald office" in (answer.text or "")
    assert removes_keyboard(answer)
    after = await bob.say("hello?")
    assert "not registered yet" in (after.text or "")


async def test_someone_elses_contact_and_typed_text_are_refused(
    service: Service, db: Database, sim: TelegramSimulator
) -> None:
    """Another person's card or a typed number is refused with the button shown again."""
    await add_customer(db, "Victim", "+393330000001")
    await add_customer(db, "Carla", PHONE)
    carla = Person(sim, 503, "Carla")
    await carla.say("/start")

    spoofed = await carla.share_contact("393330000001", owner=999)
    assert "someone else's contact" in (spoofed.text or "")
    assert has_contact_button(spoofed)
    no_card = await carla.share_contact("393330000001", owner=None)
    assert "someone else's contact" in (no_card.text or "")

    typed = await carla.say("+39 333 0000001")
    assert "tap the button" in (typed.text or "")
    assert has_contact_button(typed)
    async with db.sessions() as session:
        linked = await session.scalars(
            select(Customer.name).where(Customer.telegram_chat_id == 503)
        )
        assert list(linked) == []

    done = await carla.share_contact(PHONE)
    assert "registered as Carla" in (done.text or "")


async def test_cancel_removes_the_keyboard_and_ends_the_registration(
    service: Service, sim: TelegramSimulator
) -> None:
    """/cancel takes the button away; a text afterwards is not treated as registration."""
    dan = Person(sim, 504, "Dan")
    await dan.say("/start")
    cancelled = await dan.say("/cancel")
    assert "Registration cancelled" in (cancelled.text or "")
    assert removes_keyboard(cancelled)
    after = await dan.say("my number is 333")
    assert "not registered yet" in (after.text or "")


async def test_gate_explains_once_and_survives_updates_without_a_message(
    service: Service, sim: TelegramSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Unregistered people get /help and one explanation per message; odd updates crash nothing."""
    eve = Person(sim, 505, "Eve")
    assert "not registered yet" in ((await eve.say("hello")).text or "")
    assert "not registered yet" in ((await eve.say("/stop")).text or "")
    help_text = (await eve.say("/help")).text or ""
    assert "/start" in help_text and "/stop" in help_text

    first = await eve.say("typo")
    await sim.edit_message(505, first.message_id - 1, "edited text")  # an edited_message update
    await sim.press_button(505, "stale-button")  # a callback_query update
    await sim.block_bot(505)  # my_chat_member from someone never linked
    await sim.unblock_bot(505)
    after = await eve.say("/help")  # the bot is still answering, in order
    assert "/start" in (after.text or "")
    assert [m.text for m in eve.received].count(after.text) == 2
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


async def test_inbound_text_is_stored_and_echoed_then_stop_opts_out(
    service: Service, db: Database, sim: TelegramSimulator
) -> None:
    """What I write reaches the office (one sender row per record); /stop ends broadcasts."""
    customer = await add_customer(db, "Fede", PHONE, chat_id=506)
    subject = await add_subject(db, "Fede Srl", PHONE, chat_id=506)
    fede = Person(sim, 506, "Fede")

    echo = await fede.say("Ciao ufficio, arrivo alle 10")
    assert "Ciao ufficio, arrivo alle 10" in (echo.text or "")
    async with db.sessions() as session:
        message = (await session.scalars(select(Message))).one()
        rows = list(await session.scalars(select(MessageRecipient)))
        counters = list(await session.scalars(select(MessageCounter)))
    assert (message.direction, message.status, message.channel) == (
        Direction.RECEIVED,
        MessageStatus.RECEIVED,
        "telegram",
    )
    assert message.body == "Ciao ufficio, arrivo alle 10"
    assert sorted((r.recipient_kind, r.recipient_id) for r in rows) == [
        ("customer", customer),
        ("external_subject", subject),
    ]
    assert all(r.is_sender and r.status == DeliveryStatus.RECEIVED for r in rows)
    assert [(c.status, c.count) for c in counters] == [(DeliveryStatus.RECEIVED, 2)]

    stopped = await fede.say("/stop")
    assert "no longer receive messages" in (stopped.text or "")
    assert (await recipient_state(db, Customer, customer))["opted_out"] is True
    assert (await recipient_state(db, ExternalSubject, subject))["opted_out"] is True


async def test_after_stop_the_bot_says_how_to_come_back_and_start_resubscribes(
    service: Service, db: Database, sim: TelegramSimulator
) -> None:
    """After /stop I am told I opted out and to send /start; /start subscribes me again."""
    customer = await add_customer(db, "Fede", PHONE, chat_id=516)
    fede = Person(sim, 516, "Fede")
    await fede.say("/stop")
    refused = (await fede.say("still there?")).text or ""
    assert "You asked not to receive messages" in refused and "/start" in refused
    assert "not registered" not in refused
    back = await fede.say("/start")
    assert "Welcome back, Fede!" in (back.text or "") and removes_keyboard(back)
    assert (await recipient_state(db, Customer, customer))["opted_out"] is False
    echo = await fede.say("hello again")
    assert "hello again" in (echo.text or "")


async def test_a_failed_explanation_still_stops_the_update_at_the_gate(
    service: Service, sim: TelegramSimulator
) -> None:
    """When the gate's own reply fails, no other handler answers that update in its place."""
    eve = Person(sim, 515, "Eve")
    sim.fail_next("sendMessage", error_code=400, description="Bad Request: odd", chat_id=515)
    await sim.send_text(515, "hello")  # the gate's "not registered" reply fails
    first_reply = await eve.say("/help")  # updates of one chat are handled in order
    assert "/cancel" in (first_reply.text or "")  # the help, not a second handler's answer
    assert [m.text for m in eve.received] == [first_reply.text]


async def test_blocking_flags_linked_records_and_unblock_with_start_clears_it(
    service: Service, db: Database, sim: TelegramSimulator
) -> None:
    """Blocking the bot marks my records blocked; unblocking and /start clears the mark."""
    customer = await add_customer(db, "Gina", PHONE, chat_id=507)
    gina = Person(sim, 507, "Gina")

    async def blocked() -> bool:
        return bool((await recipient_state(db, Customer, customer))["blocked"])

    async def not_blocked() -> bool:
        return not await blocked()

    await sim.block_bot(507)
    await wait_until(blocked, what="the record is flagged blocked")
    await sim.unblock_bot(507)
    await wait_until(not_blocked, what="the block flag is cleared")
    greeting = await gina.say("/start")
    assert (greeting.text or "").startswith("Hello Gina!")
    assert not await blocked()


async def test_italian_users_get_italian_texts_and_menus(
    service: Service, db: Database, sim: TelegramSimulator
) -> None:
    """An Italian Telegram client gets Italian answers; the command menu exists in both."""
    await add_customer(db, "Ugo", PHONE)
    ugo = Person(sim, 508, "Ugo", language="it-IT")
    greeting = await ugo.say("/start")
    assert "condividi il tuo numero" in (greeting.text or "")
    linked = await ugo.share_contact(PHONE)
    assert "sei registrato come Ugo" in (linked.text or "")
    menu_it = {c["command"]: c["description"] for c in sim.commands("it")}
    menu_en = {c["command"]: c["description"] for c in sim.commands("en")}
    assert set(menu_it) == set(menu_en) == {"start", "help", "stop", "cancel"}
    assert menu_it["stop"] != menu_en["stop"]
