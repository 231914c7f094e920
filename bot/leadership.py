"""Elected leaders among the Herald processes sharing one database.

An :class:`Elector` competes for one leadership (``persistence/leaders.py``): it acquires it when
free or expired, renews it every ``renew_seconds`` and resigns it on a clean stop. It acts only
while its leadership is certainly its own: each successful renewal gives it until ``ttl -
margin`` seconds after the renewal *started*; a timer fires at that moment unless a newer renewal
pushed it out, and the holder stops acting (``on_lost``) before the database can hand the
leadership to anyone else. A process that loses its database therefore stops within the TTL,
and another one takes over only after it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from channels.backoff import Backoff, FailureEpisode, LoopObserver
from channels.clock import wait_event
from persistence import leaders
from persistence.database import SessionFactory

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]
# Told whether the leadership ends cleanly (this process stops: what is in flight may finish,
# the leadership is still valid) or is lost (stop acting at once).
LostHook = Callable[[bool], Awaitable[None]]


class LeadershipObserver(LoopObserver, Protocol):
    """Told when this process takes or gives up a leadership (the metrics implement it)."""

    def leadership(self, name: str, held: bool) -> None: ...


class Elector:
    def __init__(
        self,
        name: str,
        holder: str,
        sessions: SessionFactory,
        *,
        on_elected: Hook,
        on_lost: LostHook,
        ttl: float = 10.0,
        renew_seconds: float = 3.0,
        margin: float = 2.0,
        observer: LeadershipObserver | None = None,
    ) -> None:
        if renew_seconds + margin >= ttl:
            raise ValueError("renewals must come well before the leadership expires")
        self.name = name
        self.holder = holder
        self._sessions = sessions
        self._on_elected = on_elected
        self._on_lost = on_lost
        self.ttl = ttl
        self._renew_seconds = renew_seconds
        self._margin = margin
        self._episode = FailureEpisode(
            f"leadership {name}",
            log,
            backoff=Backoff(0.5, renew_seconds),
            observer=observer,
            cadence=f"every {renew_seconds:g} s",
        )
        self._observer = observer
        self._held = False
        self._valid_until = 0.0
        self._expiry: asyncio.TimerHandle | None = None
        self._transition = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self._stopped = False

    @property
    def holds(self) -> bool:
        """True only while the leadership is certainly this process's."""
        return self._held and time.monotonic() < self._valid_until

    def poke(self) -> None:
        """Another process resigned: try to take over now rather than at the next round."""
        self._poke.set()

    async def start(self) -> None:
        """The first round in the foreground, so a lone process leads at once; what it leads
        failing to start here (a refused bot token...) fails the start, as it should."""
        await self._round(first=True)
        self._task = asyncio.create_task(self._run(), name=f"elector-{self.name}")

    async def stop(self) -> None:
        """Stop acting, then resign so another process takes over without waiting."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        was_held = self._held
        await self._lose("stopping", clean=True)
        if was_held:
            await self._resign()

    async def _run(self) -> None:
        while True:
            self._poke.clear()
            await wait_event(self._poke, self._renew_seconds)
            await self._round()

    async def _round(self, *, first: bool = False) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._renew_seconds):
                async with self._sessions.begin() as session:
                    if self._held:
                        ours = await leaders.renew(session, self.name, self.holder, self.ttl)
                    else:
                        ours = await leaders.acquire(session, self.name, self.holder, self.ttl)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database is away: keep acting until the margin, no longer
            self._episode.failed(exc)
            return
        self._episode.recovered()
        if not ours:
            if self._held:
                await self._lose("another process holds it now")
            return
        self._extend(started + self.ttl - self._margin)
        if not self._held:
            await self._elect(raise_errors=first)

    def _extend(self, until: float) -> None:
        self._valid_until = until
        if self._expiry is not None:
            self._expiry.cancel()
        delay = max(0.0, until - time.monotonic())
        self._expiry = asyncio.get_running_loop().call_later(delay, self._expired)

    def _expired(self) -> None:
        if self._held and time.monotonic() >= self._valid_until:
            asyncio.get_running_loop().create_task(self._lose("could not renew it in time"))

    async def _elect(self, *, raise_errors: bool) -> None:
        async with self._transition:
            if self._held or self._stopped:
                return
            self._held = True
            # At start-up a lone process simply leads; a takeover later is news.
            level = logging.DEBUG if raise_errors else logging.INFO
            log.log(level, "this process now leads %s", self.name)
            if self._observer is not None:
                self._observer.leadership(self.name, True)
            try:
                await self._on_elected()
            except Exception as exc:
                self._held = False
                await self._on_lost(False)
                await self._resign()
                if raise_errors:
                    raise
                log.error("starting what %s leads failed (%s); it is free again", self.name, exc)

    async def _resign(self) -> None:
        try:
            async with self._sessions.begin() as session:
                await leaders.resign(session, self.name, self.holder)
        except Exception as exc:  # the database is away: the leadership simply expires
            log.warning("could not resign %s (%s); it expires by itself", self.name, exc)

    async def _lose(self, why: str, *, clean: bool = False) -> None:
        async with self._transition:
            if self._expiry is not None:
                self._expiry.cancel()
                self._expiry = None
            if not self._held:
                return
            self._held = False
            self._valid_until = 0.0
            if self._observer is not None:
                self._observer.leadership(self.name, False)
            level = logging.DEBUG if clean else logging.WARNING  # a clean stop is routine
            log.log(level, "this process no longer leads %s: %s", self.name, why)
            await self._on_lost(clean)
