"""The Telegram leader's side of the webhook inbox: stored updates, handled in order.

The consumer takes pending updates in ``update_id`` order, hands each to python-telegram-bot
through the application's update processor (Herald's per-chat processor: different people are
served concurrently, one person's updates one after another, in order) and marks them handled a
few at a time as their handlers finish. It is woken when an update is stored (by this process's
receiver, or by a NOTIFY from another one) and looks anyway every ``poll_seconds``.

An update is handled at least once: one a dead leader had taken is put back and handled again
by the next; the window is the few milliseconds between a handler finishing and its update
being marked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from telegram import Update

from bot.handlers.context import HeraldApplication
from channels.backoff import FailureEpisode, LoopObserver
from channels.clock import Clock, wait_event
from persistence import update_inbox
from persistence.database import SessionFactory

log = logging.getLogger(__name__)

TAKE = 100  # updates taken per round
MAX_IN_FLIGHT = 256
MARK_EVERY_SECONDS = 0.05


class UpdateConsumer:
    def __init__(
        self,
        sessions: SessionFactory,
        bot: str,
        holder: str,
        application: HeraldApplication,
        clock: Clock,
        *,
        poll_seconds: float = 1.0,
        observer: LoopObserver | None = None,
    ) -> None:
        self._sessions = sessions
        self._bot = bot
        self._holder = holder
        self._application = application
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._episode = FailureEpisode("handling stored Telegram updates", log, observer=observer)
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._handled: list[int] = []
        self._task: asyncio.Task[None] | None = None
        self._marker: asyncio.Task[None] | None = None
        self._room = asyncio.Event()
        self._room.set()

    def wake(self, _payload: str | None = None) -> None:
        self._wake.set()

    async def start(self) -> None:
        async with self._sessions.begin() as session:
            put_back = await update_inbox.put_back_others(session, self._bot, self._holder)
        if put_back:
            log.warning("handling again %d updates a previous leader had taken", put_back)
        self._task = asyncio.create_task(self._run(), name="update-consumer")
        self._marker = asyncio.create_task(self._mark_loop(), name="update-marker")

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Take no more; let updates in hand finish (up to ``grace_seconds``); mark them."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._in_flight:
            _, unfinished = await asyncio.wait(self._in_flight, timeout=grace_seconds)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._marker is not None:
            self._marker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._marker
        with contextlib.suppress(Exception):  # the database may be gone: they are handled again
            await self._mark()

    async def _run(self) -> None:
        while True:
            try:
                await self._room.wait()
                taken = await self._take()
                self._episode.recovered()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: back off
                await asyncio.sleep(self._episode.failed(exc))  # a back-off
                continue
            for stored in taken:
                self._dispatch(stored)
            if len(taken) < TAKE:
                self._wake.clear()
                await wait_event(self._wake, self._poll_seconds)

    async def _take(self) -> list[update_inbox.StoredUpdate]:
        async with self._sessions.begin() as session:
            return await update_inbox.take(session, self._bot, self._holder, TAKE)

    def _dispatch(self, stored: update_inbox.StoredUpdate) -> None:
        application = self._application
        try:
            update = Update.de_json(stored.payload, application.bot)
        except (ValueError, TypeError, KeyError, AttributeError):  # what de_json raises
            log.warning("stored update %s is not a Telegram update; skipped", stored.update_id)
            self._handled.append(stored.id)
            return
        task = asyncio.create_task(self._handle(stored.id, update))
        self._in_flight.add(task)
        task.add_done_callback(self._done)
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            self._room.clear()

    async def _handle(self, row_id: int, update: Update) -> None:
        application = self._application
        processor: Any = application.update_processor
        await processor.process_update(update, application.process_update(update))
        self._handled.append(row_id)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if len(self._in_flight) < MAX_IN_FLIGHT:
            self._room.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("handling an update failed: %r", exc, exc_info=exc)

    async def _mark_loop(self) -> None:
        while True:
            await asyncio.sleep(MARK_EVERY_SECONDS)  # a period, not synchronisation
            try:
                await self._mark()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: marked when it is back
                self._episode.failed(exc)

    async def _mark(self) -> None:
        if not self._handled:
            return
        handled, self._handled = self._handled, []
        try:
            async with self._sessions.begin() as session:
                await update_inbox.mark_handled(session, handled, self._holder, self._clock())
        except BaseException:
            self._handled = handled + self._handled
            raise
