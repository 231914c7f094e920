"""PostgreSQL LISTEN/NOTIFY: tell every Herald process that something changed, at commit.

:func:`notify` queues a notification inside the caller's transaction (PostgreSQL delivers it when
the transaction commits, never for one that rolls back); on SQLite, where Herald runs as one
process, it does nothing. :class:`NotificationListener` holds one connection LISTENing on a
few channels and reconnects with capped exponential backoff when the connection is lost. Between
losing the connection and listening again notifications can be missed, so it reports its state
(``on_state(False)`` then ``on_state(True)``): a cache built on notifications must stop trusting
itself while the listener is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

API_KEYS_CHANNEL = "herald_api_keys"  # payload: a revoked key or a changed user
OUTBOX_CHANNEL = "herald_outbox"  # payload: a delivery channel with new due deliveries
UPDATES_CHANNEL = "herald_updates"  # payload: a bot key with new webhook updates stored
WEBHOOKS_CHANNEL = "herald_webhooks"  # payload: empty; new webhook events are due
MAX_PAYLOAD = 7999  # PostgreSQL's limit is 8000 bytes
LISTENER_NAME = "herald-listener"  # its application_name, as pg_stat_activity shows it

_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


async def notify(session: AsyncSession, channel: str, payload: str) -> None:
    """Queue a notification, sent when ``session``'s transaction commits (PostgreSQL only)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    if len(payload.encode()) > MAX_PAYLOAD:
        raise ValueError("a notification payload is at most 7999 bytes")
    await session.execute(_NOTIFY, {"channel": channel, "payload": payload})


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait for ``event`` at most ``seconds`` (not with ``asyncio.wait_for``, which on Python
    3.11 can swallow a cancellation that arrives as the event is set)."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


def asyncpg_dsn(database_url: URL | str) -> str:
    """The plain ``postgresql://`` form asyncpg connects with (no SQLAlchemy driver name)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


Callback = Callable[[str], None]
# What a lost or refused connection raises (asyncpg's protocol errors included: a connection
# killed in the middle of a query can surface as an InternalClientError).
_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


class NotificationListener:
    """One connection LISTENing on ``channels``; ``callback(payload)`` for each notification."""

    def __init__(
        self,
        dsn: str,
        channels: Mapping[str, Callback],
        *,
        on_state: Callable[[bool], None] = lambda _listening: None,
        health_interval: float = 15.0,
        backoff_initial: float = 0.5,
        backoff_cap: float = 30.0,
    ) -> None:
        self._dsn = dsn
        self._channels = dict(channels)
        self._on_state = on_state
        self._health_interval = health_interval
        self._backoff_initial = backoff_initial
        self._backoff_cap = backoff_cap
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.connections = 0  # how many times it connected (1 + reconnections)

    async def start(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Start listening; returns once listening (or after ``timeout``, still retrying)."""
        self._task = asyncio.create_task(self._run(), name="notification-listener")
        await _wait(self._listening, timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen_once()
                failures = 0  # it was listening, then lost the connection
            except _CONNECTION_ERRORS as exc:
                if failures == 0:
                    log.warning("cannot LISTEN for notifications (%s); retrying", exc)
                failures += 1
            delay = min(self._backoff_cap, self._backoff_initial * 2 ** min(failures, 16))
            await asyncio.sleep(delay)

    async def _listen_once(self) -> None:
        connection = await asyncpg.connect(
            self._dsn, timeout=10, server_settings={"application_name": LISTENER_NAME}
        )
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            for channel in self._channels:
                await connection.add_listener(channel, self._deliver)
            self.connections += 1
            if self.connections > 1:
                log.info("listening for notifications again")
            self._set_state(True)
            await self._until_lost(connection, lost)
            log.warning("lost the connection that listens for notifications; reconnecting")
        finally:
            self._set_state(False)
            if not connection.is_closed():
                connection.terminate()  # nothing to flush: no need for a polite close

    async def _until_lost(self, connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        while not lost.is_set():
            if await _wait(lost, self._health_interval):
                return
            try:  # a dead peer is only noticed by talking to it
                await connection.fetchval("SELECT 1", timeout=5)
            except _CONNECTION_ERRORS:
                return

    def _set_state(self, listening: bool) -> None:
        if listening == self._listening.is_set():
            return
        if listening:
            self._listening.set()
        else:
            self._listening.clear()
        self._on_state(listening)

    def _deliver(self, _connection: object, _pid: int, channel: str, payload: str) -> None:
        callback = self._channels.get(channel)
        if callback is not None:
            callback(payload)
