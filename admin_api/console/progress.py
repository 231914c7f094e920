"""Live progress for the console: one poller per watched broadcast, fanned out to every watcher.

However many people watch a broadcast (its page, the dashboard), its counters are read once per
``interval`` by a single task; each snapshot is encoded once and handed to every watcher, and a
watcher that falls behind simply gets the newest snapshot (nothing queues up). The poller starts
with the first watcher and stops with the last one, or when the broadcast is final.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

# The message rows of one watched set: id -> {"channel", "status", "total", "counters"}.
Progress = dict[int, dict[str, Any]]
ProgressReader = Callable[[Sequence[int]], Awaitable[Progress]]
FINAL_STATUSES = frozenset({"done", "cancelled"})


@dataclass(frozen=True)
class Snapshot:
    at: float  # wall-clock time the counters were read
    progress: Progress
    final: bool
    payload: str  # the JSON every watcher is sent


def snapshot(progress: Progress, at: float) -> Snapshot:
    final = all(row["status"] in FINAL_STATUSES for row in progress.values())
    payload = json.dumps(
        {"at": at, "final": final, "messages": {str(k): v for k, v in progress.items()}},
        separators=(",", ":"),
    )
    return Snapshot(at, progress, final, payload)


@dataclass
class _Feed:
    watchers: int = 0
    latest: Snapshot | None = None
    version: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    ended: bool = False

    def publish(self, snap: Snapshot | None) -> None:
        if snap is not None:
            self.latest = snap
            self.version += 1
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class ProgressHub:
    def __init__(self, read: ProgressReader, *, interval: float = 0.5) -> None:
        self._read = read
        self._interval = interval
        self._feeds: dict[tuple[int, ...], _Feed] = {}
        self._closed = False

    @property
    def pollers(self) -> int:
        return sum(1 for feed in self._feeds.values() if feed.task and not feed.task.done())

    async def watch(self, message_ids: Sequence[int]) -> AsyncGenerator[Snapshot, None]:
        """Snapshots of these messages' progress as they change, until they are all final."""
        key = tuple(sorted(set(message_ids)))
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = _Feed()
            feed.task = asyncio.create_task(self._poll(key, feed), name=f"progress-{key[:3]}")
        feed.watchers += 1
        seen = 0
        try:
            while not self._closed:
                if feed.version == seen:
                    if feed.ended:
                        return
                    await feed.changed.wait()
                    continue
                seen = feed.version
                latest = feed.latest
                assert latest is not None
                yield latest
                if latest.final:
                    return
        finally:
            feed.watchers -= 1
            if feed.watchers == 0 and self._feeds.get(key) is feed:
                del self._feeds[key]
                if feed.task is not None:
                    feed.task.cancel()

    async def _poll(self, key: tuple[int, ...], feed: _Feed) -> None:
        try:
            while not self._closed:
                try:
                    progress = await self._read(key)
                except (OSError, SQLAlchemyError) as exc:
                    log.warning("live progress of messages %s unavailable: %s", key[:5], exc)
                else:
                    # Sent even when unchanged: each carries the time it was read, so a watcher
                    # always knows its counters are at most one interval (plus transit) old.
                    snap = snapshot(progress, time.time())
                    feed.publish(snap)
                    if snap.final:
                        return
                await asyncio.sleep(self._interval)  # the polling period, not synchronisation
        finally:
            feed.ended = True
            feed.publish(None)

    async def close(self) -> None:
        """Stop every poller and let every watcher finish (the server is shutting down)."""
        self._closed = True
        feeds = list(self._feeds.values())
        for feed in feeds:
            if feed.task is not None:
                feed.task.cancel()
        for feed in feeds:
            if feed.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await feed.task
            feed.publish(None)
