"""The Telegram budget: N per second in any window, 1/s per chat, 20/min per group, replies first.

The limiter runs on a simulated clock: its sleeps advance the clock instead of waiting, so the
tests check the schedule it produces, not how long they take.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from telegram.error import RetryAfter
from telegram.ext import ExtBot

from bot.ptb_rate_limiter import SharedBudgetRateLimiter
from channels.telegram_client import BotApiClient
from channels.telegram_rate_limit import TelegramRateLimiter
from sandbox.telegram_simulator import TelegramSimulator


class SimulatedTime:
    """A monotonic clock whose sleep moves time forward (and lets other tasks run)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


def _limiter(time: SimulatedTime, per_second: float = 30) -> TelegramRateLimiter:
    return TelegramRateLimiter(per_second, clock=time.clock, sleep=time.sleep)


def _most_in_any_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_never_more_than_the_budget_in_any_second_and_close_to_it() -> None:
    """300 broadcasts at 30/s: at most 30 in any one-second window, and no second left unused."""
    time = SimulatedTime()
    limiter = _limiter(time)
    stamps: list[float] = []

    async def send(chat: int) -> None:
        async with limiter.sending(chat):
            stamps.append(time.now)

    await asyncio.gather(*(send(chat) for chat in range(1, 301)))
    assert _most_in_any_window(stamps, 1.0) <= 30
    # Ten seconds' worth: the last thirty go out at the start of the tenth second.
    assert 9.0 <= max(stamps) - min(stamps) < 9.1


async def test_one_message_per_second_per_private_chat() -> None:
    """Three parts to the same person are at least a second apart."""
    time = SimulatedTime()
    limiter = _limiter(time)
    stamps = []
    for _ in range(3):
        async with limiter.sending(42):
            stamps.append(time.now)
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(stamps))


async def test_twenty_per_minute_per_group() -> None:
    """A group gets at most 20 messages in any minute."""
    time = SimulatedTime()
    limiter = _limiter(time)
    stamps = []
    for _ in range(25):
        async with limiter.sending(-100):
            stamps.append(time.now)
    assert _most_in_any_window(stamps, 60.0) == 20
    assert stamps[20] - stamps[0] >= 60.0


async def test_retry_after_pauses_everyone() -> None:
    """After Telegram's RetryAfter nothing is sent until the pause is over."""
    time = SimulatedTime()
    limiter = _limiter(time)
    limiter.pause(5)
    start = time.now
    async with limiter.sending(7):
        pass
    async with limiter.sending(8, priority=True):
        pass
    assert time.now - start >= 5


async def test_replies_go_before_waiting_broadcasts() -> None:
    """With a broadcast queued, a reply to someone who wrote takes the next free slot."""
    time = SimulatedTime()
    limiter = _limiter(time, per_second=10)
    order: list[str] = []

    async def broadcast(chat: int) -> None:
        async with limiter.sending(chat):
            order.append("broadcast")

    async def reply() -> None:
        async with limiter.sending(None, priority=True):
            order.append("reply")

    broadcasts = [asyncio.create_task(broadcast(chat)) for chat in range(1, 41)]
    await asyncio.sleep(0)
    await reply()
    await asyncio.gather(*broadcasts)
    assert order.index("reply") <= 11  # at most the first second's slots were already taken


async def test_a_slot_is_free_one_second_after_telegram_answered() -> None:
    """A slow answer delays the next send: the second counts from the answer, not the request."""
    time = SimulatedTime()
    limiter = _limiter(time, per_second=1)
    async with limiter.sending(1):
        first = time.now
        await time.sleep(0.4)  # Telegram takes 0.4 s to answer
    async with limiter.sending(2):
        second = time.now
    assert round(second - first, 6) >= 1.4


async def test_a_chat_waits_for_its_previous_message_to_be_answered() -> None:
    """Two broadcasts to one person: the second goes a second after the first was answered."""
    time = SimulatedTime()
    limiter = _limiter(time)
    stamps: list[float] = []

    async def send(delay: float) -> None:
        async with limiter.sending(42):
            stamps.append(time.now)
            await time.sleep(delay)

    await asyncio.gather(send(0.3), send(0.0))
    assert round(stamps[1] - stamps[0], 6) >= 1.3


async def test_telegram_never_sees_more_than_the_budget_despite_jitter(
    telegram_sim: TelegramSimulator,
) -> None:
    """With answers taking 0-300 ms at random, Telegram still counts at most N in any second."""
    telegram_sim.set_latency(0.0, "sendMessage", jitter=0.3)
    telegram_sim.enforce_limits(global_per_second=20, per_chat_per_second=None)
    limiter = TelegramRateLimiter(20)
    client = BotApiClient(telegram_sim.token, telegram_sim.base_url, pool_size=64)
    chats = [telegram_sim.add_user(1000 + n, f"P{n}").user_id for n in range(50)]

    async def send(chat: int) -> None:
        async with limiter.sending(chat):
            await client.send_message(chat, "hello", parse_mode=None)  # a 429 would raise

    try:
        await asyncio.gather(*(send(chat) for chat in chats))
    finally:
        await client.close()
    assert telegram_sim.max_per_window(1.0) <= 20
    assert len(telegram_sim.sends) == 50


async def test_flood_control_on_a_reply_pauses_broadcasts_too(
    telegram_sim: TelegramSimulator,
) -> None:
    """Telegram's RetryAfter on one of the bot's replies holds back the broadcasts as well."""
    limiter = TelegramRateLimiter(30)
    bot = ExtBot(
        telegram_sim.token,
        base_url=telegram_sim.base_url,
        rate_limiter=SharedBudgetRateLimiter(limiter),
    )
    person = telegram_sim.add_user(77, "Ada").user_id
    telegram_sim.fail_next("sendMessage", error_code=429, retry_after=5)
    async with bot:
        with pytest.raises(RetryAfter):
            await bot.send_message(person, "thanks, noted")
    assert 4 < limiter.paused_for <= 5
