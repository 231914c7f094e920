"""Concurrent update processing that keeps each chat's updates in order.

Different people are served concurrently (database and Bot API calls overlap), while two updates
of the same chat never race: a person's /start is handled before the contact that follows it.
A chat's waiting updates hold concurrency slots (PTB takes the slot before ``do_process_update``),
so one chat flooding the bot slows the others down only once it fills every slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from telegram import Update
from telegram.ext import BaseUpdateProcessor


def _chat_key(update: object) -> int | None:
    if isinstance(update, Update) and update.effective_chat is not None:
        return update.effective_chat.id
    return None


class PerChatUpdateProcessor(BaseUpdateProcessor):
    def __init__(
        self, max_concurrent_updates: int, *, on_processed: Callable[[], None] | None = None
    ) -> None:
        super().__init__(max_concurrent_updates)
        self._on_processed = on_processed
        self._locks: dict[int, asyncio.Lock] = {}
        self._holders: dict[int, int] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[object]) -> None:
        try:
            await self._in_chat_order(update, coroutine)
        finally:
            if self._on_processed is not None:
                self._on_processed()

    async def _in_chat_order(self, update: object, coroutine: Awaitable[object]) -> None:
        key = _chat_key(update)
        if key is None:
            await coroutine
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._holders[key] = self._holders.get(key, 0) + 1
        try:
            async with lock:  # asyncio.Lock is fair: the chat's updates run in arrival order
                await coroutine
        finally:
            self._holders[key] -= 1
            if not self._holders[key]:
                del self._holders[key], self._locks[key]

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None
