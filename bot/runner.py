"""One process, one event loop: the web server, the scheduler and the bot start and stop here.

Components start in order and stop in reverse order through one AsyncExitStack: the update
source (polling or the webhook), the web server, the delivery dispatcher, the PTB Application (its
``shutdown()`` writes the last persistence update), the sandbox simulator, the scheduler and,
last, the database engine.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from contextlib import AsyncExitStack
from typing import Any, Literal

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from telegram import Update
from telegram.ext import BasePersistence, DictPersistence

from admin_api.app import create_app
from admin_api.context import ApiContext
from bot.console_setup import console_config, ensure_first_user
from bot.context import HeraldContext
from bot.delivery import build_channels, build_composer, build_dispatcher
from bot.delivery_sms import build_skebby_gateway, sms_report_job_kwargs
from bot.handlers.context import HeraldApplication
from bot.jobs import schedule_delivery_jobs
from bot.operations import readiness_checks, skebby_status
from bot.sandbox_mode import sandbox_endpoint, start_simulator, telegram_endpoint
from bot.settings import Settings, TelegramMode
from bot.telegram_app import build_application, database_persistence
from bot.webhook import add_webhook_route, register_webhook
from channels.composer import Composer
from channels.dispatcher import Dispatcher
from channels.skebby_gateway import SkebbyGateway
from channels.sms_reports import sms_report_job
from channels.smtp_channel import EmailChannel
from channels.telegram_channel import TelegramChannel
from persistence.migrate import ensure_schema_current
from sandbox.telegram_simulator import TelegramSimulator

log = logging.getLogger(__name__)

BotPersistence = Literal["database", "memory"]


class Service:
    """Everything Herald runs, started in order and stopped in reverse order."""

    def __init__(self, settings: Settings, *, bot_persistence: BotPersistence = "database") -> None:
        self.settings = settings
        # "memory" (PTB's DictPersistence: nothing survives a restart) is for benchmarks only.
        self.bot_persistence = bot_persistence
        self.context: HeraldContext | None = None
        self.simulator: TelegramSimulator | None = None
        self.application: HeraldApplication | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.dispatcher: Dispatcher | None = None
        self.composer: Composer | None = None
        self.skebby: SkebbyGateway | None = None
        self.http_port: int | None = None
        self.webhook_url: str | None = None
        self._webhook_secret: str | None = None
        self._stack = AsyncExitStack()
        self._stopped = False

    @property
    def webhook_mode(self) -> bool:
        return self.settings.telegram_mode is TelegramMode.WEBHOOK

    async def start(self) -> None:
        try:
            context = await self._start_context()
            self._start_scheduler()
            await self._start_telegram_endpoint(context)
            application = await self._start_bot(context)
            await self._start_delivery(context)
            await self._start_http(context, application)
            await self._start_updates(application)
        except BaseException:
            await self.stop()
            raise

    async def _start_context(self) -> HeraldContext:
        context = HeraldContext.from_settings(self.settings)
        self.context = context
        self._stack.push_async_callback(context.close)
        await ensure_schema_current(context.engine)
        return context

    def _start_scheduler(self) -> None:
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.start()
        self._stack.callback(scheduler.shutdown, wait=False)
        self.scheduler = scheduler

    async def _start_telegram_endpoint(self, context: HeraldContext) -> None:
        if not self.settings.sandbox:
            context.telegram = telegram_endpoint(self.settings)
            return
        simulator = await start_simulator(self.settings)
        self._stack.push_async_callback(simulator.stop)
        self.simulator = simulator
        context.telegram = sandbox_endpoint(simulator)

    async def _start_bot(self, context: HeraldContext) -> HeraldApplication:
        assert context.telegram is not None
        persistence: BasePersistence[Any, Any, Any] = (
            database_persistence(context)
            if self.bot_persistence == "database"
            else DictPersistence(update_interval=self.settings.persistence_update_interval)
        )
        application = build_application(
            context, context.telegram, webhook=self.webhook_mode, persistence=persistence
        )
        await application.initialize()  # getMe, and the persisted data is loaded here
        self._stack.push_async_callback(application.shutdown)  # flushes persistence
        self.application = application
        if application.post_init is not None:  # what run_polling() would do: the command menu
            await application.post_init(application)
        return application

    async def _start_delivery(self, context: HeraldContext) -> None:
        """The outbox: channels, dispatcher workers, the composer and their scheduled jobs."""
        assert context.telegram is not None and self.scheduler is not None
        settings = self.settings
        skebby = build_skebby_gateway(settings)
        channels = await build_channels(
            settings, context.telegram, context.telegram_limiter, skebby
        )
        dispatcher = build_dispatcher(context, channels)
        self.composer = build_composer(context, dispatcher)
        await dispatcher.start()
        self._stack.push_async_callback(dispatcher.stop)  # also closes the channels
        self.dispatcher = dispatcher
        self.skebby = skebby
        schedule_delivery_jobs(self.scheduler, context, dispatcher)
        if skebby is not None:
            self.scheduler.add_job(
                sms_report_job,
                "interval",
                minutes=1,
                max_instances=1,
                coalesce=True,
                kwargs=sms_report_job_kwargs(context, skebby),
                id="sms-reports",
            )

    def _api_context(self, context: HeraldContext, application: HeraldApplication) -> ApiContext:
        assert self.composer is not None and self.dispatcher is not None
        settings = self.settings
        telegram = self.dispatcher.channels["telegram"]
        email = self.dispatcher.channels["email"]
        assert isinstance(telegram, TelegramChannel) and isinstance(email, EmailChannel)
        return ApiContext(
            sessions=context.sessions,
            recipient_kinds=context.recipient_kinds,
            composer=self.composer,
            cancel=self.dispatcher.cancel,
            max_request_bytes=settings.max_request_bytes,
            max_attachment_bytes=settings.max_attachment_bytes,
            metrics=context.metrics,
            clock=context.clock,
            readiness_checks=readiness_checks(application, telegram.client, email, self.skebby),
            skebby_status=skebby_status(self.skebby),
            default_phone_region=settings.default_phone_region,
            console=console_config(settings),
        )

    async def _start_http(self, context: HeraldContext, application: HeraldApplication) -> None:
        settings = self.settings
        app = create_app(self._api_context(context, application))
        if self.webhook_mode:
            secret = self._webhook_secret_value()
            add_webhook_route(app, settings.telegram_webhook_path, application, secret)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, settings.http_host, settings.port)
        await site.start()
        self.http_port = runner.addresses[0][1]
        log.info("Herald is listening on http://%s:%s", settings.http_host, self.http_port)
        await ensure_first_user(context.sessions, settings, f"{self._local_url()}/")

    def _webhook_secret_value(self) -> str:
        if self._webhook_secret is None:
            configured = self.settings.telegram_webhook_secret
            # The sandbox needs no configuration: a fresh secret for each run.
            self._webhook_secret = (
                configured.get_secret_value() if configured else secrets.token_urlsafe(32)
            )
        return self._webhook_secret

    def _local_url(self) -> str:
        host = self.settings.http_host
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        return f"http://{host}:{self.http_port}"

    def _webhook_public_url(self) -> str:
        settings = self.settings
        if settings.telegram_webhook_url:
            return settings.telegram_webhook_url
        return f"{self._local_url()}{settings.telegram_webhook_path}"

    async def _start_updates(self, application: HeraldApplication) -> None:
        settings = self.settings
        await application.start()
        self._stack.push_async_callback(application.stop)
        if self.webhook_mode:
            self.webhook_url = self._webhook_public_url()
            await register_webhook(
                application.bot,
                self.webhook_url,
                self._webhook_secret_value(),
                allowed_updates=settings.allowed_updates,
                drop_pending_updates=settings.telegram_drop_pending_updates,
            )
            return
        updater = application.updater
        assert updater is not None, "polling mode builds the Application with an Updater"
        await updater.start_polling(
            allowed_updates=settings.allowed_updates or Update.ALL_TYPES,
            drop_pending_updates=settings.telegram_drop_pending_updates,
        )
        self._stack.push_async_callback(updater.stop)
        log.info("Telegram bot is polling for updates")

    async def stop(self) -> None:
        """Stop everything that started, in reverse order; calling it again does nothing."""
        if self._stopped:
            return
        self._stopped = True
        await self._stack.aclose()
        log.info("Herald stopped")


async def serve(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    service = Service(settings)
    try:
        await service.start()
        await stop.wait()
        log.info("shutting down")
    finally:
        await service.stop()
