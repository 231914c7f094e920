"""PostgreSQL's LISTEN/NOTIFY between Herald processes: wake-ups and cache invalidations.

``notify(session, channel, payload)`` is sent with the caller's transaction (PostgreSQL delivers
it at commit, never for a rollback). A :class:`Listener` holds one dedicated connection per
process, outside the pool, LISTENs on the channels it was given and calls their callbacks; when
the connection drops it reconnects with a growing pause and tells every callback ``None`` (a
notification may have been missed: look again). On SQLite there is one process and nothing to
send; callers keep their polling fallback anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

OUTBOX_CHANNEL = "herald_outbox"  # payload: a delivery channel with new due deliveries
UPDATES_CHANNEL = "herald_updates"  # payload: a bot key with new webhook updates stored
AUTH_CHANNEL = "herald_auth"  # payload: "key:<sha256>" or "user:<id>" no longer valid

Callback = Callable[[str | None], None]


async def notify(session: AsyncSession, channel: str, payload: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
        )


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Like ``channels.clock.wait_event`` (this layer cannot import it): no ``wait_for``, which
    on Python 3.11 can swallow a cancellation."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


def driver_dsn(database_url: str) -> str:
    """The asyncpg DSN of a SQLAlchemy URL (``postgresql+asyncpg://`` → ``postgresql://``)."""
    url = make_url(database_url)
    return str(url.set(drivername="postgresql").render_as_string(hide_password=False))


class Listener:
    def __init__(
        self,
        dsn: str,
        callbacks: Mapping[str, Callback],
        *,
        retry_seconds: tuple[float, float] = (0.5, 15.0),
    ) -> None:
        self._dsn = dsn
        self._callbacks = dict(callbacks)
        self._retry = retry_seconds
        self._connection: Any = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pg-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close()

    async def _run(self) -> None:
        delay = self._retry[0]
        first = True
        while True:
            try:
                await self._connect()
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                if first:
                    log.warning("cannot LISTEN for other processes yet (%s); retrying", exc)
                first = False
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(self._retry[1], delay * 2)
                continue
            if not first:
                log.warning("listening for other processes again")
            first, delay = False, self._retry[0]
            self._tell_all(None)  # something may have been missed while we were away
            await self._watch()
            await self._close()
            log.warning("lost the LISTEN connection; reconnecting")

    async def _watch(self, every: float = 30.0) -> None:
        """Until the connection is lost; a quiet one is checked now and then, since a network
        that drops packets silently never closes it."""
        while not self._lost.is_set():
            if await _wait(self._lost, every):
                return
            try:
                await self._connection.fetchval("SELECT 1", timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                return

    async def _connect(self) -> None:
        self._lost.clear()
        connection = await asyncpg.connect(self._dsn, timeout=10)
        connection.add_termination_listener(lambda _connection: self._lost.set())
        for channel in self._callbacks:
            await connection.add_listener(channel, self._received)
        self._connection = connection
        self.connected.set()

    def _received(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        callback = self._callbacks.get(channel)
        if callback is not None:
            callback(payload)

    def _tell_all(self, payload: str | None) -> None:
        for callback in self._callbacks.values():
            callback(payload)

    async def _close(self) -> None:
        self.connected.clear()
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)
