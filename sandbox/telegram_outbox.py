"""What the bot sent, as the Telegram simulator recorded it: reading, waiting, rate counters.

Mixed into :class:`sandbox.telegram_simulator.TelegramSimulator`. Messages live in per-chat lists
ordered by message_id, so reading and long polling never scan other chats.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections import Counter

from sandbox.telegram_models import SentMessage, SimChat


class SentMessages:
    """Reading the bot's messages; the simulator supplies the state and the condition."""

    _chats: dict[int, SimChat]
    _sent_cond: asyncio.Condition
    _closing: asyncio.Event
    sends: list[tuple[float, int, str]]
    """(time.monotonic(), chat_id, method) of every successful send*."""
    received_count: Counter[str]
    """Calls received per Bot API method (including failed and fault-injected ones)."""
    send_attempts: list[float]
    """time.monotonic() of every send* call received, whatever its answer."""

    def messages_to(self, chat_id: int) -> list[SentMessage]:
        chat = self._chats.get(chat_id)
        return list(chat.sent) if chat else []

    def messages_after(self, chat_id: int, after: int = 0) -> list[SentMessage]:
        """The bot's messages to ``chat_id`` with a message_id greater than ``after``."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return []
        start = bisect_right(chat.sent, after, key=lambda message: message.message_id)
        return chat.sent[start:]

    async def wait_for_messages(
        self,
        chat_id: int,
        count: int,
        timeout: float = 15.0,  # noqa: ASYNC109 - a test helper with a default deadline
    ) -> list[SentMessage]:
        """Wait until the bot has sent at least ``count`` messages to ``chat_id``."""

        def enough() -> bool:
            chat = self._chats.get(chat_id)
            return (chat is not None and len(chat.sent) >= count) or self._closing.is_set()

        async with self._sent_cond:
            try:
                async with asyncio.timeout(timeout):
                    await self._sent_cond.wait_for(enough)
            except TimeoutError:
                got = self.messages_to(chat_id)
                raise TimeoutError(
                    f"expected at least {count} message(s) to chat {chat_id} within {timeout}s, "
                    f"got {len(got)}: {[message.body for message in got][-5:]!r}"
                ) from None
        return self.messages_to(chat_id)

    async def wait_for_sends(
        self,
        count: int,
        *,
        distinct_chats: bool = False,
        timeout: float = 30.0,  # noqa: ASYNC109 - a test helper with a default deadline
    ) -> int:
        """Wait until the bot made ``count`` successful sends (or reached ``count`` chats)."""

        def reached() -> int:
            return len({chat for _, chat, _ in self.sends}) if distinct_chats else len(self.sends)

        async with self._sent_cond:
            try:
                async with asyncio.timeout(timeout):
                    await self._sent_cond.wait_for(
                        lambda: reached() >= count or self._closing.is_set()
                    )
            except TimeoutError:
                what = "chats reached" if distinct_chats else "sends"
                raise TimeoutError(
                    f"expected {count} {what} within {timeout}s, got {reached()}"
                ) from None
        return reached()

    async def wait_for_messages_after(
        self,
        chat_id: int,
        after: int,
        timeout: float,  # noqa: ASYNC109 - the long-poll duration the client asked for
    ) -> list[SentMessage]:
        """Long poll: the messages after ``after``, waiting up to ``timeout`` for the first."""
        if timeout > 0 and not self.messages_after(chat_id, after):
            async with self._sent_cond:
                try:
                    async with asyncio.timeout(timeout):
                        await self._sent_cond.wait_for(
                            lambda: (
                                bool(self.messages_after(chat_id, after)) or self._closing.is_set()
                            )
                        )
                except TimeoutError:
                    pass
        return self.messages_after(chat_id, after)

    # ------------------------------------------------------------------ rate counters

    def max_per_window(self, window_seconds: float = 1.0) -> int:
        """The most successful sends (by every client of the token) within any window of that
        length: the figure Telegram's flood limits are about."""
        return _busiest([stamp for stamp, _, _ in self.sends], window_seconds)

    def max_attempts_per_window(self, window_seconds: float = 1.0) -> int:
        """The most send calls received within any window, refused ones (429, faults) included."""
        return _busiest(self.send_attempts, window_seconds)

    def min_same_chat_interval(self) -> float | None:
        """The shortest gap between two successful sends to the same chat (None if none)."""
        last: dict[int, float] = {}
        best: float | None = None
        for stamp, chat_id, _ in self.sends:
            previous = last.get(chat_id)
            if previous is not None and (best is None or stamp - previous < best):
                best = stamp - previous
            last[chat_id] = stamp
        return best


def _busiest(stamps: list[float], window_seconds: float) -> int:
    """The most timestamps (in ascending order) that fit in any window of that length."""
    best = start = 0
    for end, stamp in enumerate(stamps):
        while stamps[start] <= stamp - window_seconds:
            start += 1
        best = max(best, end - start + 1)
    return best
