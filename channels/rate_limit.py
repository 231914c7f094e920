"""Telegram's per-token budget: N messages in any one-second window, 1 per second per private chat,
20 per minute per group, shared by broadcasts and the bot's own replies.

Telegram counts per bot token, so the conversation handlers and the broadcast channel draw on one
budget even though each has its own Bot and HTTP pool. Replies ask with ``priority=True`` and go
ahead of every waiting broadcast, so a large broadcast never starves the people talking to the bot
(python-telegram-bot issue #3689). A ``RetryAfter`` from Telegram pauses everyone.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

MonotonicClock = Callable[[], float]


class SlidingWindow:
    """At most ``limit`` events in any window of ``period`` seconds (strict, not a token bucket:
    a bucket would let a full burst follow a full second)."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._events: deque[float] = deque()

    def next_free(self, now: float) -> float:
        events = self._events
        while events and events[0] <= now - self.period:
            events.popleft()
        return now if len(events) < self.limit else events[0] + self.period

    def take(self, now: float) -> None:
        self._events.append(now)


class TelegramRateLimiter:
    def __init__(
        self,
        per_second: float,
        *,
        per_chat_interval: float = 1.0,
        group_per_minute: int = 20,
        safety_margin: float = 0.02,
        clock: MonotonicClock = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        # A small margin on the window keeps network jitter from packing N+1 sends into what the
        # server sees as one second.
        limit = max(1, int(per_second))
        self._global = SlidingWindow(limit, 1.0 + safety_margin)
        # Spread the second's budget over its tenths: bursts of a full second's worth would reach
        # Telegram bunched up by network jitter and look like more than N in some window.
        self._smooth = SlidingWindow(max(1, limit // 10), (1.0 + safety_margin) / 10)
        self._per_chat_interval = per_chat_interval + safety_margin
        self._group_per_minute = group_per_minute
        self._chat_last: dict[int, float] = {}
        self._groups: dict[int, SlidingWindow] = {}
        self._paused_until = 0.0
        self._clock = clock
        self._sleep = sleep  # with ``clock``, replaceable by a simulated clock in tests
        self._broadcast_gate = asyncio.Lock()
        self._priority_waiting = 0
        self._priority_done = asyncio.Event()

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    def pause(self, seconds: float) -> None:
        """Telegram said RetryAfter: nobody sends until then."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _chat_next_free(self, chat_id: int, now: float) -> float:
        if chat_id < 0:  # groups and channels
            window = self._groups.get(chat_id)
            return now if window is None else window.next_free(now)
        last = self._chat_last.get(chat_id)
        return now if last is None else max(now, last + self._per_chat_interval)

    def _take(self, chat_id: int | None, now: float) -> None:
        self._global.take(now)
        self._smooth.take(now)
        if chat_id is None:
            return
        if chat_id < 0:
            self._groups.setdefault(chat_id, SlidingWindow(self._group_per_minute, 60.0)).take(now)
        else:
            self._chat_last[chat_id] = now
            if len(self._chat_last) > 50_000:
                self._forget_idle_chats(now)

    def _forget_idle_chats(self, now: float) -> None:
        horizon = now - self._per_chat_interval
        self._chat_last = {c: t for c, t in self._chat_last.items() if t > horizon}

    def _global_wait(self) -> float:
        now = self._clock()
        ready = max(self._paused_until, self._global.next_free(now), self._smooth.next_free(now))
        return ready - now

    async def acquire(self, chat_id: int | None, *, priority: bool = False) -> None:
        """Wait until a message to ``chat_id`` fits the budget, then take the slot.

        ``chat_id=None`` draws on the overall budget only (a reply to someone who just wrote).
        """
        while True:
            # A chat that must wait (its 1/s) waits on its own, never at the head of the queue.
            if (chat_delay := self.chat_ready_in(chat_id)) > 0:
                await self._sleep(chat_delay)  # pacing to the provider's limit
            if priority:
                taken = await self._take_priority(chat_id)
            else:
                async with self._broadcast_gate:  # broadcasts queue in order
                    taken = await self._take_when_free(chat_id, yield_to_priority=True)
            if taken:
                return

    async def _take_priority(self, chat_id: int | None) -> bool:
        self._priority_waiting += 1
        try:
            return await self._take_when_free(chat_id)
        finally:
            self._priority_waiting -= 1
            if not self._priority_waiting:
                self._priority_done.set()

    async def _take_when_free(
        self, chat_id: int | None, *, yield_to_priority: bool = False
    ) -> bool:
        while True:
            if yield_to_priority and self._priority_waiting:
                self._priority_done.clear()
                await self._priority_done.wait()
                continue
            delay = self._global_wait()
            if delay > 0:
                await self._sleep(delay)  # pacing to the provider's limit
                continue
            if self.chat_ready_in(chat_id) > 0:
                return False  # someone else wrote to this chat meanwhile: wait for it again
            self._take(chat_id, self._clock())
            return True

    def chat_ready_in(self, chat_id: int | None) -> float:
        """Seconds until ``chat_id`` may receive again (0 when it may now)."""
        if chat_id is None:
            return 0.0
        now = self._clock()
        return max(0.0, self._chat_next_free(chat_id, now) - now)
