"""The local Telegram Bot API simulator, driven by a real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import datetime as dtm
import hashlib
import io
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import telegram
from aiohttp import web
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes, MessageHandler, filters

from sandbox.telegram_simulator import TelegramSimulator

# RetryAfter's own constructor reads the deprecated int-valued ``retry_after`` (PTB 22.x).
pytestmark = pytest.mark.filterwarnings("ignore:.*attribute `retry_after`:DeprecationWarning")

ANN = 1001
BOB = 1002


@pytest.fixture
async def sim() -> AsyncIterator[TelegramSimulator]:
    async with TelegramSimulator() as simulator:
        simulator.add_user(ANN, "Ann", username="ann", language_code="it")
        simulator.add_user(BOB, "Bob")
        yield simulator


@pytest.fixture
async def bot(sim: TelegramSimulator) -> AsyncIterator[telegram.Bot]:
    async with telegram.Bot(sim.token, base_url=sim.base_url) as client:
        yield client


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@dataclass
class WebhookReceiver:
    url: str
    expected_secret: str
    received: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[str | None] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """A bot-side webhook endpoint that checks the secret header like Herald must."""
    state = WebhookReceiver(url="", expected_secret="s3cret-token")

    async def handle(request: web.Request) -> web.Response:
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        state.secrets.append(secret)
        if secret != state.expected_secret:
            return web.Response(status=403)
        state.received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield state
    finally:
        await runner.cleanup()


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


# --------------------------------------------------------------------------- bot basics


async def test_initialize_reads_bot_identity(sim: TelegramSimulator) -> None:
    """PTB's Bot.initialize() succeeds and sees the configured bot user."""
    async with telegram.Bot(sim.token, base_url=sim.base_url) as client:
        me = client.bot
        assert me.is_bot and me.username == "herald_sandbox_bot" and me.id == 123456
        assert me.can_join_groups is True
    assert sim.received_count["getMe"] == 1
    assert sim.base_url == f"http://127.0.0.1:{sim.port}/bot"
    assert sim.control_url == f"http://127.0.0.1:{sim.control_port}/_sim"
    assert sim.control_port != sim.port


async def test_wrong_token_and_unknown_method(
    sim: TelegramSimulator, http: aiohttp.ClientSession
) -> None:
    """A wrong token answers 401 Unauthorized and an unknown method 404, like Telegram."""
    with pytest.raises(InvalidToken):
        async with telegram.Bot("999:WRONG", base_url=sim.base_url):
            pass
    async with http.post(f"{sim.base_url}999:WRONG/getMe") as response:
        assert response.status == 401
        assert await response.json() == {
            "ok": False,
            "error_code": 401,
            "description": "Unauthorized",
        }
    async with http.post(f"{sim.base_url}{sim.token}/sendTelepathy") as response:
        assert response.status == 404
        assert (await response.json())["description"] == "Not Found"


async def test_send_message_is_recorded(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """A sent message comes back as a real Message and is readable with its markup."""
    keyboard = ReplyKeyboardMarkup([[KeyboardButton("Share phone", request_contact=True)]])
    first = await bot.send_message(
        ANN, "<b>Hello</b> Ann", parse_mode="HTML", reply_markup=keyboard
    )
    second = await bot.send_message(ANN, "bye", reply_markup=ReplyKeyboardRemove())
    assert first.text == "Hello Ann" and first.chat.id == ANN and first.chat.type == "private"
    assert first.from_user is not None and first.from_user.id == bot.id
    assert second.message_id == first.message_id + 1
    sent = sim.messages_to(ANN)
    assert [m.text for m in sent] == ["<b>Hello</b> Ann", "bye"]
    assert sent[0].parse_mode == "HTML"
    assert sent[0].reply_markup == {
        "keyboard": [[{"text": "Share phone", "request_contact": True}]]
    }
    assert sent[1].reply_markup == {"remove_keyboard": True}
    assert sim.messages_to(BOB) == []


async def test_json_and_form_encodings(sim: TelegramSimulator, http: aiohttp.ClientSession) -> None:
    """The server accepts JSON bodies and url-encoded forms with JSON-encoded nested fields."""
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}
    url = f"{sim.base_url}{sim.token}/sendMessage"
    async with http.post(url, json={"chat_id": ANN, "text": "json", "reply_markup": markup}) as r:
        body = await r.json()
    assert body["ok"] is True and body["result"]["reply_markup"] == markup
    form = {"chat_id": str(ANN), "text": "form", "reply_markup": '{"remove_keyboard": true}'}
    async with http.post(url, data=form) as response:
        assert (await response.json())["result"]["text"] == "form"
    assert sim.messages_to(ANN)[1].reply_markup == {"remove_keyboard": True}


