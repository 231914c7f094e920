"""The Telegram budget: N per second in any window, 1/s per chat, 20/min per group, replies first.

The limiter runs on a simulated clock: its sleeps advance the clock instead of waiting, so the
tests check the schedule it produces, not how long they take.
"""

from __future__ import annotations

import asyncio
import itertools

from channels.rate_limit import TelegramRateLimiter


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
    """300 broadcasts at 30/s: at most 30 in any one-second window, and about 30 per second."""
    time = SimulatedTime()
    limiter = _limiter(time)
    stamps: list[float] = []

    async def send(chat: int) -> None:
        await limiter.acquire(chat)
        stamps.append(time.now)

    await asyncio.gather(*(send(chat) for chat in range(1, 301)))
    assert _most_in_any_window(stamps, 1.0) <= 30
    rate = len(stamps) / (max(stamps) - min(stamps))
    assert 28.5 <= rate <= 30


async def test_one_message_per_second_per_private_chat() -> None:
    """Three parts to the same person are at least a second apart."""
    time = SimulatedTime()
    limiter = _limiter(time)
    stamps = []
    for _ in range(3):
        await limiter.acquire(42)
        stamps.append(time.now)
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(stamps))


async def test_twenty_per_minute_per_group() -> None:
    """A group gets at most 20 messages in any minute."""
    time = SimulatedTime()
    limiter = _limiter(time)
    stamps = []
    for _ in range(25):
        await limiter.acquire(-100)
        stamps.append(time.now)
    assert _most_in_any_window(stamps, 60.0) == 20
    assert stamps[20] - stamps[0] >= 60.0


async def test_retry_after_pauses_everyone() -> None:
    """After Telegram's RetryAfter nothing is sent until the pause is over."""
    time = SimulatedTime()
    limiter = _limiter(time)
    limiter.pause(5)
    start = time.now
    await limiter.acquire(7)
    await limiter.acquire(8, priority=True)
    assert time.now - start >= 5


async def test_replies_go_before_waiting_broadcasts() -> None:
    """With a broadcast queued, a reply to someone who wrote takes the next free slot."""
    time = SimulatedTime()
    limiter = _limiter(time, per_second=10)
    order: list[str] = []

    async def broadcast(chat: int) -> None:
        await limiter.acquire(chat)
        order.append("broadcast")

    async def reply() -> None:
        await limiter.acquire(None, priority=True)
        order.append("reply")

    broadcasts = [asyncio.create_task(broadcast(chat)) for chat in range(1, 41)]
    await asyncio.sleep(0)
    await reply()
    await asyncio.gather(*broadcasts)
    assert order.index("reply") <= 11  # at most the first second's slots were already taken
