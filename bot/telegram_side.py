"""Everything that talks to Telegram for one bot token, run by the process that leads it.

The Telegram budget is per token, so exactly one process at a time (the Telegram leader, see
``bot/leadership.py``) runs the python-telegram-bot Application (handlers, conversations and
their replies), the update source (polling, or the consumer of the webhook inbox) and the
dispatcher's Telegram worker, all under the one shared rate limiter. Started when the process is
elected, stopped (in reverse order) when it loses the leadership or stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import BasePersistence, DictPersistence

from bot.context import HeraldContext
from bot.handlers.context import HeraldApplication
from bot.polling import PollingErrors
from bot.telegram_app import build_application, database_persistence
from bot.update_consumer import UpdateConsumer
from bot.webhook import register_webhook
from channels.dispatcher import Dispatcher

log = logging.getLogger(__name__)

CLEAN_STOP_GRACE_SECONDS = 10.0


class TelegramSide:
    def __init__(
        self,
        context: HeraldContext,
        dispatcher: Dispatcher | None,
        *,
        holder: str,
        bot: str,
        webhook_url: Callable[[], str | None],
        webhook_secret: Callable[[], str],
        polling_errors: PollingErrors,
        memory_persistence: bool = False,
    ) -> None:
        self._context = context
        self._dispatcher = dispatcher
        self._holder = holder
        self._bot = bot
        self._webhook_url = webhook_url
        self._webhook_secret = webhook_secret
        self._polling_errors = polling_errors
        self._memory = memory_persistence
        self.application: HeraldApplication | None = None
        self.consumer: UpdateConsumer | None = None
        self._stack: AsyncExitStack | None = None
        self._grace = 0.0

    @property
    def running(self) -> bool:
        return self.application is not None and self.application.running

    async def start(self) -> None:
        context = self._context
        settings = context.settings
        assert context.telegram is not None
        stack = AsyncExitStack()
        self._stack = stack
        try:
            webhook = self._webhook_url() is not None
            persistence: BasePersistence[Any, Any, Any] = (
                DictPersistence(update_interval=settings.persistence_update_interval)
                if self._memory
                else database_persistence(context)
            )
            application = build_application(
                context,
                context.telegram,
                webhook=webhook,
                persistence=persistence,
                polling=None if webhook else self._polling_errors,
            )
            try:
                await application.initialize()  # getMe; the persisted data is loaded here
            except BaseException:
                # PTB opened its HTTP sessions before getMe failed, and leaves them open.
                for request in application.http_requests:
                    await request.shutdown()
                raise
            stack.push_async_callback(application.shutdown)  # flushes persistence
            self.application = application
            if application.post_init is not None:  # what run_polling() would do: the menu
                await application.post_init(application)
            await application.start()
            stack.push_async_callback(application.stop)
            await self._start_updates(application, stack)
            if self._dispatcher is not None:
                dispatcher = self._dispatcher
                dispatcher.start_channel("telegram")

                async def stop_worker() -> None:
                    await dispatcher.stop_channel("telegram", grace_seconds=self._grace)

                stack.push_async_callback(stop_worker)
        except BaseException:
            await self.stop()
            raise

    async def _start_updates(self, application: HeraldApplication, stack: AsyncExitStack) -> None:
        settings = self._context.settings
        url = self._webhook_url()
        if url is not None:
            consumer = UpdateConsumer(
                self._context.sessions,
                self._bot,
                self._holder,
                application,
                self._context.clock,
                observer=self._context.metrics,
            )
            await consumer.start()
            stack.push_async_callback(consumer.stop)
            self.consumer = consumer
            await register_webhook(
                application.bot,
                url,
                self._webhook_secret(),
                allowed_updates=settings.allowed_updates,
                drop_pending_updates=settings.telegram_drop_pending_updates,
            )
            return
        updater = application.updater
        assert updater is not None, "polling mode builds the Application with an Updater"
        await updater.start_polling(
            allowed_updates=settings.allowed_updates or Update.ALL_TYPES,
            drop_pending_updates=settings.telegram_drop_pending_updates,
            error_callback=self._polling_errors,
        )
        stack.push_async_callback(updater.stop)
        log.info("Telegram bot is polling for updates")

    async def step_down(self, clean: bool) -> None:
        """The leadership ends: on a clean stop Telegram sends already on their way finish and
        are recorded (no duplicates for the next leader); on a loss everything stops at once."""
        self._grace = CLEAN_STOP_GRACE_SECONDS if clean else 0.0
        await self.stop()

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            try:
                await stack.aclose()
            except TelegramError as exc:  # a farewell call failed: nothing is lost by it
                log.warning("stopping the Telegram side: %s", exc)
        self.application = None
        self.consumer = None
