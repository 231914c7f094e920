"""A channel-wide circuit breaker: when a provider is down, stop sending and probe.

The dispatcher feeds it every outcome of a channel. When most outcomes of the last ``window``
seconds say the provider itself failed (connection refused or reset, a timeout, a 5xx), and there
were at least ``min_failures`` of them, the breaker opens: the channel sends nothing for
``open_seconds``, then lets one probe through at a time (half-open). A probe that works closes it;
one that fails opens it again for twice as long, up to ``max_open_seconds``. Deliveries held back
by an open breaker go back to ``pending`` without spending an attempt: what ends a delivery is
its deadline or a permanent error, not a provider's outage.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from channels.clock import Clock


class BreakerState(enum.StrEnum):
    CLOSED = "closed"  # sending normally
    OPEN = "open"  # the provider is down: nothing is sent until the next probe
    HALF_OPEN = "half_open"  # one probe at a time decides


@dataclass(frozen=True)
class BreakerConfig:
    window_seconds: float = 10.0
    min_failures: int = 5
    failure_ratio: float = 0.5
    open_seconds: float = 5.0
    max_open_seconds: float = 60.0


class CircuitBreaker:
    def __init__(self, channel: str, clock: Clock, config: BreakerConfig | None = None) -> None:
        self.channel = channel
        self._clock = clock
        self.config = config or BreakerConfig()
        # The window's outcomes, counted per second: [second, outcomes, provider failures]. A
        # busy channel records thousands a second; each record must stay O(1).
        self._seconds: deque[list[int]] = deque()
        self._total = 0
        self._failures = 0
        self._state = BreakerState.CLOSED
        self._open_for = self.config.open_seconds
        self._reopens_at: datetime | None = None
        self._probing = False
        self.last_failure = ""
        self.openings = 0  # how many times it opened (tests and metrics read it)

    # --- what the dispatcher asks ---------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._due():
            self._state = BreakerState.HALF_OPEN
        return self._state

    def wait_seconds(self) -> float:
        """How long to wait before anything may be sent (0 when a send may go now)."""
        state = self.state
        if state is BreakerState.OPEN and self._reopens_at is not None:
            return max(0.0, (self._reopens_at - self._clock()).total_seconds())
        if state is BreakerState.HALF_OPEN and self._probing:
            return min(1.0, self.config.open_seconds)  # the probe in flight decides first
        return 0.0

    def claim_limit(self, batch_size: int) -> int:
        """How many deliveries to hand out now: a batch, one probe, or none."""
        state = self.state
        if state is BreakerState.CLOSED:
            return batch_size
        if state is BreakerState.HALF_OPEN and not self._probing:
            return 1
        return 0

    def start_probe(self) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self._probing = True

    def allows_sending(self) -> bool:
        """False while open: a delivery that has not started yet waits for the provider."""
        return self.state is not BreakerState.OPEN

    # --- what the dispatcher tells it -----------------------------------------------------------

    def record(self, provider_failed: bool, detail: str = "") -> None:
        now = self._clock()
        if provider_failed:
            self.last_failure = detail
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.OPEN and self._due()
        ):
            self._probing = False
            if provider_failed:
                self._open(now, self._open_for * 2)
            else:
                self._close()
            return
        if self._state is BreakerState.OPEN:
            return  # a send that started before it opened: it proves nothing new
        self._count(now, provider_failed)
        if (
            provider_failed
            and self._failures >= self.config.min_failures
            and self._failures >= self.config.failure_ratio * self._total
        ):
            self._open(now, self.config.open_seconds)

    def _count(self, now: datetime, provider_failed: bool) -> None:
        second = int(now.timestamp())
        if not self._seconds or self._seconds[-1][0] != second:
            self._seconds.append([second, 0, 0])
        bucket = self._seconds[-1]
        bucket[1] += 1
        bucket[2] += provider_failed
        self._total += 1
        self._failures += provider_failed
        horizon = second - self.config.window_seconds
        while self._seconds and self._seconds[0][0] < horizon:
            _, total, failures = self._seconds.popleft()
            self._total -= total
            self._failures -= failures

    def _forget(self) -> None:
        self._seconds.clear()
        self._total = self._failures = 0

    # --- transitions ----------------------------------------------------------------------------

    def _due(self) -> bool:
        return self._reopens_at is not None and self._clock() >= self._reopens_at

    def _open(self, now: datetime, seconds: float) -> None:
        self._open_for = min(self.config.max_open_seconds, max(seconds, self.config.open_seconds))
        self._reopens_at = now + timedelta(seconds=self._open_for)
        if self._state is BreakerState.CLOSED:
            self.openings += 1
        self._state = BreakerState.OPEN
        self._forget()

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._open_for = self.config.open_seconds
        self._reopens_at = None
        self._forget()
