"""Telegram's per-token budget: N messages in any one-second window, 1 per second per private chat,
20 per minute per group, shared by broadcasts and the bot's own replies.

Telegram counts per bot token, so the conversation handlers and the broadcast channel draw on one
budget even though each has its own Bot and HTTP pool. Replies ask with ``priority=True`` and go
ahead of every waiting broadcast, so a large broadcast never starves the people talking to the bot
(python-telegram-bot issue #3689). A ``RetryAfter`` from Telegram pauses everyone.

Windows count from when a send *finished*, not from when it started. Telegram receives a request
somewhere between the two, so a slot that becomes free one second after Telegram answered can never
put N+1 messages into any second as Telegram sees it, whatever the network or either side's event
loop did to the timing. Counting from the start would need a guessed safety margin and smoothing,
and still fails when one burst reaches Telegram late and the next one early.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType

MonotonicClock = Callable[[], float]


class SlidingWindow:
    """At most ``limit`` sends in flight or finished within the last ``period`` seconds."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._finished: deque[float] = deque()  # finish times, oldest first
        self._in_flight = 0

    def next_free(self, now: float) -> float:
        """When a send may start: ``now``, a later time, or ``inf`` until a send in flight ends."""
        finished = self._finished
        while finished and finished[0] <= now - self.period:
            finished.popleft()
        if len(finished) + self._in_flight < self.limit:
            return now
        return finished[0] + self.period if finished else math.inf

    def start(self) -> None:
        self._in_flight += 1

    def finish(self, now: float) -> None:
        self._in_flight -= 1
        self._finished.append(now)

    def idle(self, now: float) -> bool:
        return self.next_free(now) == now and not self._in_flight and not self._finished


class TelegramRateLimiter:
    def __init__(
        self,
        per_second: float,
        *,
        per_chat_interval: float = 1.0,
        group_per_minute: int = 20,
        clock: MonotonicClock = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._global = SlidingWindow(max(1, int(per_second)), 1.0)
        self._per_chat_interval = per_chat_interval
        self._group_per_minute = group_per_minute
        self._chat_finished: dict[int, float] = {}
        self._chat_in_flight: dict[int, int] = {}
        self._groups: dict[int, SlidingWindow] = {}
        self._paused_until = 0.0
        self._clock = clock
        self._sleep = sleep  # with ``clock``, replaceable by a simulated clock in tests
        self._finished_event = asyncio.Event()
        self._broadcast_gate = asyncio.Lock()
        self._priority_waiting = 0
        self._priority_done = asyncio.Event()

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    def pause(self, seconds: float) -> None:
        """Telegram said RetryAfter: nobody sends until then."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def sending(self, chat_id: int | None, *, priority: bool = False) -> Sending:
        """``async with limiter.sending(chat):`` around one Bot API send.

        ``chat_id=None`` draws on the overall budget only (a reply to someone who just wrote).
        """
        return Sending(self, chat_id, priority)

    async def acquire(self, chat_id: int | None, *, priority: bool = False) -> None:
        """Wait until a message to ``chat_id`` fits the budget, then take the slot.

        Every ``acquire`` must be followed by ``finish`` with the same chat once the send is over;
        ``sending`` pairs them.
        """
        while True:
            # A chat that must wait (its 1/s) waits on its own, never at the head of the queue.
            await self._wait(self._chat_next_free(chat_id, self._clock()))
            if priority:
                taken = await self._take_priority(chat_id)
            else:
                async with self._broadcast_gate:  # broadcasts queue in order
                    taken = await self._take_when_free(chat_id, yield_to_priority=True)
            if taken:
                return

    def finish(self, chat_id: int | None) -> None:
        """The send that took the slot is over (answered, failed or abandoned)."""
        now = self._clock()
        self._global.finish(now)
        if chat_id is not None:
            if chat_id < 0:
                self._groups[chat_id].finish(now)
            else:
                left = self._chat_in_flight.pop(chat_id) - 1
                if left:
                    self._chat_in_flight[chat_id] = left
                self._chat_finished[chat_id] = now
                if len(self._chat_finished) > 50_000:
                    self._forget_idle_chats(now)
        self._finished_event.set()

    async def _wait(self, until: float) -> None:
        if until == math.inf:
            # Every slot is taken by a send still in flight: its answer starts the countdown.
            self._finished_event.clear()
            await self._finished_event.wait()
            return
        delay = until - self._clock()
        if delay > 0:
            await self._sleep(delay)  # pacing to the provider's limit

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
            now = self._clock()
            ready = max(self._paused_until, self._global.next_free(now))
            if ready > now:
                await self._wait(ready)
                continue
            if self._chat_next_free(chat_id, now) > now:
                return False  # someone else wrote to this chat meanwhile: wait for it again
            self._take(chat_id)
            return True

    def _take(self, chat_id: int | None) -> None:
        self._global.start()
        if chat_id is None:
            return
        if chat_id < 0:
            self._groups.setdefault(chat_id, SlidingWindow(self._group_per_minute, 60.0)).start()
        else:
            self._chat_in_flight[chat_id] = self._chat_in_flight.get(chat_id, 0) + 1

    def _chat_next_free(self, chat_id: int | None, now: float) -> float:
        if chat_id is None:
            return now
        if chat_id < 0:  # groups and channels
            window = self._groups.get(chat_id)
            return now if window is None else window.next_free(now)
        if chat_id in self._chat_in_flight:
            return math.inf
        last = self._chat_finished.get(chat_id)
        return now if last is None else max(now, last + self._per_chat_interval)

    def _forget_idle_chats(self, now: float) -> None:
        horizon = now - self._per_chat_interval
        self._chat_finished = {c: t for c, t in self._chat_finished.items() if t > horizon}
        self._groups = {c: w for c, w in self._groups.items() if not w.idle(now)}


class Sending:
    """One send holding its slot: taken on enter, its window counted from exit."""

    __slots__ = ("_chat_id", "_limiter", "_priority")

    def __init__(self, limiter: TelegramRateLimiter, chat_id: int | None, priority: bool) -> None:
        self._limiter = limiter
        self._chat_id = chat_id
        self._priority = priority

    async def __aenter__(self) -> None:
        await self._limiter.acquire(self._chat_id, priority=self._priority)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._limiter.finish(self._chat_id)
