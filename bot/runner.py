"""One process, one event loop: the web server, the scheduler and the bot start and stop here.

Components start in order and stop in reverse order through one AsyncExitStack: the update
source (polling or the webhook), the web server, the delivery dispatcher, the PTB Application (its
``shutdown()`` writes the last persistence update), the sandbox simulator, the scheduler and,
last, the database engine.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import secrets
import signal
import socket
import tempfile
from contextlib import AsyncExitStack
from typing import Any, Literal

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from telegram import Update
from telegram.ext import BasePersistence, DictPersistence

from admin_api.app import create_app
from admin_api.context import ApiContext
from admin_api.server import ApiRunner
from bot.cli_errors import StartupError
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
        self._socket: socket.socket | None = None
        self._stack = AsyncExitStack()
        self._started = False
        self._stopped = False

    @property
    def webhook_mode(self) -> bool:
        return self.settings.telegram_mode is TelegramMode.WEBHOOK

    async def start(self) -> None:
        try:
            # Local checks first: a wrong DATA_DIR or a taken port fails in a moment, before
            # anything talks to the database or to Telegram.
            self._check_data_dir()
            self._reserve_port()
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
        self._started = True

    def _check_data_dir(self) -> None:
        data_dir = self.settings.data_dir
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=data_dir):
                pass  # attachments are written here: it must be writable
        except OSError as exc:
            raise StartupError(f"DATA_DIR: cannot write to {data_dir}: {exc.strerror}") from None

    def _reserve_port(self) -> None:
        """Bind the HTTP port now (the server starts listening on it later)."""
        host, port = self.settings.http_host, self.settings.port
        try:
            addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family, kind, proto, _, address = addresses[0]
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(address)
            except OSError:
                sock.close()
                raise
        except socket.gaierror as exc:
            raise StartupError(f"HTTP_HOST: cannot listen on {host!r}: {exc.strerror}") from None
        except OSError as exc:
            name = "PORT" if exc.errno == errno.EADDRINUSE else "HTTP_HOST/PORT"
            raise StartupError(
                f"{name}: cannot listen on {host}:{port}: {exc.strerror}"
                + (" (is another Herald running?)" if exc.errno == errno.EADDRINUSE else "")
            ) from None
        self._stack.callback(sock.close)
        self._socket = sock

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
        try:
            simulator = await start_simulator(self.settings)
        except OSError as exc:
            port = self.settings.telegram_sandbox_port
            raise StartupError(
                f"TELEGRAM_SANDBOX_PORT: the sandbox Bot API cannot listen on {port}: "
                f"{exc.strerror}"
            ) from None
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
        try:
            await application.initialize()  # getMe, and the persisted data is loaded here
        except BaseException:
            # PTB opened its HTTP sessions before getMe failed, and leaves them open.
            for request in application.http_requests:
                await request.shutdown()
            raise
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
        )

    async def _start_http(self, context: HeraldContext, application: HeraldApplication) -> None:
        settings = self.settings
        app = create_app(self._api_context(context, application))
        if self.webhook_mode:
            secret = self._webhook_secret_value()
            add_webhook_route(app, settings.telegram_webhook_path, application, secret)
        runner = ApiRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        assert self._socket is not None, "start() reserves the port first"
        site = web.SockSite(runner, self._socket)
        await site.start()
        self.http_port = runner.addresses[0][1]
        log.info("Herald is listening on http://%s:%s", settings.http_host, self.http_port)

    def _webhook_secret_value(self) -> str:
        if self._webhook_secret is None:
            configured = self.settings.telegram_webhook_secret
            # The sandbox needs no configuration: a fresh secret for each run.
            self._webhook_secret = (
                configured.get_secret_value() if configured else secrets.token_urlsafe(32)
            )
        return self._webhook_secret

    def _webhook_public_url(self) -> str:
        settings = self.settings
        if settings.telegram_webhook_url:
            return settings.telegram_webhook_url
        host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::", "") else settings.http_host  # noqa: S104
        return f"http://{host}:{self.http_port}{settings.telegram_webhook_path}"

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
        if self._started:  # a start that failed says why instead (one line, bot/cli_errors.py)
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
