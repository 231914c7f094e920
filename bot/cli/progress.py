"""Following a broadcast's live counters until every delivery is final (``broadcast --wait``).

In a terminal a rich progress bar per message; anywhere else (a pipe, a CI log) one line per
message at least once a second while deliveries happen. The counters are read four times a
second, so what the dispatcher records shows at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from bot.cli.common import CliError
from persistence.database import SessionFactory
from persistence.outbox import IN_FLIGHT, read_counters

POLL_SECONDS = 0.25
LINE_SECONDS = 1.0

Counters = dict[int, dict[str, int]]


def _done(counts: dict[str, int]) -> int:
    return sum(n for status, n in counts.items() if status not in IN_FLIGHT)


def _summary(counts: dict[str, int]) -> str:
    return " ".join(f"{status}={n}" for status, n in sorted(counts.items()) if n)


def _finished(counters: Counters) -> bool:
    return all(not any(counts.get(s) for s in IN_FLIGHT) for counts in counters.values())


class ProgressView:
    """What the reader sees; ``show`` is called on every poll."""

    def __init__(self, console: Console, labels: dict[int, str], totals: dict[int, int]) -> None:
        self._console = console
        self._labels = labels
        self._totals = totals
        self._started = time.monotonic()
        self._last_line = 0.0
        self._bar: Progress | None = None
        self._tasks: dict[int, TaskID] = {}

    def __enter__(self) -> ProgressView:
        if self._console.is_terminal:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[counts]}"),
            )
            self._bar = Progress(*columns, console=self._console, refresh_per_second=4)
            self._bar.start()
            for i, label in self._labels.items():
                self._tasks[i] = self._bar.add_task(label, total=self._totals[i] or 1, counts="")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def show(self, counters: Counters, *, final: bool = False) -> None:
        if self._bar is not None:
            for i, task in self._tasks.items():
                counts = counters[i]
                self._bar.update(task, completed=_done(counts), counts=_summary(counts))
            return
        now = time.monotonic()
        if not final and now - self._last_line < LINE_SECONDS:
            return
        self._last_line = now
        elapsed = now - self._started
        for i, label in self._labels.items():
            counts = counters[i]
            self._console.print(
                f"[{elapsed:5.1f}s] {label}: {_done(counts)}/{self._totals[i]} final "
                f"({_summary(counts) or 'nothing yet'})"
            )


async def follow(
    sessions: SessionFactory,
    console: Console,
    labels: dict[int, str],
    *,
    idle_timeout: float | None,
    on_idle: Callable[[], str] | None = None,
) -> Counters:
    """Show progress until no delivery of ``labels``' messages is in flight; the last counters.

    With ``idle_timeout``, a broadcast where nothing changes for that long is left to the
    service: CliError with ``on_idle()``'s explanation.
    """
    ids: Sequence[int] = list(labels)
    async with sessions() as session:
        counters = await read_counters(session, ids)
    totals = {i: sum(counters[i].values()) for i in ids}
    last_change = time.monotonic()
    previous = counters
    with ProgressView(console, labels, totals) as view:
        while True:
            view.show(counters)
            if _finished(counters):
                view.show(counters, final=True)
                return counters
            if counters != previous:
                previous, last_change = counters, time.monotonic()
            elif idle_timeout is not None and time.monotonic() - last_change > idle_timeout:
                view.show(counters, final=True)
                explanation = on_idle() if on_idle else ""
                raise CliError(f"nothing was delivered for {idle_timeout:g}s{explanation}")
            await asyncio.sleep(POLL_SECONDS)
            async with sessions() as session:
                counters = await read_counters(session, ids)
