"""One process, one event loop: the web server, the scheduler, the dispatcher and, while this
process leads it, the Telegram bot start and stop here.

Components start in order and stop in reverse order through one AsyncExitStack: the database
engine, (on SQLite) the claim to be its only process, the scheduler, the sandbox simulator, the
delivery dispatcher, the web server, the LISTEN connection and, last, the electors. Several
processes may share one PostgreSQL database: they all deliver email, SMS and the inbox (claims
with SKIP LOCKED), and elected leaders run what must run once — everything that talks to
Telegram for the bot token (``bot/telegram_side.py``) and the scheduled jobs.

Roles (``herald run --role``): ``web`` serves the API, the console and the webhook receiver;
``worker`` delivers and competes for the leaderships; ``all`` (the default) does both.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import secrets
import signal
import socket
import tempfile
import uuid
from contextlib import AsyncExitStack
from typing import Literal

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from admin_api.app import create_app
from admin_api.context import ApiContext
from admin_api.key_cache import KeyCache
from admin_api.server import ApiRunner
from bot.cli_errors import StartupError
from bot.console_setup import console_config, ensure_first_user, secret_key_advice
from bot.context import HeraldContext
from bot.delivery import (
    build_channels,
    build_composer,
    build_dispatcher,
    build_webhook_sender,
    unsubscribe_links,
    webhook_policy,
)
from bot.delivery_sms import build_skebby_gateway
from bot.handlers.context import HeraldApplication
from bot.jobs import LEADER_JOBS, schedule_delivery_jobs
from bot.leadership import Elector
from bot.operations import readiness_checks, skebby_status
from bot.polling import PollingErrors
from bot.sandbox_mode import (
    SandboxInfo,
    claim_sandbox,
    remove_sandbox_info,
    sandbox_endpoint,
    start_simulator,
    telegram_endpoint,
    write_sandbox_info,
)
from bot.settings import Settings, TelegramMode
from bot.single_process import claim_single_process
from bot.telegram_side import TelegramSide
from bot.webhook import WebhookReceiver, add_webhook_route, bot_key
from channels.composer import Composer
from channels.dispatcher import Dispatcher
from channels.skebby_gateway import SkebbyGateway
from channels.smtp_channel import EmailChannel
from channels.telegram_channel import TelegramChannel
from channels.unsubscribe import UnsubscribeLinks
from channels.webhook_channel import WebhookSender
from persistence.leaders import RESIGNED_CHANNEL
from persistence.migrate import ensure_schema_current
from persistence.notify import (
    API_KEYS_CHANNEL,
    OUTBOX_CHANNEL,
    UPDATES_CHANNEL,
    WEBHOOKS_CHANNEL,
    NotificationListener,
    asyncpg_dsn,
)
from sandbox.telegram_simulator import TelegramSimulator

log = logging.getLogger(__name__)

BotPersistence = Literal["database", "memory"]
Role = Literal["all", "web", "worker"]
ROLES: tuple[Role, ...] = ("all", "web", "worker")
SCHEDULER_LEADERSHIP = "scheduler"
# How long a verified API key is trusted without asking the database; a revocation is heard at
# once, so this bounds only changes nobody announces.
KEY_CACHE_SECONDS = 5.0


def local_host(bind_host: str) -> str:
    """An address this machine reaches a server bound to ``bind_host`` on."""
    return "127.0.0.1" if bind_host in ("0.0.0.0", "::", "") else bind_host  # noqa: S104


class Service:
    """Everything Herald runs, started in order and stopped in reverse order."""

    def __init__(
        self,
        settings: Settings,
        *,
        role: Role = "all",
        bot_persistence: BotPersistence = "database",
    ) -> None:
        self.settings = settings
        self.role = role
        # "memory" (PTB's DictPersistence: nothing survives a restart) is for benchmarks only.
        self.bot_persistence = bot_persistence
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.context: HeraldContext | None = None
        self.simulator: TelegramSimulator | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.dispatcher: Dispatcher | None = None
        self.webhooks: WebhookSender | None = None
        self.composer: Composer | None = None
        self.skebby: SkebbyGateway | None = None
        self.unsubscribe: UnsubscribeLinks | None = None
        self.telegram: TelegramSide | None = None
        self.electors: dict[str, Elector] = {}
        self.http_port: int | None = None
        self.key_cache = KeyCache(ttl=0)
        self.polling_errors = PollingErrors()
        self.webhook_url: str | None = None
        self._webhook_secret: str | None = None
        self._socket: socket.socket | None = None
        self._stack = AsyncExitStack()
        self._started = False
        self._stopped = False

    @property
    def webhook_mode(self) -> bool:
        return self.settings.telegram_mode is TelegramMode.WEBHOOK

    @property
    def delivers(self) -> bool:
        return self.role in ("all", "worker")

    @property
    def serves_http(self) -> bool:
        return self.role in ("all", "web")

    @property
    def application(self) -> HeraldApplication | None:
        """The bot's Application while this process leads Telegram (else None)."""
        return self.telegram.application if self.telegram is not None else None

    @property
    def telegram_leadership(self) -> str:
        context = self.context
        assert context is not None and context.telegram is not None
        return f"telegram:{bot_key(context.telegram.token)[:16]}"

    def leads(self) -> list[str]:
        return sorted(name for name, elector in self.electors.items() if elector.holds)

    async def start(self) -> None:
        try:
            # Local checks first: a wrong DATA_DIR or a taken port fails in a moment, before
            # anything talks to the database or to Telegram.
            self._check_data_dir()
            if self.settings.sandbox:
                claim_sandbox(self.settings)  # one sandbox per DATA_DIR
            if self.serves_http:
                self._reserve_port()
            context = await self._start_context()
            await self._claim_sqlite(context)
            self._start_scheduler()
            await self._start_telegram_endpoint(context)
            await self._start_delivery(context)
            await self._start_listener(context)
            if self.serves_http:
                await self._start_http(context)
            if self.delivers:
                await self._start_electors(context)
            self._announce_sandbox()
            if self.http_port is not None:  # said once everything runs (tests wait for it)
                if (advice := secret_key_advice(self.settings)) is not None:
                    log.warning("%s", advice)
                log.info(
                    "Herald is listening on http://%s:%s", self.settings.http_host, self.http_port
                )
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
        context.metrics.role(self.role)
        self.polling_errors = PollingErrors(context.metrics)
        self._stack.push_async_callback(context.close)
        await ensure_schema_current(context.engine)
        return context

    async def _claim_sqlite(self, context: HeraldContext) -> None:
        if context.engine.dialect.name == "sqlite":
            elector = await claim_single_process(context.sessions, self.holder, context.metrics)
            self._stack.push_async_callback(elector.stop)

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

    async def _start_delivery(self, context: HeraldContext) -> None:
        """The outbox: channels, the dispatcher (its Telegram worker runs only in the Telegram
        leader), the composer and the scheduled jobs."""
        assert self.scheduler is not None
        settings = self.settings
        skebby = build_skebby_gateway(settings)
        port = self._socket.getsockname()[1] if self._socket is not None else None
        self.unsubscribe = unsubscribe_links(settings, port)
        channels = build_channels(
            settings,
            telegram=context.telegram,
            limiter=context.telegram_limiter,
            skebby=skebby,
            unsubscribe=self.unsubscribe,
        )
        dispatcher = build_dispatcher(
            settings,
            context.sessions,
            channels,
            context.clock,
            recipient_kinds=context.recipient_kinds,
            observer=context.metrics,
        )
        self.composer = build_composer(
            settings,
            context.sessions,
            context.clock,
            recipient_kinds=context.recipient_kinds,
            on_enqueued=dispatcher.wake,
        )
        self.dispatcher = dispatcher
        self.skebby = skebby
        if not self.delivers:
            for channel in dispatcher.channels.values():
                await channel.close()
            return
        dispatcher.set_gate("telegram", self._leads_telegram)
        await dispatcher.start([name for name in dispatcher.channels if name != "telegram"])
        self._stack.push_async_callback(dispatcher.stop)  # also closes the channels
        # Webhooks: a loop of their own (own claims, own connections), so they never hold up a
        # delivery; on PostgreSQL every worker process shares them under leases.
        webhooks = build_webhook_sender(settings, context.sessions, context.clock)
        await webhooks.start()
        self._stack.push_async_callback(webhooks.stop)
        self.webhooks = webhooks
        schedule_delivery_jobs(self.scheduler, context, dispatcher, skebby)

    def _leads_telegram(self) -> bool:
        elector = self.electors.get(self.telegram_leadership)
        return elector is not None and elector.holds

    def _api_context(self, context: HeraldContext) -> ApiContext:
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
            readiness_checks=readiness_checks(
                lambda: self.telegram,
                self._leads_telegram,
                telegram.client,
                email,
                self.skebby,
                self.polling_errors,
                delivers=self.delivers,
            ),
            skebby_status=skebby_status(self.skebby),
            breaker_states=self.dispatcher.breaker_states,
            process=lambda: {"role": self.role, "leads": self.leads()},
            default_phone_region=settings.default_phone_region,
            key_cache=self.key_cache,
            console=console_config(settings),
            unsubscribe=self.unsubscribe,
            webhook_policy=webhook_policy(settings),
            wake_webhooks=self._wake_webhooks,
        )

    def _wake_webhooks(self) -> None:
        if self.webhooks is not None:
            self.webhooks.wake()

    async def _start_http(self, context: HeraldContext) -> None:
        settings = self.settings
        app = create_app(self._api_context(context))
        if self.webhook_mode:
            assert context.telegram is not None
            receiver = WebhookReceiver(
                context.sessions,
                bot_key(context.telegram.token),
                self._webhook_secret_value(),
                consumer_here=self._consumes_updates,
                on_stored=self._update_stored,
            )
            add_webhook_route(app, settings.telegram_webhook_path, receiver)
        runner = ApiRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        assert self._socket is not None, "start() reserves the port first"
        site = web.SockSite(runner, self._socket)
        await site.start()
        self.http_port = runner.addresses[0][1]
        if self.webhook_mode:
            self.webhook_url = self._webhook_public_url()
        await ensure_first_user(context.sessions, settings, f"{self._local_url()}/")

    def _consumes_updates(self) -> bool:
        return self.telegram is not None and self.telegram.consumer is not None

    def _update_stored(self, _payload: str | None = None) -> None:
        consumer = self.telegram.consumer if self.telegram is not None else None
        if consumer is not None:
            consumer.wake()

    def _local_url(self) -> str:
        return f"http://{local_host(self.settings.http_host)}:{self.http_port}"

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
        return f"{self._local_url()}{settings.telegram_webhook_path}"

    async def _start_listener(self, context: HeraldContext) -> None:
        """On PostgreSQL, one connection LISTENs for the other processes' news: new deliveries,
        stored updates, resigned leaderships and revoked keys. Verified API keys are cached only
        while it listens (a revocation must be heard); on SQLite there is one process and no
        cache."""
        if context.engine.dialect.name != "postgresql":
            return
        self.key_cache = cache = KeyCache(ttl=KEY_CACHE_SECONDS)
        dispatcher = self.dispatcher

        def outbox(channel: str) -> None:
            if dispatcher is not None and self.delivers:
                dispatcher.wake(channel or None)

        def resigned(_name: str) -> None:
            for elector in self.electors.values():
                elector.poke()

        def listening(state: bool) -> None:
            cache.set_listening(state)
            if state:  # notifications may have been missed while it was away: look now
                outbox("")
                self._update_stored()
                self._wake_webhooks()

        listener = NotificationListener(
            asyncpg_dsn(context.engine.url),
            {
                API_KEYS_CHANNEL: cache.on_notification,
                OUTBOX_CHANNEL: outbox,
                UPDATES_CHANNEL: self._update_stored,
                WEBHOOKS_CHANNEL: lambda _payload: self._wake_webhooks(),
                RESIGNED_CHANNEL: resigned,
            },
            on_state=listening,
        )
        await listener.start()
        self._stack.push_async_callback(listener.stop)

    async def _start_electors(self, context: HeraldContext) -> None:
        assert context.telegram is not None and self.scheduler is not None
        scheduler = self.scheduler
        telegram = TelegramSide(
            context,
            self.dispatcher,
            holder=self.holder,
            bot=bot_key(context.telegram.token),
            webhook_url=lambda: self.webhook_url if self.webhook_mode else None,
            webhook_secret=self._webhook_secret_value,
            polling_errors=self.polling_errors,
            memory_persistence=self.bot_persistence == "memory",
        )
        self.telegram = telegram

        async def run_jobs() -> None:
            for job_id in LEADER_JOBS:
                if scheduler.get_job(job_id) is not None:
                    scheduler.resume_job(job_id)

        async def pause_jobs(_clean: bool) -> None:
            for job_id in LEADER_JOBS:
                if scheduler.get_job(job_id) is not None:
                    scheduler.pause_job(job_id)

        for name, elected, lost in (
            (SCHEDULER_LEADERSHIP, run_jobs, pause_jobs),
            (self.telegram_leadership, telegram.start, telegram.step_down),
        ):
            elector = Elector(
                name,
                self.holder,
                context.sessions,
                on_elected=elected,
                on_lost=lost,
                ttl=self.settings.leadership_ttl_seconds,
                renew_seconds=self.settings.leadership_renew_seconds,
                observer=context.metrics,
            )
            self.electors[name] = elector
            await elector.start()
            self._stack.push_async_callback(elector.stop)

    def _announce_sandbox(self) -> None:
        """Tell ``herald chat`` (and scripts) where this sandbox is: DATA_DIR/sandbox.json."""
        if self.simulator is None or self.http_port is None:
            return
        info = SandboxInfo(
            control_url=self.simulator.control_url,
            api_url=f"http://{local_host(self.settings.http_host)}:{self.http_port}",
            pid=os.getpid(),
        )
        path = write_sandbox_info(self.settings, info)
        self._stack.callback(remove_sandbox_info, self.settings)
        log.info("sandbox details for `herald chat` are in %s", path)

    async def stop(self) -> None:
        """Stop everything that started, in reverse order; calling it again does nothing."""
        if self._stopped:
            return
        self._stopped = True
        await self._stack.aclose()
        if self._started:  # a start that failed says why instead (one line, bot/cli_errors.py)
            log.info("Herald stopped")


async def serve(settings: Settings, role: Role = "all") -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    service = Service(settings, role=role)
    try:
        await service.start()
        await stop.wait()
        log.info("shutting down")
    finally:
        await service.stop()