async def test_wait_for_messages(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """wait_for_messages returns once enough messages arrived and explains a timeout."""
    waiter = asyncio.create_task(sim.wait_for_messages(ANN, 2, timeout=5))
    await bot.send_message(ANN, "one")
    await bot.send_message(ANN, "two")
    assert [m.text for m in await waiter] == ["one", "two"]
    with pytest.raises(TimeoutError, match=r"at least 3 message\(s\) to chat 1001.*got 2"):
        await sim.wait_for_messages(ANN, 3, timeout=0.05)


# --------------------------------------------------------------------------- Telegram's errors


async def test_validation_errors(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """Empty, too long, unknown-chat and malformed-HTML sends fail like Telegram."""
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(ANN, "   ")
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(ANN, "x" * 4097)
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(424242, "hi")
    with pytest.raises(BadRequest, match="Can't parse entities"):
        await bot.send_message(ANN, "<b>bold", parse_mode="HTML")
    with pytest.raises(BadRequest, match="Can't parse entities"):
        await bot.send_message(ANN, "Price 3.50!", parse_mode="MarkdownV2")
    await bot.send_message(ANN, "x" * 4096)
    await bot.send_message(ANN, r"Price 3\.50\!", parse_mode="MarkdownV2")
    assert len(sim.messages_to(ANN)) == 2


async def test_blocked_user(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """block_bot emits my_chat_member member→kicked and sends then answer 403 blocked."""
    await sim.block_bot(ANN)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(ANN, "hello?")
    await sim.unblock_bot(ANN)
    await bot.send_message(ANN, "welcome back")
    updates = await bot.get_updates()
    changes = [u.my_chat_member for u in updates if u.my_chat_member]
    assert [(c.old_chat_member.status, c.new_chat_member.status) for c in changes] == [
        ("member", "kicked"),
        ("kicked", "member"),
    ]
    assert [m.text for m in sim.messages_to(ANN)] == ["welcome back"]


async def test_deactivated_user(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """A deleted account answers 403 "user is deactivated"."""
    await sim.deactivate_user(BOB)
    with pytest.raises(Forbidden, match="user is deactivated"):
        await bot.send_message(BOB, "hi")


async def test_migrated_group(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """Sending to a group upgraded to a supergroup raises ChatMigrated with the new id."""
    sim.add_group(-100, "Team")
    await bot.send_message(-100, "before")
    await sim.migrate_group(-100, -1001234567890)
    with pytest.raises(ChatMigrated) as caught:
        await bot.send_message(-100, "after")
    assert caught.value.new_chat_id == -1001234567890
    await bot.send_message(-1001234567890, "after")
    chat = await bot.get_chat(-1001234567890)
    assert chat.type == "supergroup" and chat.title == "Team"
    updates = await bot.get_updates()
    assert next(u.message.migrate_to_chat_id for u in updates if u.message) == -1001234567890


# --------------------------------------------------------------------------- faults


async def test_fail_next_429_is_retry_after(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """A scripted 429 surfaces as RetryAfter, records nothing, and only hits the next call."""
    sim.fail_next("sendMessage", error_code=429, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(ANN, "first try")
    assert retry_seconds(caught.value) == 3
    assert sim.messages_to(ANN) == [] and sim.sends == []
    await bot.send_message(ANN, "second try")
    assert [m.text for m in sim.messages_to(ANN)] == ["second try"]
    assert sim.received_count["sendMessage"] == 2


async def test_fail_next_for_one_chat(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """A fault limited to one chat leaves sends to other chats alone."""
    sim.fail_next("sendMessage", error_code=400, description="Bad Request: boom", chat_id=BOB)
    await bot.send_message(ANN, "fine")
    with pytest.raises(BadRequest, match=r"(?i)boom"):
        await bot.send_message(BOB, "fails")
    await bot.send_message(BOB, "fine now")


async def test_5xx_rate_is_network_error(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """Random 502 faults surface as NetworkError and are not recorded as delivered."""
    sim.set_fault_rates(rate_5xx=1.0, seed=7)
    with pytest.raises(NetworkError, match="Bad Gateway") as caught:
        await bot.send_message(ANN, "lost")
    assert not isinstance(caught.value, TimedOut)
    assert sim.messages_to(ANN) == []
    await bot.get_chat(ANN)  # fault rates only affect send* methods


async def test_seeded_rates_are_reproducible(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """The same seed gives the same sequence of random 429 faults."""

    async def outcomes() -> list[bool]:
        sim.set_fault_rates(rate_429=0.5, retry_after=2, seed=42)
        results = []
        for index in range(20):
            try:
                await bot.send_message(ANN, f"m{index}")
                results.append(True)
            except RetryAfter as exc:
                assert retry_seconds(exc) == 2
                results.append(False)
        return results

    first, second = await outcomes(), await outcomes()
    assert first == second and True in first and False in first
    assert len(sim.messages_to(ANN)) == first.count(True) * 2


async def test_hang_is_timed_out(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """A hung call never answers, so the client times out; the next call works."""
    sim.hang_next("sendMessage")
    with pytest.raises(TimedOut):
        await bot.send_message(ANN, "into the void", read_timeout=0.2)
    assert sim.messages_to(ANN) == []
    await bot.send_message(ANN, "works again")


async def test_latency(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """Configured latency delays the answer of that method only."""
    sim.set_latency(0.2, "sendMessage")
    started = time.monotonic()
    await bot.send_message(ANN, "slow")
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    await bot.get_chat(ANN)
    assert time.monotonic() - started < 0.2


async def test_enforced_limits(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """With limits enforced, a second message to a chat within a second answers 429."""
    sim.enforce_limits(global_per_second=2, per_chat_per_second=1)
    await bot.send_message(ANN, "one")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(ANN, "two")
    assert retry_seconds(caught.value) >= 1
    await bot.send_message(BOB, "other chat")
    sim.add_user(1003, "Cy")
    with pytest.raises(RetryAfter):
        await bot.send_message(1003, "global limit of 2 per second")
    await bot.send_message(1003, "paid broadcast has its own limit", allow_paid_broadcast=True)
    assert sim.messages_to(1003)[0].allow_paid_broadcast is True


async def test_rate_counters(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """sends, max_per_window, min_same_chat_interval and received_count describe the traffic."""
    assert sim.min_same_chat_interval() is None
    for chat in (ANN, BOB, ANN):
        await bot.send_message(chat, "x")
    with pytest.raises(BadRequest):
        await bot.send_message(ANN, "")
    assert [chat for _, chat, _ in sim.sends] == [ANN, BOB, ANN]
    assert sim.max_per_window(60.0) == 3
    interval = sim.min_same_chat_interval()
    assert interval is not None and interval == sim.sends[2][0] - sim.sends[0][0]
    assert sim.received_count["sendMessage"] == 4
    sim.reset()
    assert sim.sends == [] and sim.messages_to(ANN) == [] and not sim.received_count


# --------------------------------------------------------------------------- updates


async def test_get_updates_long_poll(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """A long poll returns as soon as the user writes; offset confirms updates."""
    assert await bot.get_updates(timeout=0) == ()
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    update_id = await sim.send_command(ANN, "/start")
    updates = await poll
    assert time.monotonic() - started < 5
    assert [u.update_id for u in updates] == [update_id]
    message = updates[0].message
    assert message is not None and message.text == "/start"
    assert message.entities[0].type == "bot_command" and message.from_user is not None
    assert message.from_user.language_code == "it"
    assert await bot.get_updates(offset=update_id + 1) == ()
    assert sim.pending_updates == 0


async def test_allowed_updates_filter(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """allowed_updates filters which updates are queued from then on."""
    await bot.get_updates(allowed_updates=["callback_query"])
    await sim.send_text(ANN, "ignored")
    await bot.send_message(ANN, "pick", reply_markup=InlineKeyboardMarkup.from_button(
        InlineKeyboardButton("A", callback_data="a")
    ))  # fmt: skip
    pressed = await sim.press_button(ANN, "a")
    updates = await bot.get_updates(allowed_updates=[])
    assert [u.update_id for u in updates] == [pressed]


async def test_user_actions_reach_the_bot(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """Contacts (own, foreign, anonymous), edits and button presses arrive as real updates."""
    await sim.send_contact(ANN, "393331234567")
    await sim.send_contact(ANN, "393339999999", contact_user_id=BOB, first_name="Bob")
    await sim.send_contact(ANN, "15550001111", contact_user_id=None)
    await sim.send_text(ANN, "helo")
    (*_, typo) = await bot.get_updates()
    assert typo.message is not None
    await sim.edit_message(ANN, typo.message.message_id, "hello")
    offer = await bot.send_message(ANN, "Choose", reply_markup=InlineKeyboardMarkup.from_button(
        InlineKeyboardButton("Yes", callback_data="yes")
    ))  # fmt: skip
    pressed = await sim.press_button(ANN, "yes")
    everything = await bot.get_updates()
    contacts = [u.message.contact for u in everything if u.message and u.message.contact]
    assert [(c.phone_number, c.user_id) for c in contacts] == [
        ("393331234567", ANN),
        ("393339999999", BOB),
        ("15550001111", None),
    ]
    edited = [u.edited_message for u in everything if u.edited_message]
    assert edited[0].text == "hello" and edited[0].edit_date is not None
    query = next(u.callback_query for u in everything if u.callback_query)
    assert query.data == "yes" and query.id == str(pressed)
    assert query.message is not None and query.message.message_id == offer.message_id
    assert await bot.answer_callback_query(query.id, text="Saved") is True
    assert sim.callback_answers[query.id]["text"] == "Saved"
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query.id)


async def test_edit_and_delete_messages(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """editMessageText and deleteMessage change the recorded message like Telegram."""
    sent = await bot.send_message(ANN, "draft")
    edited = await bot.edit_message_text("final", chat_id=ANN, message_id=sent.message_id)
    assert isinstance(edited, telegram.Message) and edited.text == "final"
    with pytest.raises(BadRequest, match="not modified"):
        await bot.edit_message_text("final", chat_id=ANN, message_id=sent.message_id)
    assert sim.messages_to(ANN)[0].text == "final"
    assert await bot.delete_message(ANN, sent.message_id) is True
    assert sim.messages_to(ANN)[0].deleted
    with pytest.raises(BadRequest, match="not found"):
        await bot.delete_message(ANN, sent.message_id)
    assert await bot.send_chat_action(ANN, "typing") is True


async def test_webhook_delivery_with_secret(
    sim: TelegramSimulator, bot: telegram.Bot, receiver: WebhookReceiver
) -> None:
    """With a webhook set, updates are POSTed with the secret header, in order per chat."""
    assert await bot.set_webhook(receiver.url, secret_token=receiver.expected_secret)
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()
    ids = [await sim.send_text(ANN, f"message {n}") for n in range(5)]
    deliveries = await sim.wait_for_webhook_deliveries(5)
    assert [d.status for d in deliveries] == [200] * 5
    assert [u["update_id"] for u in receiver.received] == ids
    assert receiver.received[0]["message"]["text"] == "message 0"
    assert set(receiver.secrets) == {receiver.expected_secret}
    info = await bot.get_webhook_info()
    assert info.url == receiver.url and info.pending_update_count == 0


async def test_webhook_wrong_secret_is_recorded(
    sim: TelegramSimulator, bot: telegram.Bot, receiver: WebhookReceiver
) -> None:
    """The status the webhook answered (403 for a wrong secret) is recorded and reported."""
    await bot.set_webhook(receiver.url, secret_token="not-the-right-one")
    await sim.send_text(ANN, "hi")
    (delivery,) = await sim.wait_for_webhook_deliveries(1)
    assert delivery.status == 403 and receiver.received == []
    info = await bot.get_webhook_info()
    assert info.last_error_message is not None and "403" in info.last_error_message
    assert await bot.delete_webhook()
    await sim.send_text(ANN, "polling again")
    assert len(await bot.get_updates()) == 1


# --------------------------------------------------------------------------- files and commands


async def test_send_document_and_photo(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """Multipart uploads are recorded with name, size and sha256; file_ids and URLs work."""
    payload = b"%PDF-1.4 invoice" * 100
    message = await bot.send_document(
        ANN, io.BytesIO(payload), filename="invoice.pdf", caption="Your invoice"
    )
    assert message.document is not None and message.document.file_name == "invoice.pdf"
    assert message.caption == "Your invoice"
    recorded = sim.messages_to(ANN)[0]
    assert recorded.method == "sendDocument" and recorded.caption == "Your invoice"
    assert recorded.document is not None
    assert recorded.document.name == "invoice.pdf"
    assert recorded.document.size == len(payload)
    assert recorded.document.sha256 == hashlib.sha256(payload).hexdigest()
    await bot.send_document(BOB, message.document.file_id)
    assert sim.messages_to(BOB)[0].file == recorded.file
    photo = await bot.send_photo(ANN, "https://example.org/cat.jpg")
    assert photo.photo and sim.messages_to(ANN)[1].photo is not None
    assert sim.messages_to(ANN)[1].file.url == "https://example.org/cat.jpg"  # type: ignore[union-attr]
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
        await bot.send_document(ANN, "no-such-file-id")


async def test_commands_per_language(sim: TelegramSimulator, bot: telegram.Bot) -> None:
    """setMyCommands is remembered per language; a user sees their language or the default."""
    await bot.set_my_commands([("start", "Start"), ("stop", "Stop")])
    await bot.set_my_commands([("start", "Inizia")], language_code="it")
    assert [c.description for c in await bot.get_my_commands(language_code="it")] == ["Inizia"]
    assert [c.command for c in await bot.get_my_commands()] == ["start", "stop"]
    assert sim.commands("it") == [{"command": "start", "description": "Inizia"}]
    assert len(sim.commands("de")) == 2
    with pytest.raises(BadRequest):
        await bot.set_my_commands([("Bad Command", "x")])
    await bot.delete_my_commands(language_code="it")
    assert await bot.get_my_commands(language_code="it") == ()


async def test_application_polling_round_trip(sim: TelegramSimulator) -> None:
    """A real PTB Application polls the simulator and its handlers' replies are recorded."""

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("Welcome! Share your phone.")

    async def contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None and message.contact is not None
        await message.reply_text(f"Got {message.contact.phone_number}")

    app = ApplicationBuilder().token(sim.token).base_url(sim.base_url).build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(MessageHandler(filters.CONTACT, contact))
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        await sim.send_command(ANN, "/start")
        await sim.send_contact(ANN, "393331234567")
        replies = await sim.wait_for_messages(ANN, 2, timeout=10)
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert [m.text for m in replies] == ["Welcome! Share your phone.", "Got 393331234567"]


# --------------------------------------------------------------------------- control API


async def test_control_api_plays_a_user(
    sim: TelegramSimulator, bot: telegram.Bot, http: aiohttp.ClientSession
) -> None:
    """Another process can add a user, write, share a contact and long-poll the bot's replies."""
    base = sim.control_url
    async with http.post(f"{base}/users", json={"user_id": 2001, "first_name": "Dee"}) as r:
        assert r.status == 200 and (await r.json())["user"]["id"] == 2001
    async with http.post(f"{base}/users/2001/text", json={"text": "/start"}) as r:
        update_id = (await r.json())["update_id"]
    async with http.post(f"{base}/users/2001/contact", json={"phone_number": "3912345"}) as r:
        assert r.status == 200
    updates = await bot.get_updates()
    assert updates[0].update_id == update_id
    assert updates[1].message is not None and updates[1].message.contact is not None
    assert updates[1].message.contact.user_id == 2001

    poll = asyncio.create_task(http.get(f"{base}/chats/2001/messages?after=0&timeout=10"))
    await bot.send_message(2001, "Hi Dee")
    async with await poll as r:
        messages = (await r.json())["messages"]
    assert [m["text"] for m in messages] == ["Hi Dee"]
    after = messages[-1]["message_id"]
    async with http.get(f"{base}/chats/2001/messages", params={"after": after}) as r:
        assert (await r.json())["messages"] == []

    async with http.post(f"{base}/users/2001/block") as r:
        assert r.status == 200
    with pytest.raises(Forbidden):
        await bot.send_message(2001, "still there?")
    async with http.post(f"{base}/users/2001/unblock") as r:
        assert r.status == 200
    async with http.get(f"{base}/stats") as r:
        stats = (await r.json())["stats"]
    assert stats["sends"] == 1 and stats["received_count"]["sendMessage"] == 2
    async with http.post(f"{base}/reset") as r:
        assert r.status == 200
    assert sim.sends == []


async def test_control_api_faults(
    sim: TelegramSimulator, bot: telegram.Bot, http: aiohttp.ClientSession
) -> None:
    """Faults configured over HTTP apply to the bot's next calls."""
    spec = {"fail_next": {"method": "sendMessage", "error_code": 429, "retry_after": 5}}
    async with http.post(f"{sim.control_url}/faults", json=spec) as r:
        assert r.status == 200
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(ANN, "x")
    assert retry_seconds(caught.value) == 5
    async with http.post(f"{sim.control_url}/faults", json={"rates": {"rate_5xx": 1}}) as r:
        assert r.status == 200
    with pytest.raises(NetworkError):
        await bot.send_message(ANN, "x")
    async with http.post(f"{sim.control_url}/faults", json={"clear": True}) as r:
        assert r.status == 200
    await bot.send_message(ANN, "x")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field_name"),
    [
        ("POST", "/users", {"user_id": "abc", "first_name": "X"}, 400, "user_id"),
        ("POST", "/users", {"user_id": 5}, 400, "first_name"),
        ("POST", "/users/1001/text", {"text": 7}, 400, "text"),
        ("POST", "/users/1001/text", [1, 2], 400, "body"),
        ("POST", "/users/9999/text", {"text": "hi"}, 404, "user_id"),
        ("POST", "/faults", {"explode": True}, 400, "explode"),
        ("POST", "/faults", {"fail_next": {"method": "sendMessage"}}, 400, "error_code"),
        ("GET", "/chats/1001/messages?timeout=soon", None, 400, "timeout"),
    ],
)
async def test_control_api_rejects_bad_input(
    sim: TelegramSimulator,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any,
    status: int,
    field_name: str,
) -> None:
    """Bad control API input answers a JSON error naming the offending field."""
    async with http.request(method, f"{sim.control_url}{path}", json=body) as response:
        assert response.status == status
        answer = await response.json()
    assert answer["ok"] is False and answer["field"] == field_name
    assert field_name in answer["error"]
