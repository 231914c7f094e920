"""One process, one event loop: the web server, the scheduler (and the bot) start and stop here."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from admin_api.app import create_app
from admin_api.context import ApiContext
from bot.context import HeraldContext
from bot.settings import Settings
from persistence.migrate import ensure_schema_current

log = logging.getLogger(__name__)


class Service:
    """Everything Herald runs, started in order and stopped in reverse order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context: HeraldContext | None = None
        self.http_port: int | None = None
        self._stack = AsyncExitStack()

    async def start(self) -> None:
        settings = self.settings
        context = HeraldContext.from_settings(settings)
        self.context = context
        self._stack.push_async_callback(context.close)
        await ensure_schema_current(context.engine)

        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.start()
        self._stack.callback(scheduler.shutdown, wait=False)

        app = create_app(
            ApiContext(sessions=context.sessions, max_request_bytes=settings.max_request_bytes)
        )
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, settings.http_host, settings.port)
        await site.start()
        self.http_port = runner.addresses[0][1]
        log.info("Herald is listening on http://%s:%s", settings.http_host, self.http_port)

    async def stop(self) -> None:
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
