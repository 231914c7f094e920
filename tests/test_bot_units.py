"""Small pieces of the bot: phone numbers, texts, queries, the per-chat update order."""

from __future__ import annotations

import asyncio
import string
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select
from telegram import Chat, Message, Update, User

from bot.handlers.gate import command_of
from bot.texts import CATALOGS, Texts, pick_language
from bot.update_processor import PerChatUpdateProcessor
from persistence.models import Message as StoredMessage
from persistence.models import MessageRecipient
from persistence.phones import normalize_phone
from persistence.recipient_kinds import default_registry
from persistence.registration import (
    InboundText,
    find_linked,
    link_phone,
    opt_out,
    set_blocked,
    store_inbound,
)
from tests.bot_support import add_customer, add_subject
from tests.conftest import Database


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("393331234567", "+393331234567"),  # what Telegram sends: no "+"
        ("+39 333 123 4567", "+393331234567"),
        ("333 123 4567", "+393331234567"),  # national, default region IT
        ("0039 333-123-4567", "+393331234567"),
        ("14155552671", "+14155552671"),
        ("12", None),
        ("not a number", None),
        ("", None),
    ],
)
def test_phone_numbers_are_normalised_to_e164(raw: str, expected: str | None) -> None:
    """Numbers as Telegram or people write them become one E.164 form, or are rejected."""
    assert normalize_phone(raw, "IT") == expected


def test_both_languages_have_the_same_texts_and_placeholders() -> None:
    """No message is missing or loses a placeholder in Italian."""

    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    english, italian = CATALOGS["en"], CATALOGS["it"]
    assert english.keys() == italian.keys()
    for key in english:
        assert fields(english[key]) == fields(italian[key]), key
        assert english[key] != italian[key] or key == "echo", key


@pytest.mark.parametrize(
    ("code", "expected"),
    [("it", "it"), ("it-IT", "it"), ("en-GB", "en"), ("de", "en"), (None, "en")],
)
def test_language_follows_the_telegram_client_with_a_default(
    code: str | None, expected: str
) -> None:
    """Italian clients get Italian, everyone else the configured default."""
    assert pick_language(code, "en") == expected
    assert pick_language("fr", "it") == "it"


def test_long_texts_are_cut_to_telegrams_limit() -> None:
    """An echo of a very long message still fits in one Telegram message."""
    assert len(Texts("en")("echo", text="x" * 5000)) == 4096


def _update(update_id: int, chat_id: int, text: str) -> Update:
    user = User(chat_id, "P", is_bot=False)
    chat = Chat(chat_id, Chat.PRIVATE)
    message = Message(update_id, datetime.now(UTC), chat, from_user=user, text=text)
    return Update(update_id, message=message)


@pytest.mark.parametrize(
    ("text", "command"),
    [("/start", "start"), ("/Start@herald_bot x", "start"), ("hello", None), ("/", None)],
)
def test_gate_reads_commands(text: str, command: str | None) -> None:
    """Commands are recognised with or without the bot's name."""
    assert command_of(_update(1, 5, text)) == command


async def test_updates_of_one_chat_run_in_order_and_chats_run_concurrently() -> None:
    """My messages are handled in the order I sent them, while others are served meanwhile."""
    processor = PerChatUpdateProcessor(8)
    order: list[tuple[int, int]] = []
    release = asyncio.Event()

    async def handle(update_id: int, chat_id: int) -> None:
        if update_id == 1:
            await release.wait()  # the first update of chat 1 is slow
        order.append((chat_id, update_id))
        if chat_id == 2:
            release.set()

    tasks = [
        asyncio.create_task(processor.process_update(_update(uid, chat, "x"), handle(uid, chat)))
        for uid, chat in ((1, 1), (2, 1), (3, 2))
    ]
    await asyncio.gather(*tasks)
    assert order == [(2, 3), (1, 1), (1, 2)]


async def test_queries_link_flag_and_store_across_kinds(db: Database) -> None:
    """Linking, opting out, blocking and storing inbound touch every kind, one query per step."""
    kinds = default_registry()
    customer = await add_customer(db, "Lia", "+393331234567")
    await add_subject(db, "Lia Srl", "+393331234567")
    await add_customer(db, "Other", "+393331234568")
    linked = await link_phone(db.sessions, kinds, "+393331234567", 77)
    assert [(r.kind, r.name) for r in linked] == [
        ("customer", "Lia"),
        ("external_subject", "Lia Srl"),
    ]
    assert await find_linked(db.sessions, kinds, 77) == linked
    assert linked[0].id == customer

    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        inbound = InboundText(77, 5, "hi", "Lia", datetime.now(UTC))
        message_id = await store_inbound(db.sessions, inbound, linked)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    # SQLite: one transaction of three INSERTs. PostgreSQL: one statement (data-modifying CTEs)
    # run straight on the driver, so SQLAlchemy's events do not see it. Never one per record.
    assert len(inserts) == (3 if db.engine.dialect.name == "sqlite" else 0)
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(MessageRecipient)) == 2
        assert (await session.get(StoredMessage, message_id)) is not None

    assert await set_blocked(db.sessions, kinds, 77, True) == 2
    assert await opt_out(db.sessions, kinds, 77) == 2
    assert await find_linked(db.sessions, kinds, 77) == []
    relinked = await link_phone(db.sessions, kinds, "+393331234567", 77)
    assert len(relinked) == 2 and len(await find_linked(db.sessions, kinds, 77)) == 2


def test_terminal_chat_shows_what_a_telegram_app_would_show() -> None:
    """Broadcast markup reaches the terminal chat rendered, not as raw HTML tags."""
    from bot.chat_client import render
    from sandbox.telegram_models import plain_text

    text = "<b>Office news</b>\n\nClosed &lt;Friday&gt;"
    shown = render({"text": text, "visible_text": plain_text(text, "HTML"), "parse_mode": "HTML"})
    assert shown.splitlines()[:3] == ["bot> Office news", "bot> ", "bot> Closed <Friday>"]
