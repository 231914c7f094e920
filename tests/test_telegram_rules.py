"""Telegram's rules the simulator enforces: keyboards, deleting, getUpdates conflicts, counters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Conflict

from sandbox.telegram_sending import DELETE_WINDOW
from sandbox.telegram_simulator import TelegramSimulator
from tests.bot_support import wait_until
from tests.factories import EpochClock

ANN = 1001
BOB = 1002


@pytest.fixture
async def telegram_sim(epoch_clock: EpochClock) -> AsyncIterator[TelegramSimulator]:
    """Ann and Bob on a simulator whose clock the test moves (for the 48-hour rule)."""
    async with TelegramSimulator(clock=epoch_clock) as simulator:
        simulator.add_user(ANN, "Ann")
        simulator.add_user(BOB, "Bob")
        yield simulator


async def call(
    http: aiohttp.ClientSession, sim: TelegramSimulator, method: str, **body: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{sim.base_url}{sim.token}/{method}", json=body) as response:
        return response.status, await response.json()


# --------------------------------------------------------------------------- inline keyboards


async def test_url_buttons_are_stored_with_the_message(
    telegram_sim: TelegramSimulator, telegram_bot: telegram.Bot
) -> None:
    """URL buttons reach the message (PTB reads them back) and the record lists them."""
    markup = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("Open invoice", url="https://example.org/i/1")],
            [InlineKeyboardButton("Chat", url="tg://resolve?domain=herald")],
        ]
    )
    message = await telegram_bot.send_message(ANN, "Your invoice", reply_markup=markup)
    assert message.reply_markup is not None
    assert message.reply_markup.inline_keyboard[0][0].url == "https://example.org/i/1"
    assert telegram_sim.messages_to(ANN)[0].url_buttons() == [
        ("Open invoice", "https://example.org/i/1"),
        ("Chat", "tg://resolve?domain=herald"),
    ]


@pytest.mark.parametrize(
    ("keyboard", "description"),
    [
        ([[{"text": "Pay", "url": "javascript:alert(1)"}]], "Bad Request: BUTTON_URL_INVALID"),
        ([[{"text": "Pay", "url": "https://"}]], "Bad Request: BUTTON_URL_INVALID"),
        ([[{"text": "Pay", "url": "example.org"}]], "Bad Request: BUTTON_URL_INVALID"),
        ([[{"text": "", "url": "https://example.org"}]], "Bad Request: BUTTON_TEXT_INVALID"),
        ([[{"text": "Hi"}]], "Bad Request: text buttons are unallowed in the inline keyboard"),
        ([[{"text": "x", "callback_data": "y" * 65}]], "Bad Request: BUTTON_DATA_INVALID"),
        (
            [[{"text": str(n), "url": "https://e.org"} for n in range(9)]],
            "Bad Request: reply markup is too long",
        ),
        (
            [[{"text": str(n), "url": "https://e.org"}] for n in range(101)],
            "Bad Request: reply markup is too long",
        ),
    ],
)
async def test_bad_inline_keyboards_are_refused(
    telegram_sim: TelegramSimulator,
    http_session: aiohttp.ClientSession,
    keyboard: list[list[dict[str, str]]],
    description: str,
) -> None:
    """Invalid URL buttons, empty texts, actionless buttons and oversized keyboards answer 400."""
    status, answer = await call(
        http_session,
        telegram_sim,
        "sendMessage",
        chat_id=ANN,
        text="x",
        reply_markup={"inline_keyboard": keyboard},
    )
    assert (status, answer["description"]) == (400, description)
    assert telegram_sim.messages_to(ANN) == []


async def test_the_largest_keyboard_telegram_allows_passes(
    telegram_sim: TelegramSimulator, http_session: aiohttp.ClientSession
) -> None:
    """100 buttons in rows of 8 (the limits themselves) are accepted."""
    buttons = [{"text": str(n), "callback_data": str(n)} for n in range(100)]
    keyboard = [buttons[i : i + 8] for i in range(0, 100, 8)]
    status, _ = await call(
        http_session,
        telegram_sim,
        "sendMessage",
        chat_id=ANN,
        text="x",
        reply_markup={"inline_keyboard": keyboard},
    )
    assert status == 200
    assert len(telegram_sim.messages_to(ANN)[0].inline_keyboard) == 13


# --------------------------------------------------------------------------- deleting


async def test_own_message_deletable_for_48_hours(
    telegram_sim: TelegramSimulator, telegram_bot: telegram.Bot, epoch_clock: EpochClock
) -> None:
    """The bot deletes its message within 48 hours; after that Telegram refuses."""
    fresh = await telegram_bot.send_message(ANN, "recall me")
    old = await telegram_bot.send_message(ANN, "too late")
    epoch_clock.now += DELETE_WINDOW - 1
    assert await telegram_bot.delete_message(ANN, fresh.message_id)
    epoch_clock.now += 1
    with pytest.raises(BadRequest, match=r"(?i)message can't be deleted for everyone"):
        await telegram_bot.delete_message(ANN, old.message_id)
    first, second = telegram_sim.messages_to(ANN)
    assert first.deleted and not second.deleted
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await telegram_bot.delete_message(ANN, fresh.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await telegram_bot.delete_message(ANN, 9999)


async def test_age_message_makes_one_message_old(
    telegram_sim: TelegramSimulator, telegram_bot: telegram.Bot, http_session: aiohttp.ClientSession
) -> None:
    """age_message (and its control route) ages one message past the deletion window."""
    first = await telegram_bot.send_message(ANN, "one")
    second = await telegram_bot.send_message(ANN, "two")
    telegram_sim.age_message(ANN, first.message_id, DELETE_WINDOW)
    url = f"{telegram_sim.control_url}/chats/{ANN}/messages/{second.message_id}/age"
    async with http_session.post(url, json={"seconds": DELETE_WINDOW + 5}) as response:
        assert response.status == 200
    for message in (first, second):
        with pytest.raises(BadRequest, match=r"(?i)can't be deleted for everyone"):
            await telegram_bot.delete_message(ANN, message.message_id)
    with pytest.raises(LookupError):
        telegram_sim.age_message(ANN, 12345, 10)


async def test_user_message_in_private_chat_can_be_deleted(
    telegram_sim: TelegramSimulator, telegram_bot: telegram.Bot
) -> None:
    """The bot may delete what the user wrote in a private chat; history marks it deleted."""
    await telegram_sim.send_text(ANN, "oops, my password")
    (update,) = await telegram_bot.get_updates()
    assert update.message is not None
    assert await telegram_bot.delete_message(ANN, update.message.message_id)
    assert telegram_sim.is_deleted(ANN, update.message.message_id)
    assert telegram_sim.history(ANN)[0]["deleted"] is True


async def test_delete_messages_in_bulk(
    telegram_sim: TelegramSimulator, telegram_bot: telegram.Bot, epoch_clock: EpochClock
) -> None:
    """deleteMessages removes what it can (skipping unknown and old ids) up to 100 at a time."""
    sent = [await telegram_bot.send_message(ANN, f"m{n}") for n in range(4)]
    telegram_sim.age_message(ANN, sent[3].message_id, DELETE_WINDOW)
    ids = [m.message_id for m in sent] + [777]
    assert await telegram_bot.delete_messages(ANN, ids)
    assert [m.deleted for m in telegram_sim.messages_to(ANN)] == [True, True, True, False]
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await telegram_bot.delete_messages(ANN, [777])
    with pytest.raises(BadRequest, match=r"(?i)too many message identifiers"):
        await telegram_bot.delete_messages(ANN, list(range(1, 102)))


# --------------------------------------------------------------------------- getUpdates conflicts


async def test_second_long_poll_terminates_the_first(
    telegram_sim: TelegramSimulator, telegram_bot: telegram.Bot
) -> None:
    """Two bot instances polling at once: the older poll gets 409 Conflict, the newer works."""
    async with telegram.Bot(telegram_sim.token, base_url=telegram_sim.base_url) as other:
        older = asyncio.create_task(telegram_bot.get_updates(timeout=10))

        async def older_is_polling() -> bool:
            return telegram_sim.received_count["getUpdates"] == 1

        await wait_until(older_is_polling, what="the first long poll reached the simulator")
        newer = asyncio.create_task(other.get_updates(timeout=10))
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await older
        update_id = await telegram_sim.send_text(ANN, "hello")
        assert [u.update_id for u in await newer] == [update_id]


async def test_get_updates_while_webhook_is_set_is_a_conflict(
    telegram_sim: TelegramSimulator, http_session: aiohttp.ClientSession
) -> None:
    """getUpdates with a webhook set answers Telegram's 409 text."""
    await call(http_session, telegram_sim, "setWebhook", url="https://example.org/hook")
    status, answer = await call(http_session, telegram_sim, "getUpdates")
    assert status == 409
    assert answer["description"] == (
        "Conflict: can't use getUpdates method while webhook is active; "
        "use deleteWebhook to delete the webhook first"
    )


