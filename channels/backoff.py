"""Loops that keep working through failures: capped exponential back-off with jitter, and a log
that speaks once per failure episode instead of once per iteration.

A loop (a dispatcher worker, the lease heartbeat, a scheduled job) calls ``episode.failed(exc)``
when an iteration fails and waits the delay it returns, and ``episode.recovered()`` after an
iteration that worked. The first failure of an episode is logged as one line naming the cause
("database unreachable: connection refused; retrying every 1-30 s until it works"); an
unexpected error (a bug, not an outage) carries its traceback that once. Later failures of the
same episode are counted, not logged, and the recovery is one line more.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from persistence.availability import database_unavailable


class LoopObserver(Protocol):
    """Told about every failed iteration of a named loop (the service's metrics implement it)."""

    def loop_failure(self, loop: str) -> None: ...


@dataclass
class Backoff:
    """Delays that double from ``base`` up to ``cap``, each spread by ±50 % so that several
    processes retrying the same server do not hit it in step."""

    base: float = 1.0
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        delay = min(self.cap, self.base * 2.0 ** (self.failures - 1))
        return delay * self.rng.uniform(0.5, 1.5)

    def reset(self) -> None:
        self.failures = 0


def describe_failure(exc: BaseException) -> tuple[str, bool]:
    """A one-line cause, and whether the error is expected (an outage) rather than a bug."""
    cause = database_unavailable(exc)
    if cause is not None:
        return f"database unreachable: {cause}", True
    if isinstance(exc, ConnectionError | TimeoutError):
        return f"{type(exc).__name__}: {exc}", True
    return f"{type(exc).__name__}: {exc}", False


class FailureEpisode:
    """The failures of one loop, from the first to the recovery."""

    def __init__(
        self,
        loop: str,
        logger: logging.Logger,
        *,
        backoff: Backoff | None = None,
        observer: LoopObserver | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        cadence: str | None = None,
    ) -> None:
        self.loop = loop
        self._log = logger
        self.backoff = backoff or Backoff()
        self._observer = observer
        self._monotonic = monotonic
        b = self.backoff
        self._cadence = cadence or f"every {b.base:g}-{b.cap:g} s"
        self._started: float | None = None
        self.failures = 0

    @property
    def failing(self) -> bool:
        return self._started is not None

    def failed(self, exc: BaseException) -> float:
        """Count the failure (log it if it starts an episode); the delay before the next try."""
        if self._observer is not None:
            self._observer.loop_failure(self.loop)
        self.failures += 1
        delay = self.backoff.next_delay()
        if self._started is None:
            self._started = self._monotonic()
            cause, expected = describe_failure(exc)
            message = "%s failed: %s; retrying %s until it works"
            error = None if expected else exc  # a bug shows its traceback, once
            self._log.error(message, self.loop, cause, self._cadence, exc_info=error)
        return delay

    def recovered(self) -> None:
        if self._started is not None:
            seconds = self._monotonic() - self._started
            self._log.warning(
                "%s works again after %d failed attempt(s) over %.0f s",
                self.loop,
                self.failures,
                seconds,
            )
        self._started = None
        self.failures = 0
        self.backoff.reset()