# --------------------------------------------------------------------------- counters


async def test_busiest_second_counts_every_client_of_the_token(
    telegram_sim: TelegramSimulator,
) -> None:
    """Sends from two separate clients of one token add up in the busiest-second figure."""
    async with (
        telegram.Bot(telegram_sim.token, base_url=telegram_sim.base_url) as first,
        telegram.Bot(telegram_sim.token, base_url=telegram_sim.base_url) as second,
    ):
        await asyncio.gather(
            *(first.send_message(ANN, f"a{n}") for n in range(5)),
            *(second.send_message(BOB, f"b{n}") for n in range(5)),
        )
        telegram_sim.fail_next("sendMessage", error_code=429, retry_after=1)
        with pytest.raises(telegram.error.RetryAfter):
            await first.send_message(ANN, "refused")
    stats = telegram_sim.stats()
    assert stats["sends"] == 10 and stats["max_per_second"] == 10
    assert stats["max_attempts_per_second"] == 11
    telegram_sim.reset_counters()
    stats = telegram_sim.stats()
    assert stats["sends"] == 0 and stats["max_per_second"] == 0 and stats["received_count"] == {}
    assert len(telegram_sim.messages_to(ANN)) == 5  # messages stay


async def test_counters_reset_over_the_control_api(
    telegram_sim: TelegramSimulator, telegram_bot: telegram.Bot, http_session: aiohttp.ClientSession
) -> None:
    """POST /_sim/counters/reset zeroes the rate counters for the next measurement."""
    await telegram_bot.send_message(ANN, "x")
    async with http_session.post(f"{telegram_sim.control_url}/counters/reset") as response:
        assert response.status == 200
    async with http_session.get(f"{telegram_sim.control_url}/stats") as response:
        stats = (await response.json())["stats"]
    assert stats["sends"] == 0 and stats["max_per_second"] == 0


async def test_control_api_also_on_the_bot_port(
    telegram_sim: TelegramSimulator, http_session: aiohttp.ClientSession
) -> None:
    """herald chat, which only knows the bot port, still finds the control API there."""
    async with http_session.get(f"http://127.0.0.1:{telegram_sim.port}/_sim/stats") as response:
        assert response.status == 200
        assert (await response.json())["stats"]["users"] == 2
